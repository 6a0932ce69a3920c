#!/usr/bin/env python3
"""Shoal exec round trip, streamed-exec time to first byte and file transfer throughput,
each next to a host baseline measured in the same run.

Normally started by bench/exec_files.sh, which builds Shoal, starts a private `shoal up` in its
own network namespace and cleans up afterwards. Standard library only (Python 3.11+).

Measured in one run, all in one `busybox:1` sandbox (shape --shape, default s-1vcpu-1gb,
the API's default shape, in which the 256 MiB file fits in the sandbox's page cache):

1. exec round trip: wall time of `POST /v1/sandboxes/{name}/exec {"cmd":"true"}` on one
   kept-alive HTTP connection, request sent to JSON read, --execs calls (default 200).
   Baseline: the host's `true` run with subprocess.run (fork+exec+wait). The two are
   interleaved call by call.
2. time to first byte of streamed output: `POST .../exec/stream` of
   `sh -c 'echo ready; sleep 1'`, from just before the request is sent until the first
   `{"type":"stdout"}` NDJSON event has been read and decoded (the rest of the stream is read
   to the `exit` event, outside the clock). --ttfb rounds (default 50), each:
     a. a non-streaming exec of `sh -c 'echo ready'` (info: the same shell without streaming);
     b. the streamed exec on the kept-alive connection that has just carried (a): the way a
        client with a connection pool issues calls back to back;
     c. the same on a new connection (connected outside the clock);
     d. (diagnosis) as (b), with TCP_QUICKACK set on the client socket once the request is
        sent, so that the client acknowledges the response headers at once instead of after
        Linux's delayed-ACK timeout (>= 40 ms);
     e. baseline: on the host, from just before subprocess.Popen of the same command
        (stdout=PIPE) until its first line has been read.
   Ratios: (b)/(e) and (c)/(e). A round takes about 4 s.
3. file transfer throughput of a --file-mib MiB file of random bytes (default 256):
   `PUT .../files/content?path=...` with the file streamed as a chunked request body (1 MiB
   pieces read from the file), and `GET` of the same path read into memory, whose sha256 is
   compared with the source's (outside the clock). Baseline: pipe throughput on the host,
   `cat SRC | cat > /dev/null` (sh -c). Also reported, with its own ratios: `cat SRC | cat > DST`
   (DST in the same scratch dir, on the same filesystem as Shoal's data dir, removed again
   outside the clock), which writes the file like an upload does but is at the mercy of the
   host's dirty-page throttling (very noisy on a machine where others build). --reps rounds
   (default 3), each upload, download, pipe to file, pipe to /dev/null; medians. Before each
   timed transfer the sandbox's copy (before an upload) or DST is removed and os.sync() flushes
   dirty pages, so that one transfer's writeback does not land in the next one's clock.
   Per transfer the script also records CPU seconds (utime+stime) of the `shoal` server
   process (--shoal-pid, from /proc), of the sandbox's agent (PID 1 inside, /proc/1/stat read
   with an exec before and after) and of this client, to show where the time goes.

Warm-up iterations (--exec-warmup 5, --ttfb-warmup 3) are not counted. Percentiles interpolate
linearly between closest ranks (statistics.quantiles, "inclusive"; p50 is the median). MiB/s
are 2^20 bytes per second. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse

HOST = "127.0.0.1"  # never anything else: the benchmark's traffic stays on loopback
IMAGE = "busybox:1"
NAME_PREFIX = "xfbench-"
SANDBOX = NAME_PREFIX + "1"
REMOTE_PATH = "/root/xfbench.bin"
TTFB_CMD = ["sh", "-c", "echo ready; sleep 1"]
PIECE = 1 << 20  # upload body pieces and download reads
MIB = float(1 << 20)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Interrupted(Exception):
    """A stop signal arrived: the run ends and cleanup runs."""


_stop_signal: str | None = None


def on_signal(signum, _frame):
    """SIGINT/SIGTERM/SIGHUP: stop at the next checkpoint (between calls/transfers). A second
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

    def connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn = conn
            self.connections_opened += 1
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.key}"}
        if content_type:
            h["Content-Type"] = content_type
        return h

    def call(self, method: str, path: str, body=None) -> tuple[int, object, float]:
        """JSON request; returns (status, decoded JSON body or text, wall seconds)."""
        conn = self.connect()
        data = None if body is None else json.dumps(body).encode()
        try:
            t0 = time.perf_counter()
            conn.request(method, path, body=data, headers=self.headers("application/json" if data else None))
            resp = conn.getresponse()
            raw = resp.read()
            elapsed = time.perf_counter() - t0
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return resp.status, payload, elapsed

    def expect(self, status: int | tuple[int, ...], method: str, path: str, body=None):
        ok = status if isinstance(status, tuple) else (status,)
        got, payload, elapsed = self.call(method, path, body)
        if got not in ok:
            raise ApiError(f"{method} {path}: HTTP {got} (expected {status}): {payload}")
        return payload, elapsed

    def ttfb(self, name: str, cmd: list[str], quickack: bool = False) -> tuple[float, float, int]:
        """Streamed exec; returns (seconds to the first stdout event, seconds to the `started`
        event, exit code). The clock stops once the first stdout event is decoded; the rest of
        the stream is drained (so that the connection can be reused) outside it. `quickack`:
        set TCP_QUICKACK once the request is out (Linux clears it again by itself)."""
        conn = self.connect()
        body = json.dumps({"cmd": cmd[0], "args": cmd[1:]}).encode()
        t_started = t_first = None
        exit_code = None
        try:
            t0 = time.perf_counter()
            conn.request("POST", f"/v1/sandboxes/{name}/exec/stream", body=body, headers=self.headers("application/json"))
            if quickack:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            resp = conn.getresponse()
            if resp.status != 200:
                raise ApiError(f"exec/stream: HTTP {resp.status}: {resp.read()[:500]!r}")
            while True:
                line = resp.readline()
                if not line:
                    break
                ev = json.loads(line)
                kind = ev.get("type")
                if kind == "stdout" and t_first is None:
                    data = base64.b64decode(ev["data"])
                    t_first = time.perf_counter() - t0
                    if not data.startswith(b"ready"):
                        raise ApiError(f"exec/stream: first stdout is {data!r}, expected b'ready...'")
                elif kind == "started" and t_started is None:
                    t_started = time.perf_counter() - t0
                elif kind == "exit":
                    exit_code = ev.get("exit_code")
                elif kind == "error":
                    raise ApiError(f"exec/stream: error event {ev}")
            resp.read()
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        if t_first is None or t_started is None:
            raise ApiError("exec/stream: the stream ended without a started and a stdout event")
        return t_first, t_started, exit_code

    def upload(self, name: str, remote: str, src: str) -> tuple[float, int]:
        """PUT the file as a chunked body; returns (wall seconds, bytes the API reported)."""
        conn = self.connect()

        def pieces():
            with open(src, "rb") as f:
                while chunk := f.read(PIECE):
                    yield chunk

        path = f"/v1/sandboxes/{name}/files/content?path={urllib.parse.quote(remote)}"
        try:
            t0 = time.perf_counter()
            conn.request("PUT", path, body=pieces(), headers=self.headers("application/octet-stream"), encode_chunked=True)
            resp = conn.getresponse()
            raw = resp.read()
            elapsed = time.perf_counter() - t0
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        if resp.status != 200:
            raise ApiError(f"PUT {path}: HTTP {resp.status}: {raw[:500]!r}")
        return elapsed, int(json.loads(raw)["bytes"])

    def download(self, name: str, remote: str, buf: bytearray) -> tuple[float, int]:
        """GET the file into buf; returns (wall seconds, bytes read)."""
        conn = self.connect()
        path = f"/v1/sandboxes/{name}/files/content?path={urllib.parse.quote(remote)}"
        view = memoryview(buf)
        n = 0
        try:
            t0 = time.perf_counter()
            conn.request("GET", path, headers=self.headers())
            resp = conn.getresponse()
            if resp.status != 200:
                raise ApiError(f"GET {path}: HTTP {resp.status}: {resp.read()[:500]!r}")
            while True:
                if n == len(buf):
                    raise ApiError(f"GET {path}: more than {len(buf) - 1} bytes")
                got = resp.readinto(view[n:min(n + PIECE, len(buf))])
                if not got:
                    break
                n += got
            elapsed = time.perf_counter() - t0
        except BaseException:
            self.close()
            raise
        finally:
            view.release()
        if resp.will_close:
            self.close()
        return elapsed, n


