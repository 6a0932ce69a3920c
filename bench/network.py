#!/usr/bin/env python3
"""Shoal network benchmark: sandbox-to-sandbox throughput and latency against a bare veth pair,
and how soon a live-attached sandbox is reachable.

Normally started by bench/network.sh, which builds Shoal and the images if needed, runs
`shoal up` inside a private network namespace, runs this script inside that same namespace and
cleans up afterwards. Standard library only (Python 3.11+). Run as root: the baselines create
network namespaces, veth pairs, a bridge and an nftables table of their own.

Measured in one run (every traffic path is loopback or a veth/bridge between network
namespaces this run created; nothing else is ever addressed):

1. TCP throughput, sandbox to sandbox on one Shoal network: `iperf3 -s -D` in sandbox B,
   `iperf3 -c <B> -t 5 -J` in sandbox A, received bits/s (`end.sum_received`).
   Baseline: the same between two network namespaces joined by one bare veth pair
   (10.250.0.1/24 - 10.250.0.2/24, MTU 1450, no bridge, no rules).
2. Round-trip latency: `ping -c 200 -i 0.01 -q`, avg rtt, on the same two paths.
3. Attach-to-reachable: sandbox PA on network n1, sandbox PB on network n2 only, with a TCP
   listener. A small Python probe is started in PA beforehand and waits on a FIFO.
   `--attach-iters` times (plus one warm-up): PA's neighbour cache is flushed, then
   `POST /v1/sandboxes/PB/networks {"name": n1}` is timed; as soon as it returns, one exec
   hands PB's new address to the probe, which connects to it (20 ms timeout per try, a fresh
   socket each try) until it answers and records when it started and when it got the answer
   (wall clock, shared with the host); then PB is detached again.

For 1 and 2 the script also measures two reference topologies that split the difference
between the bare veth pair and Shoal (reported as info, not as the baseline): two veth pairs on
a plain Linux bridge, and the same bridge configured like a Shoal network (learning and
flooding off, static FDB entries, MACs 02:5e:<ip>) with a copy of Shoal's `bridge` nftables
port chains. `--no-reference` skips them.

The paths are measured back to back with the same parameters, `--reps` times,
the order rotated each repetition (default 5 repetitions); the median is reported.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"  # the API, on the loopback of the namespace this runs in
PREFIX = "nb-"      # names of this benchmark's Shoal objects
THROUGHPUT_TARGET = 0.9   # shoal / veth, at least
RTT_TARGET = 1.2          # shoal / veth, at most
PROBE_PORT = 7777

# Runs inside sandbox PB: accepts and closes connections forever (killed with the sandbox).
LISTENER = (
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('0.0.0.0', {PROBE_PORT}))\n"
    "s.listen(128)\n"
    "while True:\n"
    "    s.accept()[0].close()\n"
)

# Runs inside sandbox PA, started before the attaches and kept running: for every address
# written to the FIFO argv[1], it connects to address:argv[3] until that answers, then writes
# one JSON line to argv[2] (atomically, via rename). A refused connection (RST) counts as an
# answer too: the peer's kernel replied. A fresh socket per try, 20 ms timeout each; after a
# failed try the neighbour entry is flushed, so that a lost ARP request is retried at once
# instead of after the kernel's 1 s retransmit time. Timestamps are CLOCK_REALTIME, which the
# sandbox shares with the host. Pre-starting it keeps Python's start-up (tens of ms here) out
# of the measurement: the driver wakes it with one exec (`echo IP > FIFO`).
PROBE = r"""
import json, os, socket, subprocess, sys, time
fifo, out, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
while True:
    with open(fifo) as f:
        ip = f.read().strip()
    if not ip:
        continue
    if ip == "quit":
        break
    t_start = time.time()
    c0 = time.perf_counter()
    tries, errors, answer = 0, [], None
    while answer is None:
        tries += 1
        s = socket.socket()
        s.settimeout(0.02)
        try:
            s.connect((ip, port))
            answer = "connected"
        except ConnectionRefusedError:
            answer = "refused"
        except OSError as e:
            if len(errors) < 5:
                errors.append(type(e).__name__ + (f"({e.errno})" if e.errno else ""))
            if time.perf_counter() - c0 > 10.0:
                answer = "timeout"
            else:
                subprocess.run(["ip", "neigh", "flush", "to", ip],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            s.close()
    elapsed_ms = (time.perf_counter() - c0) * 1e3
    with open(out + ".tmp", "w") as f:
        json.dump({"t_start": t_start, "t_answer": t_start + elapsed_ms / 1e3, "elapsed_ms": elapsed_ms,
                   "tries": tries, "answer": answer, "errors": errors}, f)
    os.rename(out + ".tmp", out)
"""
PROBE_FIFO = "/tmp/netbench-probe.fifo"
PROBE_OUT = "/tmp/netbench-probe.json"


# ----------------------------------------------------------------------------- signals


class Interrupted(Exception):
    pass


_stop_signal: str | None = None


def on_signal(signum, _frame):
    """First signal: stop at the next checkpoint (after the measurement in flight, at most one
    iperf3 run); a second one stops at once. Cleanup runs either way."""
    global _stop_signal
    name = signal.Signals(signum).name
    if _stop_signal is not None:
        raise Interrupted(f"{_stop_signal}, then {name}")
    _stop_signal = name
    log(f"{name}: stopping after the current step")


def checkpoint() -> None:
    if _stop_signal is not None:
        raise Interrupted(_stop_signal)


def log(msg: str) -> None:
    print(f"[netbench] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- helpers


def run(*argv: str, check: bool = True, timeout: float = 120) -> str:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def pct(xs: list[float], q: int) -> float:
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1]


def parse_iperf(out: str) -> dict:
    """Received bits/s of an `iperf3 -c … -J` run, plus retransmits and CPU use for the record."""
    j = json.loads(out)
    if "error" in j:
        raise RuntimeError(f"iperf3: {j['error']}")
    end = j["end"]
    return {"bps": float(end["sum_received"]["bits_per_second"]),
            "retransmits": end["sum_sent"].get("retransmits"),
            "cpu": end.get("cpu_utilization_percent")}


def parse_ping(out: str) -> dict:
    sent = recv = None
    rtt = None
    for line in out.splitlines():
        if "packets transmitted" in line:
            parts = line.split(",")
            sent = int(parts[0].split()[0])
            recv = int(parts[1].split()[0])
        if line.startswith("rtt ") or line.startswith("round-trip"):
            vals = line.split("=")[1].strip().split()[0].split("/")
            rtt = dict(zip(("min", "avg", "max", "mdev"), map(float, vals)))
    if rtt is None or sent is None:
        raise RuntimeError(f"cannot parse ping output: {out!r}")
    if recv != sent:
        raise RuntimeError(f"ping lost packets: {recv}/{sent} received")
    return rtt


class ApiError(Exception):
    pass


class Api:
    """One kept-alive HTTP/1.1 connection to the Shoal API on loopback."""

    def __init__(self, port: int, key: str, timeout: float = 180.0):
        self.port, self.key, self.timeout = port, key, timeout
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, path: str, body=None) -> tuple[int, object, float, float]:
        """(status, payload, wall seconds, time.time() when the response was read)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.key}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            t0 = time.perf_counter()
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
            elapsed = time.perf_counter() - t0
            wall = time.time()
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return resp.status, payload, elapsed, wall

    def expect(self, status: int, method: str, path: str, body=None):
        got, payload, elapsed, wall = self.call(method, path, body)
        if got != status:
            raise ApiError(f"{method} {path}: HTTP {got} (expected {status}): {payload}")
        return payload, elapsed, wall

    def exec(self, sandbox: str, script: str, timeout_ms: int = 60000, check: bool = True) -> dict:
        res, _, _ = self.expect(200, "POST", f"/v1/sandboxes/{sandbox}/exec",
                                {"cmd": "sh", "args": ["-c", script], "timeout_ms": timeout_ms})
        if check and res.get("exit_code") != 0:
            raise RuntimeError(f"exec in {sandbox} `{script}` exited {res.get('exit_code')}: "
                               f"{res.get('stderr', '').strip()} {res.get('stdout', '').strip()[-300:]}")
        return res


