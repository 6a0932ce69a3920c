"""What the sync and the async client share: configuration, request shapes, answers, retries."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ._config import resolve
from ._errors import ConnectError, ShoalError, Timeout, TransportError, error_from_response
from ._models import Network, NetworkRef, Nic, ProcessEvent, network_key
from ._version import __version__

#: Seconds a request may take (connect: at most 5 s) unless ``timeout=`` says otherwise.
DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0
#: How often a request answered with 503 is retried (with exponential backoff).
DEFAULT_MAX_RETRIES = 3
#: The server's exec timeout when none is given, and the slack added on top for the HTTP answer.
SERVER_EXEC_TIMEOUT = 60.0
EXEC_SLACK = 30.0

#: The least read timeout of an event stream: the server sends a heartbeat every 5 s.
STREAM_READ_TIMEOUT = 30.0
#: Pieces that uploads from a file or from bytes are sent in.
UPLOAD_CHUNK = 1 << 20

TimeoutTypes = float | httpx.Timeout | None

#: What the server accepts as an ``Idempotency-Key``: 1-255 printable ASCII characters, no space.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def make_timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None, connect=CONNECT_TIMEOUT)
    return httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))


def seg(key: str) -> str:
    """One path segment: ids and names are a safe alphabet, but escape anyway so that a stray
    character becomes a 404 rather than a different route."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"expected a non-empty id or name, got {key!r}")
    return quote(key, safe="")


def network_ref(network: NetworkRef) -> dict[str, str]:
    """``{"id": ...}`` for ids (``net-...``), ``{"name": ...}`` otherwise (names cannot look like ids)."""
    key = network_key(network)
    return {"id": key} if key.startswith("net-") else {"name": key}


def whole_seconds(what: str, value: float) -> int:
    """A positive whole number of seconds (the API takes integers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
        raise ValueError(f"{what} must be a positive whole number of seconds, not {value!r}")
    return int(value)


def idempotency_key(key: str | None) -> str:
    """The caller's key, checked, or a fresh random UUID."""
    if key is None:
        return str(uuid.uuid4())
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValueError(f"idempotency_key must be 1-255 printable ASCII characters without spaces, not {key!r}")
    return key


def logs_params(tail: int) -> dict[str, str]:
    if isinstance(tail, bool) or not isinstance(tail, int) or tail < 0:
        raise ValueError(f"tail must be a non-negative number of lines, not {tail!r}")
    return {"tail": str(tail)}


def create_body(
    rootfs: str,
    name: str | None,
    shape: str | None,
    networks: Sequence[NetworkRef] | NetworkRef | None,
    env: Mapping[str, object] | None,
    timeout_secs: float | None = None,
    on_timeout: str | None = None,
) -> dict[str, Any]:
    if not isinstance(rootfs, str) or not rootfs:
        raise ValueError('rootfs must name an image, e.g. rootfs="devbox:1" (see client.images())')
    body: dict[str, Any] = {"rootfs": rootfs}
    if name is not None:
        body["name"] = name
    if shape is not None:
        body["shape"] = shape
    if networks is not None:
        refs: Sequence[NetworkRef] = [networks] if isinstance(networks, (str, Network, Nic)) else networks
        body["networks"] = [network_ref(n) for n in refs]
    if env:
        body["env"] = {str(k): str(v) for k, v in env.items()}
    if timeout_secs is not None:
        body["timeout_secs"] = whole_seconds("timeout_secs", timeout_secs)
    if on_timeout is not None:
        body["on_timeout"] = on_timeout
    return body


def pid_seg(pid: int) -> str:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"a process id must be a positive integer, not {pid!r}")
    return str(pid)