def proc_cpu_seconds(stat_line: str) -> float:
    """utime+stime from a /proc/PID/stat line (all threads of the process)."""
    fields = stat_line[stat_line.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuProbe:
    """CPU seconds of the shoal server (host /proc), the agent (PID 1 in the sandbox, read with
    an exec) and this client."""

    def __init__(self, api: Api, sandbox: str, shoal_pid: int | None):
        self.api, self.sandbox, self.shoal_pid = api, sandbox, shoal_pid

    def sample(self) -> dict[str, float | None]:
        shoal = None
        if self.shoal_pid:
            try:
                with open(f"/proc/{self.shoal_pid}/stat") as f:
                    shoal = proc_cpu_seconds(f.read())
            except OSError:
                shoal = None
        res, _ = self.api.expect(200, "POST", f"/v1/sandboxes/{self.sandbox}/exec", {"cmd": "cat", "args": ["/proc/1/stat"]})
        agent = proc_cpu_seconds(res["stdout"]) if res.get("exit_code") == 0 else None
        t = os.times()
        return {"shoal": shoal, "agent": agent, "client": t.user + t.system}

    @staticmethod
    def delta(a: dict, b: dict) -> dict[str, float | None]:
        return {k: (None if a[k] is None or b[k] is None else round(b[k] - a[k], 3)) for k in a}


def settle(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        checkpoint()
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))


