#!/usr/bin/env python3
"""Shoal create-to-ready and exec round-trip benchmark, each with a baseline.

Normally started by bench/run.sh, which builds Shoal, starts a private `shoal up` for it and
cleans up afterwards. Standard library only (Python 3.11+). Run as root (the baseline drives
runc directly).

Measured in one run:

1. create-to-ready: wall time of `POST /v1/sandboxes` (busybox:1, s-1vcpu-256mb, one network);
   the API answers 201 only once the sandbox's agent answers, i.e. when it takes commands.
   `--creates` sandboxes (default 20) are created one after another and all deleted at the end.
   Baseline: `runc run --detach` of a minimal bundle (`runc spec`, args ["sleep","1000"],
   terminal false) on a copy of the same busybox rootfs, with its own --root state dir; the time
   until `runc run -d` returns (the container is then running, which is checked untimed); each
   container is removed with `runc delete --force` right after. Shoal and baseline runs are
   interleaved so that background load on the machine hits both alike.
2. exec round trip: wall time of `POST /v1/sandboxes/{name}/exec {"cmd":"true"}` on one
   kept-alive HTTP connection, `--execs` calls (default 200). Baseline: the host's `true` run
   with subprocess (fork+exec+wait) as many times.

Warm-up iterations (--warmup, default 1 create and 5 execs) are run first and not counted.
Percentiles interpolate linearly between closest ranks (statistics.quantiles, "inclusive";
p50 is the median). All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HOST = "127.0.0.1"  # never anything else: the benchmark's traffic stays on loopback
IMAGE = "busybox:1"
SHAPE = "s-1vcpu-256mb"
NETWORK = "bench"
NAME_PREFIX = "bench-"
CREATE_TARGET_MS = 150.0
EXEC_TARGET_MS = 5.0


class Interrupted(Exception):
    """A stop signal arrived: the run ends and cleanup runs."""


_stop_signal: str | None = None


def on_signal(signum, _frame):
    """SIGINT/SIGTERM/SIGHUP: stop at the next checkpoint, i.e. after the create, runc run or
    exec in flight (killing `runc run` midway would leave half-made containers behind). A second
    signal stops at once."""
    global _stop_signal
    if _stop_signal is not None:
        raise Interrupted(f"{_stop_signal}, then {signal.Signals(signum).name}")
    _stop_signal = signal.Signals(signum).name
    log(f"{_stop_signal}: stopping after the current step")


def checkpoint() -> None:
    if _stop_signal is not None:
        raise Interrupted(_stop_signal)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


class ApiError(Exception):
    pass


class Api:
    """One kept-alive HTTP/1.1 connection to the Shoal API on loopback."""

    def __init__(self, port: int, key: str, timeout: float):
        self.port, self.key, self.timeout = port, key, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.connections_opened = 0

    def _connect(self) -> None:
        self.close()
        conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        conn.connect()
        # Request line, headers and body go out in one write (http.client joins them for a
        # bytes body); NODELAY keeps Nagle from holding back anything else.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        self.connections_opened += 1

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, path: str, body=None) -> tuple[int, object, float]:
        """Returns (status, decoded JSON body or text, wall seconds of request+response)."""
        if self.conn is None:
            self._connect()
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
        except BaseException:
            self.close()  # the next call starts a fresh connection
            raise
        if resp.will_close:
            self.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return resp.status, payload, elapsed

    def expect(self, status: int, method: str, path: str, body=None):
        got, payload, elapsed = self.call(method, path, body)
        if got != status:
            raise ApiError(f"{method} {path}: HTTP {got} (expected {status}): {payload}")
        return payload, elapsed


class Baseline:
    """Bare runc on a copy of the image's rootfs, with its own state dir."""

    def __init__(self, image_rootfs: str, work_dir: str, runc_root: str):
        self.attempted: list[str] = []
        self.dir = os.path.join(work_dir, "baseline")
        self.bundle = os.path.join(self.dir, "bundle")
        self.root = runc_root
        self.log_path = os.path.join(self.dir, "runc.log")
        os.makedirs(self.bundle, exist_ok=True)
        os.makedirs(self.root, exist_ok=True)
        # cp -a keeps symlinks (busybox applets), modes and ownership.
        subprocess.run(["cp", "-a", image_rootfs, os.path.join(self.bundle, "rootfs")], check=True)
        subprocess.run(["runc", "spec", "--bundle", self.bundle], check=True)
        cfg_path = os.path.join(self.bundle, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["process"]["args"] = ["sleep", "1000"]
        cfg["process"]["terminal"] = False
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)

    def _runc(self, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
        with open(self.log_path, "ab") as log_file:
            # Never pipes for `run`: the detached container would inherit them and keep them open.
            return subprocess.run(
                ["runc", "--root", self.root, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else log_file,
                stderr=log_file,
                check=check,
            )

    def run_once(self, cid: str) -> float:
        """Seconds until `runc run --detach` returned; the container is removed again."""
        self.attempted.append(cid)
        try:
            t0 = time.perf_counter()
            self._runc("run", "--detach", "--bundle", self.bundle, cid)
            elapsed = time.perf_counter() - t0
            state = json.loads(self._runc("state", cid, capture=True).stdout)
            if state.get("status") != "running":
                raise RuntimeError(f"baseline container {cid} is {state.get('status')}, not running")
            return elapsed
        finally:
            self._runc("delete", "--force", cid, check=False)

    def cleanup(self) -> None:
        out = self._runc("list", "-q", check=False, capture=True).stdout.decode().split()
        for cid in out:
            log(f"removing leftover baseline container {cid}")
            self._runc("delete", "--force", cid, check=False)
        # A `runc run` that died early can leave its (empty) cgroups behind, one per
        # controller, named after the container (cgroups v1; `unified` on hybrid hosts).
        for cid in self.attempted:
            for ctl in os.listdir("/sys/fs/cgroup"):
                path = os.path.join("/sys/fs/cgroup", ctl, cid)
                if os.path.isdir(path):
                    try:
                        os.rmdir(path)
                        log(f"removed leftover cgroup {path}")
                    except OSError as e:
                        log(f"cleanup: cannot remove cgroup {path}: {e}")
        shutil.rmtree(self.dir, ignore_errors=True)


def settle(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        checkpoint()
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=7290, help="API port on 127.0.0.1 (default 7290)")
    ap.add_argument("--api-key", default=os.environ.get("SHOAL_API_KEY"), help="default: $SHOAL_API_KEY")
    ap.add_argument("--data-dir", required=True, help="the data dir of the `shoal up` under test (for the image rootfs)")
    ap.add_argument("--work-dir", required=True, help="scratch dir for the runc baseline bundle")
    ap.add_argument("--runc-root", help="runc --root for the baseline (default: WORK_DIR/runc-root)")
    ap.add_argument("--creates", type=int, default=20)
    ap.add_argument("--execs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=1, help="uncounted creates/baseline runs first (default 1)")
    ap.add_argument("--exec-warmup", type=int, default=5, help="uncounted execs first (default 5)")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds to idle between phases, e.g. while the kernel tears down the baseline "
                         "containers' network namespaces in the background (default 2)")
    ap.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds")
    ap.add_argument("--json", metavar="PATH", help="also write all samples and results as JSON")
    args = ap.parse_args()
    if not args.api_key:
        ap.error("no API key: pass --api-key or set SHOAL_API_KEY")
    if args.creates < 1 or args.execs < 1:
        ap.error("--creates and --execs must be at least 1")
    runc_root = args.runc_root or os.path.join(args.work_dir, "runc-root")
    image_rootfs = os.path.join(args.data_dir, "images", "busybox", "1", "rootfs")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) != signal.SIG_IGN:  # keep "ignored" as inherited (nohup)
            signal.signal(s, on_signal)

    api = Api(args.port, args.api_key, args.timeout)
    baseline: Baseline | None = None
    network_made = False
    made: list[str] = []
    create_ms: list[float] = []
    runc_ms: list[float] = []
    delete_ms: list[float] = []
    exec_ms: list[float] = []
    exec_agent_ms: list[float] = []
    host_ms: list[float] = []
    spawn_ms: list[float] = []
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    ok = False
    try:
        health, _ = api.expect(200, "GET", "/v1/health")
        log(f"shoal {health.get('version')} on {HOST}:{args.port}")
        if not os.path.isdir(image_rootfs):
            raise RuntimeError(f"image rootfs {image_rootfs} not found (has `shoal up` built {IMAGE}?)")
        baseline = Baseline(image_rootfs, args.work_dir, runc_root)
        api.expect(201, "POST", "/v1/networks", {"name": NETWORK})
        network_made = True

        # 1. create-to-ready, interleaved with the bare-runc baseline.
        total = args.warmup + args.creates
        log(f"creating {args.creates} sandboxes (+{args.warmup} warm-up), interleaved with bare `runc run -d`")
        for i in range(total):
            counted = i >= args.warmup
            name = f"{NAME_PREFIX}{i - args.warmup + 1:02d}" if counted else f"{NAME_PREFIX}warmup-{i + 1}"
            body = {"name": name, "rootfs": IMAGE, "shape": SHAPE, "networks": [{"name": NETWORK}]}
            made.append(name)
            checkpoint()
            _, secs = api.expect(201, "POST", "/v1/sandboxes", body)
            checkpoint()
            b_secs = baseline.run_once(f"shoal-bench-{os.getpid()}-{i}")
            if counted:
                create_ms.append(secs * 1e3)
                runc_ms.append(b_secs * 1e3)
            log(f"  {name}: create {secs * 1e3:7.1f} ms | bare runc run {b_secs * 1e3:7.1f} ms{'' if counted else '  (warm-up)'}")

        # 2. exec round trip on one of them, then the host baseline.
        settle(args.settle)
        target = made[args.warmup]
        log(f"exec `true` x{args.execs} (+{args.exec_warmup} warm-up) in {target}")
        conns_before = api.connections_opened
        for i in range(args.exec_warmup + args.execs):
            checkpoint()
            res, secs = api.expect(200, "POST", f"/v1/sandboxes/{target}/exec", {"cmd": "true"})
            if res.get("exit_code") != 0:
                raise RuntimeError(f"exec `true` exited {res.get('exit_code')}: {res.get('stderr')}")
            if i >= args.exec_warmup:
                exec_ms.append(secs * 1e3)
                exec_agent_ms.append(float(res.get("duration_ms", 0)))
        exec_reconnects = api.connections_opened - conns_before
        true_bin = shutil.which("true") or "/bin/true"
        settle(args.settle)
        log(f"host subprocess `{true_bin}` x{args.execs} (+{args.exec_warmup} warm-up)")
        for i in range(args.exec_warmup + args.execs):
            checkpoint()
            t0 = time.perf_counter()
            subprocess.run([true_bin], check=True)
            secs = time.perf_counter() - t0
            if i >= args.exec_warmup:
                host_ms.append(secs * 1e3)
        # For reference only: the same without subprocess's Python-side work (pipes for error
        # reporting, fd closing), i.e. close to the bare cost of spawning a process here.
        for i in range(args.exec_warmup + args.execs):
            checkpoint()
            t0 = time.perf_counter()
            pid = os.posix_spawn(true_bin, [true_bin], os.environ)
            _, status = os.waitpid(pid, 0)
            secs = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"{true_bin} failed: wait status {status}")
            if i >= args.exec_warmup:
                spawn_ms.append(secs * 1e3)
        checkpoint()
        ok = True
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e or 'SIGINT'}): cleaning up")
    except Exception as e:  # noqa: BLE001 - report, clean up, exit non-zero
        log(f"error: {e}")
    finally:
        # Cleanup must finish: ignore further signals (run.sh gives up on us after a while).
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        cleanup_ok = cleanup(api, made, network_made, baseline, delete_ms)
    if not ok:
        return 1

    load_after = os.getloadavg()
    c50, c90 = pct(create_ms, 50), pct(create_ms, 90)
    r50 = pct(runc_ms, 50)
    e50, e99 = pct(exec_ms, 50), pct(exec_ms, 99)
    h50 = pct(host_ms, 50)
    results = {
        "date": started.isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "runc": subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "create_to_ready_ms": {"p50": c50, "p90": c90, "n": len(create_ms), "samples": create_ms},
        "bare_runc_run_ms": {"p50": r50, "p90": pct(runc_ms, 90), "n": len(runc_ms), "samples": runc_ms},
        "create_ratio_p50": c50 / r50,
        "exec_true_ms": {"p50": e50, "p99": e99, "n": len(exec_ms), "samples": exec_ms},
        "exec_agent_duration_ms": {"p50": pct(exec_agent_ms, 50)},
        "host_subprocess_true_ms": {"p50": h50, "p99": pct(host_ms, 99), "n": len(host_ms), "samples": host_ms},
        "exec_ratio_p50": e50 / h50,
        "host_posix_spawn_true_ms": {"p50": pct(spawn_ms, 50), "p99": pct(spawn_ms, 99), "n": len(spawn_ms), "samples": spawn_ms},
        "delete_ms": {"p50": pct(delete_ms, 50)} if delete_ms else None,
        "http_connections_opened_during_exec": exec_reconnects,
        "cleanup_ok": cleanup_ok,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)

    def verdict(value: float, target: float) -> str:
        return f"target < {target:g} ms: {'met' if value < target else 'MISSED'}"

    rows = [
        ("create-to-ready p50", c50, f"bare runc run {r50:.1f} ms", f"{c50 / r50:.2f}", verdict(c50, CREATE_TARGET_MS)),
        ("create-to-ready p90", c90, f"bare runc run {pct(runc_ms, 90):.1f} ms", "", ""),
        ("exec `true` p50", e50, f"host fork+exec+wait {h50:.2f} ms", f"{e50 / h50:.2f}", verdict(e50, EXEC_TARGET_MS)),
        ("exec `true` p99", e99, f"host fork+exec+wait {pct(host_ms, 99):.2f} ms", "", ""),
    ]
    print()
    print(f"Shoal benchmark, {started:%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"{results['host']['runc']}, load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{len(create_ms)} creates (+{args.warmup} warm-up), {len(exec_ms)} execs (+{args.exec_warmup} warm-up); "
          f"{exec_reconnects} new HTTP connection(s) during the exec loop")
    print()
    print(f"{'metric':<22} {'shoal':>10}   {'baseline':<34} {'ratio':>6}   target")
    print(f"{'-' * 22} {'-' * 10}   {'-' * 34} {'-' * 6}   {'-' * 22}")
    for metric, value, base, ratio, target in rows:
        print(f"{metric:<22} {value:>7.2f} ms   {base:<34} {ratio:>6}   {target}")
    print()
    print(f"create-to-ready p50 {c50:.1f} ms (bare runc run {r50:.1f} ms, ratio {c50 / r50:.2f}), p90 {c90:.1f} ms")
    print(f"exec `true` p50 {e50:.2f} ms (host subprocess {h50:.2f} ms, ratio {e50 / h50:.2f}), p99 {e99:.2f} ms; "
          f"agent-reported duration p50 {pct(exec_agent_ms, 50):.0f} ms")
    print(f"(info) host os.posix_spawn+waitpid of `true` p50 {pct(spawn_ms, 50):.2f} ms, p99 {pct(spawn_ms, 99):.2f} ms "
          f"(the subprocess baseline minus Python's subprocess bookkeeping)")
    if delete_ms:
        print(f"(info) sandbox delete p50 {pct(delete_ms, 50):.1f} ms over {len(delete_ms)}")
    if not cleanup_ok:
        print("WARNING: cleanup was incomplete (run.sh purges the data dir anyway)")
    return 0