def exec_stream_body(
    cmd: str,
    args: Sequence[object],
    env: Mapping[str, object] | None,
    cwd: str | None,
    stdin: str | bytes | None,
    keep_stdin_open: bool,
    timeout: float | None,
    pty: bool | tuple[int, int] | None,
    background: bool,
) -> dict[str, Any]:
    """The body of ``POST /v1/sandboxes/{id}/exec/stream``."""
    if not cmd:
        raise ValueError("cmd must not be empty")
    body: dict[str, Any] = {"cmd": str(cmd), "args": [str(a) for a in args]}
    if env:
        body["env"] = {str(k): str(v) for k, v in env.items()}
    if cwd is not None:
        body["cwd"] = str(cwd)
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        body["stdin_base64"] = base64.b64encode(bytes(stdin)).decode("ascii")
    elif stdin is not None:
        body["stdin"] = str(stdin)
    if keep_stdin_open:
        body["keep_stdin_open"] = True
    if timeout is not None:
        if timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        body["timeout_ms"] = max(1, round(timeout * 1000))
    if background:
        body["background"] = True
    if isinstance(pty, tuple):
        rows, cols = pty
        body["pty"] = {"rows": int(rows), "cols": int(cols)}
    elif pty:
        body["pty"] = {"rows": 24, "cols": 80}
    return body


def stdin_body(data: str | bytes | None, close: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if isinstance(data, (bytes, bytearray, memoryview)):
        body["data_base64"] = base64.b64encode(bytes(data)).decode("ascii")
    elif data is not None:
        body["data"] = str(data)
    if close:
        body["close"] = True
    return body


def parse_event(line: str) -> ProcessEvent | None:
    """One NDJSON line of an exec or attach stream; ``None`` for a blank line or an event type
    this version does not know (a newer server's)."""
    if not line.strip():
        return None
    try:
        d = json.loads(line)
    except ValueError as e:
        raise ShoalError(None, "invalid_response", f"unreadable stream event: {line[:200]!r}") from e
    if d.get("type") not in ("started", "stdout", "stderr", "pty", "heartbeat", "exit", "error"):
        return None
    return ProcessEvent._from_json(d)


def file_params(path: str, **extra: str | None) -> dict[str, str]:
    """``?path=…&…`` of the file endpoints (the path must be absolute: it is inside the sandbox)."""
    check_path(path)
    params = {"path": path}
    params.update({k: v for k, v in extra.items() if v is not None})
    return params


def check_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must be absolute (inside the sandbox), not {path!r}")
    return path


def mode_param(mode: int | str | None) -> str | None:
    """``0o755`` or ``"755"`` as the octal digits the API takes."""
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, (int, str)):
        raise ValueError(f"mode must be permission bits like 0o755 or '755', not {mode!r}")
    if isinstance(mode, int):
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be permission bits (0 ... 0o7777), not {oct(mode)}")
        return format(mode, "o")
    return mode


def not_started(cmd: str, events: Sequence[ProcessEvent]) -> ShoalError:
    """The error of a background start whose command could not run (not found, not executable)."""
    text = b"".join(ev.data for ev in events).decode("utf-8", "replace").strip()
    exits = [ev.exit_code for ev in events if ev.type == "exit"]
    how = f" (exit {exits[0]})" if exits else ""
    return ShoalError(None, "not_started", f"`{cmd}` did not start{how}: {text or 'no output'}")


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    timeout: httpx.Timeout | None = None
    #: Extra headers, sent with every attempt (retries included).
    headers: dict[str, str] | None = None