# ----------------------------------------------------------------------------- paths


class Path:
    """A client end A and a server end B that can run shell commands."""

    label = ""
    server_ip = ""

    def in_a(self, script: str, timeout: float = 60) -> str:
        raise NotImplementedError

    def in_b(self, script: str, timeout: float = 60) -> str:
        raise NotImplementedError

    def start_server(self) -> None:
        self.in_b("iperf3 -s -D")
        # iperf3 -D returns before the daemon listens; wait until it does.
        for _ in range(100):
            if ":5201" in self.in_b("ss -Htln 'sport = :5201' || true"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.label}: iperf3 server did not start")

    def throughput(self, seconds: int) -> dict:
        return parse_iperf(self.in_a(f"iperf3 -c {self.server_ip} -t {seconds} -J", timeout=seconds + 60))

    def rtt(self, count: int) -> dict:
        return parse_ping(self.in_a(f"ping -c {count} -i 0.01 -q {self.server_ip}", timeout=count * 0.05 + 60))

    def warm(self) -> None:
        parse_ping(self.in_a(f"ping -c 3 -i 0.01 -q {self.server_ip}"))


class HostPath(Path):
    """Network namespaces of this run on the host; commands via `ip netns exec`."""

    def __init__(self, label: str, ns_a: str, ns_b: str, server_ip: str):
        self.label, self.ns_a, self.ns_b, self.server_ip = label, ns_a, ns_b, server_ip

    def in_a(self, script: str, timeout: float = 60) -> str:
        return run("ip", "netns", "exec", self.ns_a, "sh", "-c", script, timeout=timeout)

    def in_b(self, script: str, timeout: float = 60) -> str:
        return run("ip", "netns", "exec", self.ns_b, "sh", "-c", script, timeout=timeout)