def make_source(path: str, mib: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            checkpoint()
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=7290, help="API port on 127.0.0.1 (default 7290)")
    ap.add_argument("--api-key", default=os.environ.get("SHOAL_API_KEY"), help="default: $SHOAL_API_KEY")
    ap.add_argument("--work-dir", required=True, help="scratch dir for the source file and the pipe baseline")
    ap.add_argument("--shoal-pid", type=int, help="pid of the `shoal up` under test (for its CPU time)")
    ap.add_argument("--shape", default="s-1vcpu-1gb",
                    help="sandbox shape (default s-1vcpu-1gb, the API's default: the file fits in its page cache)")
    ap.add_argument("--execs", type=int, default=200)
    ap.add_argument("--exec-warmup", type=int, default=5)
    ap.add_argument("--ttfb", type=int, default=50)
    ap.add_argument("--ttfb-warmup", type=int, default=3)
    ap.add_argument("--file-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to idle between phases (default 2)")
    ap.add_argument("--timeout", type=float, default=600.0, help="HTTP timeout in seconds")
    ap.add_argument("--json", metavar="PATH", help="also write all samples and results as JSON")
    args = ap.parse_args()
    if not args.api_key:
        ap.error("no API key: pass --api-key or set SHOAL_API_KEY")
    if min(args.execs, args.ttfb, args.file_mib, args.reps) < 1:
        ap.error("--execs, --ttfb, --file-mib and --reps must be at least 1")
    if args.shoal_pid:
        try:
            with open(f"/proc/{args.shoal_pid}/comm") as f:
                if f.read().strip() != "shoal":
                    log(f"pid {args.shoal_pid} is not `shoal`: its CPU time is not recorded")
                    args.shoal_pid = None
        except OSError:
            args.shoal_pid = None

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) != signal.SIG_IGN:
            signal.signal(s, on_signal)

    api = Api(args.port, args.api_key, args.timeout)
    fresh_api = Api(args.port, args.api_key, args.timeout)  # a new connection per streamed exec
    made: list[str] = []
    work_files: list[str] = []
    src = os.path.join(args.work_dir, "xfbench-src.bin")
    dst = os.path.join(args.work_dir, "xfbench-pipe-dst.bin")
    size = args.file_mib << 20
    exec_ms: list[float] = []
    host_ms: list[float] = []
    # streamed exec: kept-alive connection, new connection, kept-alive + TCP_QUICKACK
    ttfb_ms: dict[str, list[float]] = {"kept": [], "new": [], "quickack": []}
    started_ms: dict[str, list[float]] = {"kept": [], "new": [], "quickack": []}
    host_ttfb_ms: list[float] = []
    sh_exec_ms: list[float] = []
    up_s: list[float] = []
    down_s: list[float] = []
    pipe_s: list[float] = []
    null_s: list[float] = []
    cpu: dict[str, list[dict]] = {"upload": [], "download": []}
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    ok = False
    try:
        health, _ = api.expect(200, "GET", "/v1/health")
        log(f"shoal {health.get('version')} on {HOST}:{args.port}")
        made.append(SANDBOX)
        _, secs = api.expect(201, "POST", "/v1/sandboxes", {"name": SANDBOX, "rootfs": IMAGE, "shape": args.shape})
        log(f"sandbox {SANDBOX} ({IMAGE}, {args.shape}) ready in {secs * 1e3:.0f} ms")
        true_bin = shutil.which("true") or "/bin/true"

        # 1. exec round trip, interleaved with the host's fork+exec+wait.
        settle(args.settle)
        log(f"exec `true` x{args.execs} (+{args.exec_warmup} warm-up), interleaved with host subprocess `{true_bin}`")
        for i in range(args.exec_warmup + args.execs):
            checkpoint()
            res, secs = api.expect(200, "POST", f"/v1/sandboxes/{SANDBOX}/exec", {"cmd": "true"})
            if res.get("exit_code") != 0:
                raise RuntimeError(f"exec `true` exited {res.get('exit_code')}: {res.get('stderr')}")
            t0 = time.perf_counter()
            subprocess.run([true_bin], check=True)
            h_secs = time.perf_counter() - t0
            if i >= args.exec_warmup:
                exec_ms.append(secs * 1e3)
                host_ms.append(h_secs * 1e3)

        # 2. time to first streamed byte (see the docstring for a-e).
        settle(args.settle)
        log(f"exec/stream {shlex.join(TTFB_CMD)}: {args.ttfb} rounds (+{args.ttfb_warmup} warm-up) of exec sh, "
            f"stream on the kept-alive connection, on a new one, kept-alive + TCP_QUICKACK, host Popen "
            f"(about {4 * (args.ttfb + args.ttfb_warmup)} s)")
        for i in range(args.ttfb_warmup + args.ttfb):
            counted = i >= args.ttfb_warmup
            checkpoint()
            res, sh_secs = api.expect(200, "POST", f"/v1/sandboxes/{SANDBOX}/exec", {"cmd": "sh", "args": ["-c", "echo ready"]})
            if res.get("exit_code") != 0:
                raise RuntimeError(f"exec sh -c 'echo ready' exited {res.get('exit_code')}")
            for variant in ("kept", "new", "quickack"):
                checkpoint()
                client = api
                if variant == "new":
                    fresh_api.close()
                    fresh_api.connect()  # outside the clock
                    client = fresh_api
                first, st, code = client.ttfb(SANDBOX, TTFB_CMD, quickack=variant == "quickack")
                if code != 0:
                    raise RuntimeError(f"streamed exec exited {code}")
                if counted:
                    ttfb_ms[variant].append(first * 1e3)
                    started_ms[variant].append(st * 1e3)
            fresh_api.close()
            checkpoint()
            t0 = time.perf_counter()
            p = subprocess.Popen(TTFB_CMD, stdout=subprocess.PIPE)
            line = p.stdout.readline()
            h_secs = time.perf_counter() - t0
            p.stdout.read()
            p.stdout.close()
            if p.wait() != 0 or not line.startswith(b"ready"):
                raise RuntimeError(f"host baseline: exit {p.returncode}, first line {line!r}")
            if counted:
                sh_exec_ms.append(sh_secs * 1e3)
                host_ttfb_ms.append(h_secs * 1e3)

        # 3. file transfers, each round: upload, download, pipe, pipe to /dev/null.
        settle(args.settle)
        log(f"writing a {args.file_mib} MiB source file of random bytes")
        work_files += [src, dst]
        src_sum = make_source(src, args.file_mib)
        buf = bytearray(size + 1)
        probe = CpuProbe(api, SANDBOX, args.shoal_pid)
        pipe_cmd = f"cat {shlex.quote(src)} | cat > {shlex.quote(dst)}"
        null_cmd = f"cat {shlex.quote(src)} | cat > /dev/null"
        log(f"{args.reps} round(s) of PUT, GET (sha256 checked), `{pipe_cmd}`, `{null_cmd}`")
        for r in range(args.reps):
            checkpoint()
            api.expect((204, 404), "DELETE", f"/v1/sandboxes/{SANDBOX}/files?path={urllib.parse.quote(REMOTE_PATH)}")
            os.sync()
            a = probe.sample()
            secs, n = api.upload(SANDBOX, REMOTE_PATH, src)
            b = probe.sample()
            if n != size:
                raise RuntimeError(f"upload: the API reported {n} bytes, sent {size}")
            up_s.append(secs)
            cpu["upload"].append(CpuProbe.delta(a, b))

            checkpoint()
            os.sync()
            a = probe.sample()
            secs, n = api.download(SANDBOX, REMOTE_PATH, buf)
            b = probe.sample()
            got_sum = hashlib.sha256(memoryview(buf)[:n]).hexdigest()
            if n != size or got_sum != src_sum:
                raise RuntimeError(f"download: {n} bytes, sha256 {got_sum}; expected {size} bytes, sha256 {src_sum}")
            down_s.append(secs)
            cpu["download"].append(CpuProbe.delta(a, b))

            checkpoint()
            if os.path.exists(dst):
                os.unlink(dst)
            os.sync()
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", pipe_cmd], check=True)
            pipe_s.append(time.perf_counter() - t0)
            if os.path.getsize(dst) != size:
                raise RuntimeError(f"pipe baseline wrote {os.path.getsize(dst)} bytes")
            os.unlink(dst)

            checkpoint()
            os.sync()
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", null_cmd], check=True)
            null_s.append(time.perf_counter() - t0)
            log(f"  round {r + 1}: upload {size / MIB / up_s[-1]:7.1f} MiB/s ({up_s[-1]:.2f} s), "
                f"download {size / MIB / down_s[-1]:7.1f} MiB/s ({down_s[-1]:.2f} s), sha256 ok, "
                f"pipe {size / MIB / pipe_s[-1]:7.1f} MiB/s, pipe to /dev/null {size / MIB / null_s[-1]:7.1f} MiB/s")
        del buf
        checkpoint()
        ok = True
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e or 'SIGINT'}): cleaning up")
    except Exception as e:  # noqa: BLE001 - report, clean up, exit non-zero
        log(f"error: {e}")
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        fresh_api.close()
        cleanup_ok = cleanup(api, made, work_files)
    if not ok:
        return 1

    load_after = os.getloadavg()
    e50, e99, h50, h99 = pct(exec_ms, 50), pct(exec_ms, 99), pct(host_ms, 50), pct(host_ms, 99)
    t50, t99 = pct(ttfb_ms["kept"], 50), pct(ttfb_ms["kept"], 99)
    n50, n99 = pct(ttfb_ms["new"], 50), pct(ttfb_ms["new"], 99)
    q50, q99 = pct(ttfb_ms["quickack"], 50), pct(ttfb_ms["quickack"], 99)
    b50, b99 = pct(host_ttfb_ms, 50), pct(host_ttfb_ms, 99)
    up = statistics.median(size / MIB / s for s in up_s)
    down = statistics.median(size / MIB / s for s in down_s)
    pipe = statistics.median(size / MIB / s for s in pipe_s)
    null = statistics.median(size / MIB / s for s in null_s)

    def cpu_median(direction: str, who: str) -> float | None:
        vals = [c[who] for c in cpu[direction] if c[who] is not None]
        return statistics.median(vals) if vals else None

    results = {
        "date": started.isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                 "loadavg_before": load_before, "loadavg_after": load_after},
        "sandbox": {"image": IMAGE, "shape": args.shape},
        "exec_true_ms": {"p50": e50, "p99": e99, "n": len(exec_ms), "samples": exec_ms},
        "host_subprocess_true_ms": {"p50": h50, "p99": h99, "n": len(host_ms), "samples": host_ms},
        "exec_ratio_p50": e50 / h50,
        "stream_first_stdout_ms": {k: {"p50": pct(v, 50), "p99": pct(v, 99), "n": len(v), "samples": v} for k, v in ttfb_ms.items()},
        "stream_started_event_ms": {k: {"p50": pct(v, 50), "p99": pct(v, 99), "samples": v} for k, v in started_ms.items()},
        "exec_sh_echo_ms": {"p50": pct(sh_exec_ms, 50), "p99": pct(sh_exec_ms, 99), "samples": sh_exec_ms},
        "host_popen_first_line_ms": {"p50": b50, "p99": b99, "n": len(host_ttfb_ms), "samples": host_ttfb_ms},
        "ttfb_ratio_p50": t50 / b50,
        "ttfb_new_connection_ratio_p50": n50 / b50,
        "file_bytes": size,
        "upload_s": up_s, "download_s": down_s, "pipe_s": pipe_s, "pipe_devnull_s": null_s,
        "upload_mib_s": up, "download_mib_s": down, "pipe_mib_s": pipe, "pipe_devnull_mib_s": null,
        "upload_ratio": up / null, "download_ratio": down / null,
        "upload_ratio_vs_pipe_to_file": up / pipe, "download_ratio_vs_pipe_to_file": down / pipe,
        "cpu_seconds": cpu,
        "http_connections_opened": api.connections_opened + fresh_api.connections_opened,
        "cleanup_ok": cleanup_ok,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)

    print()
    print(f"Shoal exec/stream/files benchmark, {started:%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, Linux {platform.release()}, "
          f"sandbox {IMAGE} {args.shape}, load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{len(exec_ms)} execs (+{args.exec_warmup}), {args.ttfb} x 3 streamed execs (+{args.ttfb_warmup} x 3), "
          f"{args.reps} x {args.file_mib} MiB each way; {api.connections_opened} kept-alive + {fresh_api.connections_opened} new HTTP connection(s)")
    print()
    print(f"{'metric':<30} {'shoal':>13}   {'baseline':<40} {'ratio':>6}")
    print(f"{'-' * 30} {'-' * 13}   {'-' * 40} {'-' * 6}")
    rows = [
        ("exec `true` p50", f"{e50:.2f} ms", f"host fork+exec+wait {h50:.2f} ms", f"{e50 / h50:.2f}"),
        ("exec `true` p99", f"{e99:.2f} ms", f"host fork+exec+wait {h99:.2f} ms", f"{e99 / h99:.2f}"),
        ("stream 1st stdout p50 (kept)", f"{t50:.2f} ms", f"host Popen first line {b50:.2f} ms", f"{t50 / b50:.2f}"),
        ("stream 1st stdout p99 (kept)", f"{t99:.2f} ms", f"host Popen first line {b99:.2f} ms", f"{t99 / b99:.2f}"),
        ("stream 1st stdout p50 (new)", f"{n50:.2f} ms", f"host Popen first line {b50:.2f} ms", f"{n50 / b50:.2f}"),
        ("stream 1st stdout p99 (new)", f"{n99:.2f} ms", f"host Popen first line {b99:.2f} ms", f"{n99 / b99:.2f}"),
        (f"upload {args.file_mib} MiB (median)", f"{up:.1f} MiB/s", f"host cat | cat > /dev/null {null:.1f} MiB/s", f"{up / null:.3f}"),
        (f"download {args.file_mib} MiB (median)", f"{down:.1f} MiB/s", f"host cat | cat > /dev/null {null:.1f} MiB/s", f"{down / null:.3f}"),
        (f"upload {args.file_mib} MiB (median)", f"{up:.1f} MiB/s", f"host cat | cat > file {pipe:.1f} MiB/s", f"{up / pipe:.3f}"),
        (f"download {args.file_mib} MiB (median)", f"{down:.1f} MiB/s", f"host cat | cat > file {pipe:.1f} MiB/s", f"{down / pipe:.3f}"),
    ]
    for metric, value, base, ratio in rows:
        print(f"{metric:<30} {value:>13}   {base:<40} {ratio:>6}")
    print()
    print("(kept) = on the kept-alive connection right after another call, (new) = on a new connection")
    print(f"(info) stream 1st stdout, kept-alive + client TCP_QUICKACK: p50 {q50:.2f} ms, p99 {q99:.2f} ms")
    print(f"(info) `started` event p50: kept {pct(started_ms['kept'], 50):.2f} ms, new {pct(started_ms['new'], 50):.2f} ms, "
          f"quickack {pct(started_ms['quickack'], 50):.2f} ms; non-streaming exec of `sh -c 'echo ready'` "
          f"p50 {pct(sh_exec_ms, 50):.2f} ms, p99 {pct(sh_exec_ms, 99):.2f} ms")
    for d in ("upload", "download"):
        wall = statistics.median(up_s if d == "upload" else down_s)
        parts = []
        for who in ("agent", "shoal", "client"):
            v = cpu_median(d, who)
            parts.append(f"{who} {v:.2f} s ({v / wall * 100:.0f}%)" if v is not None else f"{who} n/a")
        print(f"(info) CPU during {d} (median of rounds; % of the median wall time {wall:.2f} s): {', '.join(parts)}")
    if not cleanup_ok:
        print("WARNING: cleanup was incomplete (exec_files.sh purges the data dir anyway)")
    return 0


def cleanup(api: Api, made: list[str], work_files: list[str]) -> bool:
    ok = True
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
                status, payload, _ = api.call("DELETE", f"/v1/sandboxes/{name}")
                # 409 while a create we walked away from is still running on the server.
                if status != 409 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if status not in (200, 204, 404):
                ok = False
                log(f"cleanup: DELETE sandbox {name}: HTTP {status}: {payload}")
        except Exception as e:  # noqa: BLE001
            ok = False
            log(f"cleanup: DELETE sandbox {name}: {e}")
    api.close()
    for path in work_files:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            ok = False
            log(f"cleanup: removing {path}: {e}")
    log("benchmark cleanup " + ("done" if ok else "INCOMPLETE"))
    return ok


if __name__ == "__main__":
    sys.exit(main())