class ClientCore:
    """Configuration and request plumbing shared by :class:`Shoal` and :class:`AsyncShoal`."""

    def __init__(self, url: str | None, api_key: str | None, timeout: TimeoutTypes, max_retries: int) -> None:
        cfg = resolve(url, api_key)
        #: The API's base URL, e.g. ``http://127.0.0.1:7070``.
        self.url: str = cfg.url
        self._api_key = cfg.api_key
        self._timeout = make_timeout(timeout)
        self._max_retries = max(0, int(max_retries))
        self._headers = {
            "Authorization": f"Bearer {cfg.api_key}",
            "Accept": "application/json",
            "User-Agent": f"shoal-python/{__version__}",
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def _request_headers(self, call: Call) -> dict[str, str]:
        return {**self._headers, **call.headers} if call.headers else self._headers

    @staticmethod
    def _create_call(body: dict[str, Any], key: str | None) -> Call:
        """``POST /v1/sandboxes`` with an ``Idempotency-Key`` (the caller's or a new UUID), so that
        retrying it (the client's 503 retries, or the caller with the same key) makes one sandbox."""
        return Call("POST", "/v1/sandboxes", json=body, headers={"Idempotency-Key": idempotency_key(key)})

    def _exec_call(
        self,
        sandbox_id: str,
        cmd: str,
        args: Sequence[object],
        env: Mapping[str, object] | None,
        cwd: str | None,
        stdin: str | bytes | None,
        timeout: float | None,
    ) -> Call:
        if not cmd:
            raise ValueError("cmd must not be empty")
        body: dict[str, Any] = {"cmd": str(cmd), "args": [str(a) for a in args]}
        if env:
            body["env"] = {str(k): str(v) for k, v in env.items()}
        if cwd is not None:
            body["cwd"] = str(cwd)
        if stdin is not None:
            body["stdin"] = stdin.decode("utf-8") if isinstance(stdin, bytes) else stdin
        if timeout is not None:
            if timeout <= 0:
                raise ValueError("timeout must be positive (seconds)")
            body["timeout_ms"] = max(1, round(timeout * 1000))
        # The HTTP answer comes only when the command ends: wait for the command's timeout and then some.
        http = self._timeout
        needed = (timeout if timeout is not None else SERVER_EXEC_TIMEOUT) + EXEC_SLACK
        if http.read is not None and http.read < needed:
            http = httpx.Timeout(connect=http.connect, read=needed, write=http.write, pool=http.pool)
        return Call("POST", f"/v1/sandboxes/{seg(sandbox_id)}/exec", json=body, timeout=http)

    def _stream_timeout(self) -> httpx.Timeout:
        """The client's timeout, per read, but never below the heartbeat interval's margin."""
        t = self._timeout
        if t.read is not None and t.read < STREAM_READ_TIMEOUT:
            return httpx.Timeout(connect=t.connect, read=STREAM_READ_TIMEOUT, write=t.write, pool=t.pool)
        return t

    def _stream_request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call, content: Any, content_type: str | None, accept: str
    ) -> httpx.Request:
        headers = {**self._request_headers(call), "Accept": accept}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return http.build_request(
            call.method,
            self.url + call.path,
            json=call.json,
            params=call.params,
            content=content,
            headers=headers,
            timeout=call.timeout or self._stream_timeout(),
        )

    def _transport_error(self, call: Call, e: httpx.HTTPError) -> ShoalError:
        what = f"{call.method} {call.path}"
        if isinstance(e, httpx.ConnectTimeout):
            return Timeout(f"connecting to the Shoal API at {self.url} timed out ({what}); is the URL right?")
        if isinstance(e, httpx.TimeoutException):
            t = call.timeout or self._timeout
            return Timeout(f"no answer from the Shoal API at {self.url} within {t.read} s ({what})")
        if isinstance(e, httpx.ConnectError):
            return ConnectError(f"cannot reach the Shoal API at {self.url}: {e}; is `shoal up` running?")
        return TransportError("transport", f"{what} to {self.url} failed: {type(e).__name__}: {e}")

    def _should_retry(self, resp: httpx.Response, attempt: int) -> bool:
        return resp.status_code == 503 and attempt < self._max_retries

    @staticmethod
    def _retry_delay(resp: httpx.Response, attempt: int) -> float:
        after = resp.headers.get("Retry-After")
        if after is not None:
            try:
                return min(max(float(after), 0.0), 30.0)
            except ValueError:
                pass
        return min(0.5 * 2.0**attempt, 8.0)

    @staticmethod
    def _answer(resp: httpx.Response) -> Any:
        if resp.is_success:
            if resp.status_code == 204 or not resp.content:
                return None
            return resp.json()
        raise error_from_response(resp)