class ShoalPath(Path):
    def __init__(self, api: Api, a: str, b: str, server_ip: str):
        self.label, self.api, self.a, self.b, self.server_ip = "shoal", api, a, b, server_ip

    def in_a(self, script: str, timeout: float = 60) -> str:
        return self.api.exec(self.a, script, timeout_ms=int(timeout * 1000))["stdout"]

    def in_b(self, script: str, timeout: float = 60) -> str:
        return self.api.exec(self.b, script, timeout_ms=int(timeout * 1000))["stdout"]


def mac_of(ip: str) -> str:
    """Shoal's scheme: 02:5e: + the four octets."""
    return "02:5e:" + ":".join(f"{int(o):02x}" for o in ip.split("."))


class Namespaces:
    """The baseline/reference namespaces of this run; all named PREFIX-*."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.made: list[str] = []

    def add(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        self.made.append(name)
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        # IPv4 only, like a sandbox (no router solicitations, DAD or MLD on the test links).
        run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1")
        return name

    def veth_pair(self, mtu: int) -> HostPath:
        a, b = self.add("va"), self.add("vb")
        run("ip", "-n", a, "link", "add", "eth0", "mtu", str(mtu), "type", "veth",
            "peer", "name", "eth0", "netns", b, "mtu", str(mtu))
        run("ip", "-n", a, "addr", "add", "10.250.0.1/24", "dev", "eth0")
        run("ip", "-n", b, "addr", "add", "10.250.0.2/24", "dev", "eth0")
        run("ip", "-n", a, "link", "set", "eth0", "up")
        run("ip", "-n", b, "link", "set", "eth0", "up")
        return HostPath("bare veth pair", a, b, "10.250.0.2")

    def bridged(self, tag: str, subnet: int, mtu: int, shoal_like: bool) -> HostPath:
        """Two namespaces, each with a veth pair to a bridge in a third namespace."""
        a, b, br = self.add(f"{tag}a"), self.add(f"{tag}b"), self.add(f"{tag}br")
        ips = {a: f"10.{subnet}.0.2", b: f"10.{subnet}.0.3"}
        run("ip", "-n", br, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        run("ip", "-n", br, "link", "set", "br0", "mtu", str(mtu))
        ports = {}
        for i, ns in enumerate((a, b)):
            port = f"p{i}"
            ports[ns] = port
            link = ["ip", "-n", ns, "link", "add", "eth0", "mtu", str(mtu)]
            if shoal_like:
                link += ["address", mac_of(ips[ns])]
            run(*link, "type", "veth", "peer", "name", port, "netns", br, "mtu", str(mtu))
            run("ip", "-n", ns, "addr", "add", f"{ips[ns]}/24", "dev", "eth0")
            run("ip", "-n", br, "link", "set", port, "master", "br0")
        if shoal_like:
            # As in docs/networking.md: no learning/flooding, a static FDB entry per member, and
            # one nftables chain per port behind a verdict map on the prerouting hook.
            nft = [
                "table bridge netbench {",
                "  map ports { type ifname : verdict; }",
                "  chain prerouting {",
                "    type filter hook prerouting priority -200; policy accept;",
                "    iifname vmap @ports",
                '    iifname "p*" counter drop',
                "  }",
                "  chain input {",
                "    type filter hook input priority -200; policy accept;",
                '    iifname "p*" counter drop',
                "  }",
                "}",
            ]
            for ns in (a, b):
                port, ip, mac = ports[ns], ips[ns], mac_of(ips[ns])
                run("ip", "netns", "exec", br, "bridge", "link", "set", "dev", port, "learning", "off", "flood", "off")
                run("ip", "netns", "exec", br, "bridge", "fdb", "replace", mac, "dev", port, "master", "static")
                chain = f"port-{port}"
                nft += [
                    f"add chain bridge netbench {chain}",
                    f"add rule bridge netbench {chain} ether saddr != {mac} counter drop",
                    f"add rule bridge netbench {chain} ether type != {{ ip, arp }} counter drop",
                    f"add rule bridge netbench {chain} arp saddr ether != {mac} counter drop",
                    f"add rule bridge netbench {chain} arp saddr ip != {ip} counter drop",
                    f"add rule bridge netbench {chain} ip saddr != {ip} counter drop",
                    f"add rule bridge netbench {chain} ip daddr != {{ 10.{subnet}.0.0/24, 255.255.255.255 }} counter drop",
                    f"add rule bridge netbench {chain} accept",
                    f'add element bridge netbench ports {{ "{port}" : jump {chain} }}',
                ]
            p = subprocess.run(["ip", "netns", "exec", br, "nft", "-f", "-"], input="\n".join(nft) + "\n",
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"nft -f - in {br}: {p.stderr.strip()}")
        for ns in (a, b):
            run("ip", "-n", br, "link", "set", ports[ns], "up")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", br, "link", "set", "br0", "up")
        label = "bridge + Shoal-like nft" if shoal_like else "plain bridge"
        return HostPath(label, a, b, ips[b])

    def cleanup(self) -> bool:
        ok = True
        for ns in reversed(self.made):
            if not os.path.exists(f"/run/netns/{ns}"):
                continue
            # iperf3 daemons (and anything else) we started in it: by pid, then the namespace.
            pids = run("ip", "netns", "pids", ns, check=False).split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            try:
                run("ip", "netns", "del", ns)
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: {e}")
                ok = False
        return ok


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=7070, help="API port on 127.0.0.1 (default 7070)")
    ap.add_argument("--api-key", default=os.environ.get("SHOAL_API_KEY"), help="default: $SHOAL_API_KEY")
    ap.add_argument("--netns-prefix", required=True,
                    help="name prefix of the baseline namespaces this run creates (e.g. shoalbench-<pid>)")
    ap.add_argument("--image", default="netbench:1", help="image with iperf3 and ping (default netbench:1)")
    ap.add_argument("--probe-image", default="devbox:1", help="image with python3 and ip, for the attach test")
    ap.add_argument("--shape", default="s-2vcpu-2gb")
    ap.add_argument("--mtu", type=int, default=1450, help="MTU of the baseline links (Shoal's default: 1450)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each throughput/latency measurement")
    ap.add_argument("--seconds", type=int, default=5, help="iperf3 -t")
    ap.add_argument("--pings", type=int, default=200, help="ping -c")
    ap.add_argument("--attach-iters", type=int, default=20)
    ap.add_argument("--no-reference", action="store_true", help="skip the two bridge reference topologies")
    ap.add_argument("--json", metavar="PATH", help="also write all samples as JSON")
    args = ap.parse_args()
    if not args.api_key:
        ap.error("no API key: pass --api-key or set SHOAL_API_KEY")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) != signal.SIG_IGN:
            signal.signal(s, on_signal)

    api = Api(args.port, args.api_key)
    nss = Namespaces(args.netns_prefix)
    sandboxes: list[str] = []
    networks: list[str] = []
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    tput: dict[str, list[float]] = {}
    iperf_info: dict[str, list[dict]] = {}
    rtts: dict[str, list[dict]] = {}
    attach_ms: list[float] = []
    detach_ms: list[float] = []
    probes: list[dict] = []
    ok = False

    def create_sandbox(name: str, image: str, net: str) -> str:
        sandboxes.append(name)
        body = {"name": name, "rootfs": image, "shape": args.shape, "networks": [{"name": net}]}
        sb, secs, _ = api.expect(201, "POST", "/v1/sandboxes", body)
        log(f"  sandbox {name} ({image}) on {net}: {sb['networks'][0]['ip']} ({secs * 1e3:.0f} ms)")
        return sb["networks"][0]["ip"]

    def create_network(name: str) -> None:
        networks.append(name)
        api.expect(201, "POST", "/v1/networks", {"name": name})

    try:
        health, _, _ = api.expect(200, "GET", "/v1/health")
        log(f"shoal {health.get('version')} on {HOST}:{args.port}")

        # ---- set-up: Shoal sandboxes and the baseline namespaces
        net = PREFIX + "bench"
        create_network(net)
        create_sandbox(PREFIX + "a", args.image, net)
        ip_b = create_sandbox(PREFIX + "b", args.image, net)
        paths: list[Path] = [nss.veth_pair(args.mtu), ShoalPath(api, PREFIX + "a", PREFIX + "b", ip_b)]
        if not args.no_reference:
            paths.insert(1, nss.bridged("br", 251, args.mtu, shoal_like=False))
            paths.insert(2, nss.bridged("nf", 252, args.mtu, shoal_like=True))
        mtu = api.exec(PREFIX + "a", "cat /sys/class/net/eth0/mtu")["stdout"].strip()
        log(f"sandbox MTU {mtu}, baseline MTU {args.mtu}")
        for p in paths:
            p.start_server()
            p.warm()
            tput[p.label], rtts[p.label], iperf_info[p.label] = [], [], []
        checkpoint()

        # ---- 1 and 2: back to back, order rotated every repetition
        for rep in range(args.reps):
            order = paths[rep % len(paths):] + paths[:rep % len(paths)]
            for p in order:
                checkpoint()
                res = p.throughput(args.seconds)
                bps = res["bps"]
                tput[p.label].append(bps)
                iperf_info[p.label].append({**res, "loadavg_1m": os.getloadavg()[0]})
                log(f"  rep {rep + 1}: iperf3 {p.label:<24} {bps / 1e9:6.2f} Gbit/s  (retransmits {res['retransmits']}, "
                    f"load {os.getloadavg()[0]:.2f})")
            for p in order:
                checkpoint()
                r = p.rtt(args.pings)
                rtts[p.label].append(r)
                log(f"  rep {rep + 1}: ping   {p.label:<24} avg {r['avg'] * 1e3:6.1f} us (min {r['min'] * 1e3:.0f}, "
                    f"max {r['max'] * 1e3:.0f}, mdev {r['mdev'] * 1e3:.0f})")

        # ---- 3: attach-to-reachable
        n1, n2 = PREFIX + "n1", PREFIX + "n2"
        create_network(n1)
        create_network(n2)
        pa, pb = PREFIX + "pa", PREFIX + "pb"
        create_sandbox(pa, args.probe_image, n1)
        create_sandbox(pb, args.probe_image, n2)
        api.exec(pb, f"setsid python3 -c {sh_quote(LISTENER)} </dev/null >/dev/null 2>&1 &")
        for _ in range(100):
            if f":{PROBE_PORT}" in api.exec(pb, f"ss -Htln 'sport = :{PROBE_PORT}' || true")["stdout"]:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"listener in {pb} did not start")
        api.exec(pa, f"rm -f {PROBE_FIFO} && mkfifo {PROBE_FIFO} && setsid python3 -S -c {sh_quote(PROBE)} "
                     f"{PROBE_FIFO} {PROBE_OUT} {PROBE_PORT} </dev/null >/tmp/netbench-probe.log 2>&1 &")
        log(f"attach {pb} to {n1} x{args.attach_iters} (+1 warm-up), probing from {pa}")
        for i in range(args.attach_iters + 1):
            checkpoint()
            api.exec(pa, f"ip neigh flush dev eth0; rm -f {PROBE_OUT}")
            time.sleep(0.2)
            sb, secs, t_ret = api.expect(200, "POST", f"/v1/sandboxes/{pb}/networks", {"name": n1})
            new_ip = next(n["ip"] for n in sb["networks"] if n["network_name"] == n1)
            api.exec(pa, f"echo {new_ip} > {PROBE_FIFO}", timeout_ms=5000)
            out = ""
            for _ in range(2400):  # the probe gives up after 10 s
                out = api.exec(pa, f"cat {PROBE_OUT} 2>/dev/null || true")["stdout"].strip()
                if out:
                    break
                time.sleep(0.005)
            if not out:
                log_tail = api.exec(pa, "tail -5 /tmp/netbench-probe.log", check=False)["stdout"]
                raise RuntimeError(f"the probe in {pa} reported nothing: {log_tail}")
            pr = json.loads(out)
            pr["lag_ms"] = (pr["t_start"] - t_ret) * 1e3          # attach returned -> first try
            pr["after_return_ms"] = (pr["t_answer"] - t_ret) * 1e3  # attach returned -> answer
            pr["attach_ms"] = secs * 1e3
            pr["ip"] = new_ip
            _, dsecs, _ = api.expect(200, "DELETE", f"/v1/sandboxes/{pb}/networks/{n1}")
            if pr["answer"] == "timeout":
                raise RuntimeError(f"{pb} at {new_ip} not reachable from {pa} within 10 s after attach: {pr}")
            counted = i > 0
            if counted:
                attach_ms.append(secs * 1e3)
                detach_ms.append(dsecs * 1e3)
                probes.append(pr)
            log(f"  {'warm-up' if not counted else f'#{i:02d}':>7}: attach {secs * 1e3:6.1f} ms -> {new_ip}; "
                f"{pr['answer']} after {pr['tries']} tr{'y' if pr['tries'] == 1 else 'ies'}, "
                f"{pr['elapsed_ms']:.2f} ms of probing, first try {pr['lag_ms']:.1f} ms after the return; "
                f"detach {dsecs * 1e3:.1f} ms")
        checkpoint()
        ok = True
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e or 'SIGINT'}): cleaning up")
    except Exception as e:  # noqa: BLE001
        log(f"error: {type(e).__name__}: {e}")
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        cleanup_ok = cleanup(api, sandboxes, networks, nss)
    if not ok:
        return 1

    # ---- report
    load_after = os.getloadavg()
    base = "bare veth pair"
    t_med = {k: median(v) for k, v in tput.items()}
    r_med = {k: median([r["avg"] for r in v]) for k, v in rtts.items()}
    t_ratio = t_med["shoal"] / t_med[base]
    r_ratio = r_med["shoal"] / r_med[base]
    reach = [p["elapsed_ms"] for p in probes]
    after = [p["after_return_ms"] for p in probes]
    lag = [p["lag_ms"] for p in probes]
    first_try = sum(1 for p in probes if p["tries"] == 1)
    results = {
        "date": started.isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "loadavg_before": load_before, "loadavg_after": load_after},
        "params": {"reps": args.reps, "iperf3_seconds": args.seconds, "pings": args.pings,
                   "mtu": args.mtu, "image": args.image, "shape": args.shape, "attach_iters": args.attach_iters},
        "throughput_bps": tput, "iperf3": iperf_info, "throughput_median_bps": t_med, "throughput_ratio": t_ratio,
        "ping_rtt_ms": rtts, "ping_avg_median_ms": r_med, "rtt_ratio": r_ratio,
        "attach": {"attach_ms": attach_ms, "detach_ms": detach_ms, "probes": probes},
        "cleanup_ok": cleanup_ok,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)

    print()
    print(f"Shoal network benchmark, {started:%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{args.reps} reps each, back to back; iperf3 -t {args.seconds} (1 TCP stream), ping -c {args.pings} -i 0.01; "
          f"MTU {args.mtu}; medians over reps")
    print()
    print(f"{'path':<26} {'TCP Gbit/s':>10}  {'(reps)':<22} {'ping avg us':>11}  (reps)")
    print(f"{'-' * 26} {'-' * 10}  {'-' * 22} {'-' * 11}  {'-' * 18}")
    for p in tput:
        reps_t = " ".join(f"{x / 1e9:.2f}" for x in tput[p])
        reps_r = " ".join(f"{r['avg'] * 1e3:.0f}" for r in rtts[p])
        tag = "  (baseline)" if p == base else ""
        print(f"{p:<26} {t_med[p] / 1e9:>10.2f}  {reps_t:<22} {r_med[p] * 1e3:>11.1f}  {reps_r}{tag}")
    print()
    print(f"throughput shoal/veth {t_ratio:.2f}   (target >= {THROUGHPUT_TARGET}: "
          f"{'met' if t_ratio >= THROUGHPUT_TARGET else 'MISSED'})")
    print(f"ping avg   shoal/veth {r_ratio:.2f}   (target <= {RTT_TARGET}: "
          f"{'met' if r_ratio <= RTT_TARGET else 'MISSED'})")
    print()
    print(f"attach-to-reachable over {len(probes)} attaches (+1 warm-up):")
    print(f"  attach call (POST …/networks)        p50 {pct(attach_ms, 50):6.1f} ms   p90 {pct(attach_ms, 90):6.1f} ms   "
          f"max {max(attach_ms):6.1f} ms")
    print(f"  reachable after return (probing)     p50 {pct(reach, 50):6.2f} ms   p90 {pct(reach, 90):6.2f} ms   "
          f"max {max(reach):6.2f} ms   answered on the first try: {first_try}/{len(probes)}")
    print(f"  (info) return -> first probe try     p50 {pct(lag, 50):6.1f} ms   (one exec to wake the probe)")
    print(f"  (info) return -> answer, wall        p50 {pct(after, 50):6.1f} ms   (an upper bound: includes that lag)")
    print(f"  (info) detach call                   p50 {pct(detach_ms, 50):6.1f} ms")
    if not cleanup_ok:
        print("WARNING: cleanup was incomplete (network.sh purges the data dir anyway)")
    return 0


def sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def cleanup(api: Api, sandboxes: list[str], networks: list[str], nss: Namespaces) -> bool:
    ok = True
    for name in reversed(sandboxes):
        for attempt in range(60):
            try:
                got, payload, _, _ = api.call("DELETE", f"/v1/sandboxes/{name}")
            except Exception as e:  # noqa: BLE001
                log(f"cleanup: delete {name}: {e}")
                ok = False
                break
            if got in (204, 404):
                break
            if got == 409:  # still being created: wait for it
                time.sleep(0.5)
                continue
            log(f"cleanup: delete {name}: HTTP {got}: {payload}")
            ok = False
            break
    for name in reversed(networks):
        try:
            got, payload, _, _ = api.call("DELETE", f"/v1/networks/{name}?force=true")
            if got not in (204, 404):
                log(f"cleanup: delete network {name}: HTTP {got}: {payload}")
                ok = False
        except Exception as e:  # noqa: BLE001
            log(f"cleanup: delete network {name}: {e}")
            ok = False
    api.close()
    if not nss.cleanup():
        ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
