"""Streaming exec, process controls and files without a server (httpx.MockTransport)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shoal import (
    AsyncShoal,
    Conflict,
    NotFound,
    PermissionDenied,
    ProcessEvent,
    ProcessResult,
    Sandbox,
    Shoal,
    ShoalError,
)

SANDBOX = {
    "id": "sbx-0123456789",
    "name": "api",
    "shape": "s-1vcpu-1gb",
    "rootfs": "busybox:1",
    "state": "running",
    "runtime": "container",
    "networks": [],
    "env": {},
    "created_at": "2026-12-03T14:17:50Z",
}
BASE = "/v1/sandboxes/sbx-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("SHOAL_URL", "SHOAL_API_KEY", "SHOAL_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def ndjson(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def pieces(data: bytes, n: int = 7) -> Iterator[bytes]:
    """The body in small pieces that cut lines anywhere."""
    for i in range(0, len(data), n):
        yield data[i : i + n]


def sandbox(handler: Callable[[httpx.Request], httpx.Response]) -> Sandbox:
    def h(req: httpx.Request) -> httpx.Response:
        req.read()
        if req.url.path == BASE and req.method == "GET":
            return httpx.Response(200, json=SANDBOX)
        return handler(req)

    c = Shoal("http://shoal.test", "k3y", http_client=httpx.Client(transport=httpx.MockTransport(h)))
    return c.sandboxes.get("sbx-0123456789")


def err(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


STREAM = ndjson(
    {"type": "started", "pid": 42},
    {"type": "stdout", "data": b64(b"hel")},
    {"type": "future-event", "x": 1},
    {"type": "stderr", "data": b64(b"\xff\x00")},
    {"type": "heartbeat"},
    {"type": "error", "code": "invalid_argument", "message": "process 42 has no pty to resize"},
    {"type": "stdout", "data": b64(b"lo\n"), "offset": 3},
    {"type": "exit", "exit_code": 3, "signal": None, "timed_out": False, "duration_ms": 12},
)


def test_exec_request_events_and_result() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, headers={"content-type": "application/x-ndjson"}, content=pieces(STREAM))

    sb = sandbox(handler)
    out: list[bytes] = []
    p = sb.exec(
        "sh",
        "-c",
        "x",
        5,
        env={"A": 1},
        cwd="/tmp",
        stdin=b"\x00\xff",
        keep_stdin_open=True,
        timeout=5,
        pty=True,
        on_stdout=out.append,
    )
    assert p.pid == 42 and p.result is None
    events = list(p)
    assert [e.type for e in events] == ["started", "stdout", "stderr", "heartbeat", "error", "stdout", "exit"]
    assert events[2].data == b"\xff\x00" and events[6].offset is None and events[5].offset == 3
    assert events[4] == ProcessEvent("error", code="invalid_argument", message="process 42 has no pty to resize")
    assert b"".join(out) == b"hello\n"
    assert p.wait() == ProcessResult(exit_code=3, signal=None, timed_out=False, duration_ms=12)
    req = seen[-1]
    assert (req.method, req.url.path) == ("POST", f"{BASE}/exec/stream")
    assert req.headers["authorization"] == "Bearer k3y"
    assert json.loads(req.content) == {
        "cmd": "sh",
        "args": ["-c", "x", "5"],
        "env": {"A": "1"},
        "cwd": "/tmp",
        "stdin_base64": "AP8=",
        "keep_stdin_open": True,
        "timeout_ms": 5000,
        "pty": {"rows": 24, "cols": 80},
    }
    assert req.extensions["timeout"]["read"] >= 30, "a stream's reads wait at least 30 s (heartbeats come every 5 s)"

    sb.exec("true", stdin="text", pty=(40, 100), background=True).close()
    assert json.loads(seen[-1].content) == {
        "cmd": "true",
        "args": [],
        "stdin": "text",
        "background": True,
        "pty": {"rows": 40, "cols": 100},
    }


def test_exec_errors_before_and_during_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shoal._sync.time.sleep", lambda s: None)
    answers = [err(503, "unavailable", "busy"), err(409, "conflict", "sandbox `api` is stopped")]
    sb = sandbox(lambda req: answers.pop(0))
    with pytest.raises(Conflict) as c:
        sb.exec("true")
    assert c.value.status == 409 and answers == [], "the 503 was retried"

    broken = ndjson(
        {"type": "started", "pid": 7}, {"type": "error", "code": "internal", "message": "lost the sandbox agent: reset"}
    )
    sb = sandbox(lambda req: httpx.Response(200, content=broken))
    p = sb.exec("true")
    with pytest.raises(ShoalError) as e:
        list(p)
    assert e.value.code == "internal" and "lost the sandbox agent" in e.value.message
    with pytest.raises(ShoalError):
        p.wait()

    with pytest.raises(ValueError):
        sb.exec("")
    with pytest.raises(ValueError):
        sb.exec("x", timeout=0)


def test_not_started() -> None:
    body = ndjson(
        {"type": "stderr", "data": b64(b"shoal-agent: command not found: nope\n")},
        {"type": "exit", "exit_code": 127, "signal": None, "timed_out": False, "duration_ms": 0},
    )
    sb = sandbox(lambda req: httpx.Response(200, content=body))
    p = sb.exec("nope")
    assert p.pid is None and p.wait().exit_code == 127
    with pytest.raises(ShoalError) as e:
        p.kill()
    assert e.value.code == "not_started"
    with pytest.raises(ShoalError) as e:
        sb.start_background("nope")
    assert e.value.code == "not_started" and "exit 127" in e.value.message and "command not found" in e.value.message


def test_process_controls_and_attach() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(f"{req.method} {req.url.raw_path.decode()} {req.content.decode()}")
        if req.url.path.endswith("/output"):
            done = {"type": "exit", "exit_code": 0, "signal": None, "timed_out": False, "duration_ms": 1}
            return httpx.Response(200, content=ndjson({"type": "stdout", "data": b64(b"x"), "offset": 0}, done))
        if req.url.path.endswith("/processes"):
            return httpx.Response(
                200,
                json={
                    "processes": [
                        {
                            "pid": 5,
                            "cmd": "sh",
                            "args": ["-c", "x"],
                            "started_at": "t",
                            "running": True,
                            "exit_code": None,
                            "signal": None,
                            "timed_out": False,
                            "pty": False,
                            "output_bytes": 1,
                        }
                    ]
                },
            )
        return httpx.Response(204)

    sb = sandbox(handler)
    [info] = sb.processes()
    assert (info.pid, info.running, info.args, info.output_bytes) == (5, True, ["-c", "x"], 1)
    sb.write_stdin(5, "hi")
    sb.write_stdin(5, b"\x01\x02", close=True)
    sb.close_stdin(5)
    sb.kill_process(5, "SIGINT")
    sb.kill_process(5)
    sb.resize_process(5, 40, 100)
    with sb.attach(5, from_start=True) as h:
        assert h.pid == 5
        assert [e.data for e in h if e.type == "stdout"] == [b"x"]
    sb.attach(6).close()
    assert seen[1:] == [
        f'POST {BASE}/processes/5/stdin {{"data":"hi"}}',
        f'POST {BASE}/processes/5/stdin {{"data_base64":"AQI=","close":true}}',
        f'POST {BASE}/processes/5/stdin {{"close":true}}',
        f'POST {BASE}/processes/5/signal {{"signal":"SIGINT"}}',
        f"DELETE {BASE}/processes/5 ",
        f'POST {BASE}/processes/5/resize {{"rows":40,"cols":100}}',
        f"GET {BASE}/processes/5/output?from_start=true ",
        f"GET {BASE}/processes/6/output ",
    ]
    with pytest.raises(ValueError):
        sb.kill_process(0)
    with pytest.raises(ValueError):
        sb.write_stdin(5, None)  # type: ignore[arg-type]


def test_files_requests() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        p = req.url.path
        if req.method == "PUT":
            return httpx.Response(200, json={"bytes": len(req.content)})
        if p.endswith("/files/content"):
            return httpx.Response(200, content=pieces(b"abcdef", 2))
        if p.endswith("/files/stat"):
            if req.url.params["path"] == "/ro":
                return err(403, "permission_denied", "permission denied: /ro")
            return err(404, "not_found", "no such file or directory: /x y")
        if p.endswith("/files"):
            entry = {"name": "a", "kind": "file", "size": 1, "mode": 420, "modified_at": "t"}
            return httpx.Response(200, json={"path": "/d", "entries": [entry]})
        return httpx.Response(204)

    sb = sandbox(handler)
    f = sb.files
    assert f.write("/dir/a b&c", "hello", mode=0o755, append=True) == 5
    assert seen[-1].url.params["path"] == "/dir/a b&c"
    assert (seen[-1].url.params["mode"], seen[-1].url.params["append"]) == ("755", "true")
    assert seen[-1].headers["content-type"] == "application/octet-stream"
    mixed: list[Any] = [b"x", "yz"]  # text pieces are sent as UTF-8
    assert f.write("/g", (c for c in mixed)) == 3 and seen[-1].content == b"xyz"
    assert f.write("/f", io.BytesIO(b"from a file"), mode="0644") == 11 and seen[-1].url.params["mode"] == "0644"
    assert f.upload_tar("/t", b"TAR") == 3
    assert (seen[-1].url.path, seen[-1].headers["content-type"]) == (f"{BASE}/files/tar", "application/x-tar")
    assert f.read("/f", offset=1, length=2) == b"abcdef"
    assert dict(seen[-1].url.params) == {"path": "/f", "offset": "1", "len": "2"}
    assert list(f.read_stream("/f")) == [b"ab", b"cd", b"ef"]
    [entry] = f.list("/d")
    assert (entry.name, entry.mode, entry.is_file) == ("a", 0o644, True)
    f.mkdir("/m", parents=True)
    assert json.loads(seen[-1].content) == {"path": "/m", "parents": True}
    f.remove("/r", recursive=True)
    assert (seen[-1].method, dict(seen[-1].url.params)) == ("DELETE", {"path": "/r", "recursive": "true"})
    f.remove("/r")
    assert dict(seen[-1].url.params) == {"path": "/r"}
    f.rename("/a", "/b")
    assert json.loads(seen[-1].content) == {"from": "/a", "to": "/b"}
    with pytest.raises(NotFound) as nf:
        f.stat("/x y")
    assert nf.value.message == "no such file or directory: /x y"
    assert not f.exists("/x y")
    with pytest.raises(PermissionDenied) as pd:
        f.stat("/ro")
    assert (pd.value.status, pd.value.code) == (403, "permission_denied")
    n = len(seen)
    for bad in (lambda: f.stat("rel"), lambda: f.write("/x", b"", mode=0o17777), lambda: f.rename("/a", "b")):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError):
        f.write("/x", 5)  # type: ignore[arg-type]
    assert len(seen) == n, "bad input sends nothing"


@pytest.mark.asyncio
async def test_async_exec_and_files() -> None:
    seen: list[httpx.Request] = []

    async def body() -> AsyncIterator[bytes]:
        for p in pieces(STREAM):
            yield p

    async def handler(req: httpx.Request) -> httpx.Response:
        await req.aread()
        seen.append(req)
        if req.url.path == BASE:
            return httpx.Response(200, json=SANDBOX)
        if req.url.path.endswith("/exec/stream"):
            return httpx.Response(200, content=body())
        if req.method == "PUT":
            return httpx.Response(200, json={"bytes": len(req.content)})
        return err(404, "not_found", "nope")

    transport = httpx.MockTransport(handler)
    async with AsyncShoal("http://shoal.test", "k", http_client=httpx.AsyncClient(transport=transport)) as c:
        sb = await c.sandboxes.get("sbx-0123456789")
        got: list[bytes] = []

        async def on_stdout(b: bytes) -> None:
            got.append(b)

        async with sb.exec("sh", on_stdout=on_stdout) as p:
            assert p.pid == 42
            types = [ev.type async for ev in p]
            assert types == ["started", "stdout", "stderr", "heartbeat", "error", "stdout", "exit"]
            assert (await p.wait()).exit_code == 3
        assert b"".join(got) == b"hello\n"

        async def chunks() -> AsyncIterator[bytes]:
            yield b"ab"
            yield b"c"

        assert await sb.files.write("/a", chunks()) == 3
        assert await sb.files.write("/b", io.BytesIO(b"file")) == 4
        assert await sb.files.write("/c", [b"x", b"y"]) == 2
        with pytest.raises(NotFound):
            await sb.files.read("/nope")