def cleanup(api: Api, made: list[str], network_made: bool, baseline: Baseline | None, delete_ms: list[float]) -> bool:
    ok = True
    # Everything this run may have created, including a create that was cut short on our side.
    names = list(made)
    try:
        status, payload, _ = api.call("GET", "/v1/sandboxes")
        if status == 200 and isinstance(payload, dict):
            names += [s["name"] for s in payload.get("sandboxes", []) if s.get("name", "").startswith(NAME_PREFIX)]
    except Exception as e:  # noqa: BLE001
        log(f"cleanup: listing sandboxes failed: {e}")
    for name in dict.fromkeys(names):
        try:
            deadline = time.monotonic() + 60
            while True:
                status, payload, secs = api.call("DELETE", f"/v1/sandboxes/{name}")
                # 409 while a create we walked away from is still running on the server.
                if status != 409 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if status in (200, 204):
                delete_ms.append(secs * 1e3)
            elif status != 404:
                ok = False
                log(f"cleanup: DELETE sandbox {name}: HTTP {status}: {payload}")
        except Exception as e:  # noqa: BLE001
            ok = False
            log(f"cleanup: DELETE sandbox {name}: {e}")
    if network_made:
        try:
            status, payload, _ = api.call("DELETE", f"/v1/networks/{NETWORK}")
            if status not in (200, 204, 404):
                ok = False
                log(f"cleanup: DELETE network {NETWORK}: HTTP {status}: {payload}")
        except Exception as e:  # noqa: BLE001
            ok = False
            log(f"cleanup: DELETE network {NETWORK}: {e}")
    api.close()
    if baseline is not None:
        try:
            baseline.cleanup()
        except Exception as e:  # noqa: BLE001
            ok = False
            log(f"cleanup: baseline: {e}")
    log("benchmark cleanup " + ("done" if ok else "INCOMPLETE"))
    return ok


if __name__ == "__main__":
    sys.exit(main())
