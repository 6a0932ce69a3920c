"""Tests that need no server: configuration, request shapes, error mapping, retries (against
httpx.MockTransport, so no packet is sent at all)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import shoal
from shoal import (
    AsyncShoal,
    CommandError,
    ConfigError,
    Conflict,
    ConnectError,
    InvalidArgument,
    Network,
    NotFound,
    ServerError,
    Shoal,
    ShoalError,
    Timeout,
    Unauthorized,
    Unavailable,
)

SANDBOX = {
    "id": "sbx-0123456789",
    "name": "api",
    "shape": "s-1vcpu-1gb",
    "rootfs": "busybox:1",
    "state": "running",
    "runtime": "container",
    "networks": [
        {"network_id": "net-aaaaaaaaaa", "network_name": "team-eval", "ifname": "eth0", "ip": "10.210.0.2", "mac": "m"}
    ],
    "env": {},
    "created_at": "2026-12-03T14:17:50Z",
    "some_future_field": 1,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("SHOAL_URL", "SHOAL_API_KEY", "SHOAL_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def mock(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> Shoal:
    return Shoal("http://shoal.test/", "k3y", http_client=httpx.Client(transport=httpx.MockTransport(handler)), **kw)


def err(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


# -- configuration ------------------------------------------------------------------------------


def write_config(path: Path, **fields: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields))
    return path


def test_config_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.json", url="http://file:1", api_key="file-key")
    monkeypatch.setenv("SHOAL_CONFIG", str(cfg))
    assert shoal.resolve() == shoal.ClientConfig("http://file:1", "file-key")
    monkeypatch.setenv("SHOAL_URL", "http://env:2/")
    monkeypatch.setenv("SHOAL_API_KEY", "env-key")
    assert shoal.resolve() == shoal.ClientConfig("http://env:2", "env-key")
    assert shoal.resolve("http://arg:3", "arg-key") == shoal.ClientConfig("http://arg:3", "arg-key")
    c = Shoal(api_key="arg-key")
    assert c.url == "http://env:2" and c._api_key == "arg-key"
    c.close()


def test_config_file_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_config(tmp_path / "home/.config/shoal/config.json", url="http://home:1", api_key="home-key")
    assert shoal.config_path() == tmp_path / "home/.config/shoal/config.json"
    assert shoal.resolve().api_key == "home-key"
    write_config(tmp_path / "xdg/shoal/config.json", api_key="xdg-key")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert shoal.resolve() == shoal.ClientConfig(shoal.DEFAULT_URL, "xdg-key")


def test_config_defaults_and_missing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert shoal.resolve(api_key="k").url == "http://127.0.0.1:7070"
    with pytest.raises(ConfigError) as e:
        Shoal()
    assert "SHOAL_API_KEY" in str(e.value) and str(shoal.config_path()) in str(e.value)
    assert e.value.status is None
    monkeypatch.setenv("SHOAL_API_KEY", "")  # empty counts as unset, like the Rust SDK
    with pytest.raises(ConfigError):
        AsyncShoal()
    monkeypatch.setenv("SHOAL_CONFIG", str(tmp_path / "bad.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        shoal.resolve()
    assert shoal.resolve(api_key="k") == shoal.ClientConfig(shoal.DEFAULT_URL, "k")  # only needed for the key


# -- requests -----------------------------------------------------------------------------------


def test_request_shapes() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.path.endswith("/exec"):
            return httpx.Response(200, json={"exit_code": 3, "stdout": "o", "stderr": "e", "duration_ms": 5})
        if req.method == "DELETE" and req.url.path.startswith("/v1/sandboxes/sbx-0123456789/networks/"):
            return httpx.Response(200, json={**SANDBOX, "networks": []})
        if req.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(201, json=SANDBOX)

    c = mock(handler)
    net = Network(id="net-aaaaaaaaaa", name="team-eval", cidr="10.210.0.0/24", created_at="")
    sb = c.sandboxes.create(rootfs="busybox:1", networks=[net, "other", "net-bbbbbbbbbb"], env={"N": 1})
    body = json.loads(seen[-1].content)
    assert body == {
        "rootfs": "busybox:1",
        "networks": [{"id": "net-aaaaaaaaaa"}, {"name": "other"}, {"id": "net-bbbbbbbbbb"}],
        "env": {"N": "1"},
    }
    assert seen[-1].headers["authorization"] == "Bearer k3y"
    assert seen[-1].headers["content-type"] == "application/json"
    assert str(seen[-1].url) == "http://shoal.test/v1/sandboxes"
    c.sandboxes.create(rootfs="busybox:1", networks="solo")
    assert json.loads(seen[-1].content)["networks"] == [{"name": "solo"}]

    assert sb.id == "sbx-0123456789" and sb.ip() == "10.210.0.2" and sb.ip("team-eval") == "10.210.0.2"
    assert sb.nic(net) is sb.networks[0] and sb.nic("nope") is None
    with pytest.raises(LookupError):
        sb.ip("nope")

    r = sb.run("sh", "-c", "x", 5, stdin=b"in", cwd="/tmp", env={"A": "b"}, timeout=120)
    assert (r.exit_code, r.stdout, r.stderr, r.duration_ms, r.timed_out, r.ok) == (3, "o", "e", 5, False, False)
    req = seen[-1]
    assert req.url.path == "/v1/sandboxes/sbx-0123456789/exec"
    assert json.loads(req.content) == {
        "cmd": "sh",
        "args": ["-c", "x", "5"],
        "env": {"A": "b"},
        "cwd": "/tmp",
        "stdin": "in",
        "timeout_ms": 120000,
    }
    assert req.extensions["timeout"]["read"] == 150.0  # the command's timeout plus slack
    with pytest.raises(CommandError) as ce:
        sb.run("false", check=True)
    assert ce.value.result.exit_code == 3 and "exited with 3" in str(ce.value)

    sb.detach("team-eval")
    assert seen[-1].url.path == "/v1/sandboxes/sbx-0123456789/networks/team-eval" and sb.networks == []
    c.networks.delete("a b/c", force=True)
    assert seen[-1].url.raw_path == b"/v1/networks/a%20b%2Fc?force=true"
    c.networks.delete("x")
    assert seen[-1].url.query == b""


UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_create_sends_an_idempotency_key_kept_across_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shoal._sync.time.sleep", lambda s: None)
    seen: list[httpx.Request] = []
    answers = [err(503, "unavailable", "busy"), err(503, "unavailable", "busy")]

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.method == "POST" and answers:
            return answers.pop(0)
        return httpx.Response(201 if req.method == "POST" else 200, json=SANDBOX)

    c = mock(handler)
    assert c.sandboxes.create(rootfs="busybox:1").id == SANDBOX["id"]
    keys = [r.headers.get("idempotency-key") for r in seen]
    assert len(keys) == 3 and UUID4.fullmatch(keys[0] or ""), keys
    assert keys == [keys[0]] * 3, "the retries of one create reuse its key"
    assert [json.loads(r.content) for r in seen] == [{"rootfs": "busybox:1"}] * 3

    c.sandboxes.create(rootfs="busybox:1")
    assert UUID4.fullmatch(seen[-1].headers["idempotency-key"]) and seen[-1].headers["idempotency-key"] != keys[0]

    c.sandboxes.create(rootfs="busybox:1", idempotency_key="job-42", timeout_secs=600, on_timeout="stop")
    assert seen[-1].headers["idempotency-key"] == "job-42"
    assert json.loads(seen[-1].content) == {"rootfs": "busybox:1", "timeout_secs": 600, "on_timeout": "stop"}
    c.sandboxes.create(rootfs="busybox:1", idempotency_key="~" * 255)
    assert seen[-1].headers["idempotency-key"] == "~" * 255

    # Only creates carry one.
    c.sandboxes.get("api")
    assert "idempotency-key" not in seen[-1].headers

    n = len(seen)
    for bad in ["", "has space", "tab\t", "é", "k" * 256]:
        with pytest.raises(ValueError, match="idempotency_key"):
            c.sandboxes.create(rootfs="busybox:1", idempotency_key=bad)
    bad_timeouts: list[Any] = [0, -1, 1.5, True]
    for secs in bad_timeouts:
        with pytest.raises(ValueError, match="timeout_secs"):
            c.sandboxes.create(rootfs="busybox:1", timeout_secs=secs)
    assert len(seen) == n, "nothing was sent"


@pytest.mark.asyncio
async def test_async_create_sends_an_idempotency_key(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(s: float) -> None:
        pass

    monkeypatch.setattr("shoal._async.asyncio.sleep", no_sleep)
    seen: list[httpx.Request] = []
    answers = [err(503, "unavailable", "busy")]

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return answers.pop(0) if answers else httpx.Response(201, json=SANDBOX)

    transport = httpx.MockTransport(handler)
    async with AsyncShoal("http://shoal.test", "k", http_client=httpx.AsyncClient(transport=transport)) as c:
        creation = c.sandboxes.create(rootfs="busybox:1", env={"A": 1})
        assert (await creation).id == SANDBOX["id"]
        assert (await creation).id == SANDBOX["id"]  # awaited again: the same create, the same key
        async with c.sandboxes.create(rootfs="busybox:1") as sb:
            assert sb.name == "api"
        await c.sandboxes.create(rootfs="busybox:1", idempotency_key="job-7")
        with pytest.raises(ValueError, match="idempotency_key"):
            c.sandboxes.create(rootfs="busybox:1", idempotency_key="no spaces")
    posts = [r for r in seen if r.method == "POST"]
    keys = [r.headers["idempotency-key"] for r in posts]
    assert len(keys) == 5 and UUID4.fullmatch(keys[0])
    assert keys[:3] == [keys[0]] * 3, "a 503 retry and a second await reuse the key"
    assert UUID4.fullmatch(keys[3]) and keys[3] != keys[0]
    assert keys[4] == "job-7"
    assert [r.method for r in seen if r.method != "POST"] == ["DELETE"]  # the `async with` deletes it


def test_lifecycle_requests() -> None:
    seen: list[httpx.Request] = []
    later = {**SANDBOX, "expires_at": "2026-12-03T15:17:50Z", "on_timeout": "delete"}
    metrics = {
        "cpu_usage_ns": 123,
        "memory_bytes": 4096,
        "memory_limit_bytes": 268435456,
        "pids": 2,
        "disk_bytes": 10,
        "interfaces": [
            {
                "ifname": "eth0",
                "network_id": "net-aaaaaaaaaa",
                "rx_bytes": 1,
                "tx_bytes": 2,
                "rx_packets": 3,
                "tx_packets": 4,
            }
        ],
    }

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        p = req.url.path
        if p.endswith("/stop"):
            return httpx.Response(200, json={**SANDBOX, "state": "stopped"})
        if p.endswith("/timeout"):
            return httpx.Response(200, json=later)
        if p.endswith("/logs"):
            return httpx.Response(200, json={"log": "line 1\nline 2\n"})
        if p.endswith("/metrics"):
            return httpx.Response(200, json={**metrics, "future": True})
        return httpx.Response(200, json=SANDBOX)

    c = mock(handler)
    sb = c.sandboxes.get("api")
    assert (sb.expires_at, sb.on_timeout) == (None, None)
    assert sb.stop() is sb and sb.state == "stopped"
    assert (seen[-1].method, seen[-1].url.path, seen[-1].content) == ("POST", "/v1/sandboxes/sbx-0123456789/stop", b"")
    assert sb.start() is sb and sb.state == "running"
    assert (seen[-1].method, seen[-1].url.path) == ("POST", "/v1/sandboxes/sbx-0123456789/start")
    assert sb.set_timeout(3600) is sb
    assert (seen[-1].method, seen[-1].url.path) == ("POST", "/v1/sandboxes/sbx-0123456789/timeout")
    assert json.loads(seen[-1].content) == {"timeout_secs": 3600}
    assert (sb.expires_at, sb.on_timeout) == ("2026-12-03T15:17:50Z", "delete")
    sb.refresh()
    assert (sb.expires_at, sb.on_timeout) == (None, None), "fields absent from the answer are cleared"
    assert sb.logs() == "line 1\nline 2\n"
    assert (seen[-1].method, seen[-1].url.path) == ("GET", "/v1/sandboxes/sbx-0123456789/logs")
    assert seen[-1].url.params["tail"] == "200"
    sb.logs(tail=5)
    assert seen[-1].url.query == b"tail=5"
    m = sb.metrics()
    assert isinstance(m, shoal.SandboxMetrics) and seen[-1].url.path == "/v1/sandboxes/sbx-0123456789/metrics"
    assert (m.cpu_usage_ns, m.memory_bytes, m.memory_limit_bytes, m.pids, m.disk_bytes) == (123, 4096, 268435456, 2, 10)
    assert m.interfaces == [shoal.InterfaceMetrics("eth0", "net-aaaaaaaaaa", 1, 2, 3, 4)]
    bare = shoal.SandboxMetrics._from_json({**metrics, "cpu_usage_ns": None, "pids": None, "interfaces": []})
    assert (bare.cpu_usage_ns, bare.pids, bare.interfaces) == (None, None, [])

    n = len(seen)
    bad_secs_list: list[Any] = [0, -5, 2.5]
    for bad_secs in bad_secs_list:
        with pytest.raises(ValueError, match="seconds"):
            sb.set_timeout(bad_secs)
    with pytest.raises(ValueError, match="tail"):
        sb.logs(-1)
    assert len(seen) == n


@pytest.mark.asyncio
async def test_async_lifecycle_requests() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.path, json.loads(req.content) if req.content else None))
        p = req.url.path
        if p.endswith("/logs"):
            return httpx.Response(200, json={"log": "hi\n"})
        if p.endswith("/metrics"):
            return httpx.Response(200, json={"disk_bytes": 0, "interfaces": []})
        state = {"stop": "stopped"}.get(p.rsplit("/", 1)[-1], "running")
        return httpx.Response(200, json={**SANDBOX, "state": state, "expires_at": "t", "on_timeout": "stop"})

    transport = httpx.MockTransport(handler)
    async with AsyncShoal("http://shoal.test", "k", http_client=httpx.AsyncClient(transport=transport)) as c:
        sb = await c.sandboxes.get("api")
        assert (await sb.stop()) is sb and sb.state == "stopped"
        assert (await sb.start()).state == "running"
        assert (await sb.set_timeout(60)).on_timeout == "stop"
        assert await sb.logs(tail=1) == "hi\n"
        m = await sb.metrics()
        assert (m.cpu_usage_ns, m.memory_bytes, m.pids, m.disk_bytes, m.interfaces) == (None, None, None, 0, [])
    base = "/v1/sandboxes/sbx-0123456789"
    assert seen[1:] == [
        ("POST", f"{base}/stop", None),
        ("POST", f"{base}/start", None),
        ("POST", f"{base}/timeout", {"timeout_secs": 60}),
        ("GET", f"{base}/logs", None),
        ("GET", f"{base}/metrics", None),
    ]


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_argument", InvalidArgument),
        (401, "unauthorized", Unauthorized),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (415, "invalid_argument", InvalidArgument),
        (405, "method_not_allowed", ShoalError),
        (422, "invalid_argument", InvalidArgument),
        (500, "internal", ServerError),
        (418, "teapot", ShoalError),
    ],
)
def test_error_mapping(status: int, code: str, cls: type[ShoalError]) -> None:
    c = mock(lambda req: err(status, code, "what to do"))
    with pytest.raises(cls) as e:
        c.sandboxes.get("x")
    assert type(e.value) is cls
    assert (e.value.status, e.value.code, e.value.message) == (status, code, "what to do")
    assert str(e.value) == f"what to do ({status} {code})"


def test_error_without_json_body() -> None:
    c = mock(lambda req: httpx.Response(405, headers={"Allow": "GET"}))
    with pytest.raises(ShoalError) as e:
        c.networks.list()
    assert e.value.status == 405 and e.value.code == "unknown" and "405 Method Not Allowed" in e.value.message


def test_transport_errors() -> None:
    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    with pytest.raises(ConnectError, match=r"cannot reach the Shoal API at http://shoal.test.*shoal up"):
        mock(refuse).health()

    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    with pytest.raises(Timeout, match="no answer"):
        mock(slow).health()


# -- retries ------------------------------------------------------------------------------------


def test_retries_on_503_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("shoal._sync.time.sleep", sleeps.append)
    answers = [err(503, "unavailable", "busy") for _ in range(2)] + [httpx.Response(200, json={"shapes": []})]
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.method)
        return answers.pop(0)

    assert mock(handler).shapes() == []
    assert calls == ["GET"] * 3 and sleeps == [0.5, 1.0]


def test_gives_up_after_max_retries_and_honours_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("shoal._sync.time.sleep", sleeps.append)
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.method)
        body = {"error": {"code": "unavailable", "message": "m"}}
        return httpx.Response(503, headers={"Retry-After": "2"}, json=body)

    with pytest.raises(Unavailable) as e:
        mock(handler, max_retries=2).networks.create("n")
    assert e.value.status == 503 and isinstance(e.value, ServerError)
    assert calls == ["POST"] * 3 and sleeps == [2.0, 2.0]


@pytest.mark.parametrize("status", [500, 502, 409])
def test_no_retry_on_other_errors(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shoal._sync.time.sleep", lambda s: pytest.fail("slept"))
    calls: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(1)
        return err(status, "x", "y")

    with pytest.raises(ShoalError):
        mock(handler).sandboxes.list()
    assert len(calls) == 1


@pytest.mark.asyncio
async def test_async_retry_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(s: float) -> None:
        pass

    monkeypatch.setattr("shoal._async.asyncio.sleep", no_sleep)
    answers = [err(503, "unavailable", "busy"), httpx.Response(200, json={"status": "ok", "version": "0.1.0"})]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v1/health":
            return answers.pop(0)
        return err(404, "not_found", "sandbox `x` not found")

    transport = httpx.MockTransport(handler)
    async with AsyncShoal("http://shoal.test", "k", http_client=httpx.AsyncClient(transport=transport)) as c:
        assert (await c.health()).status == "ok"
        with pytest.raises(NotFound):
            await c.sandboxes.get("x")
