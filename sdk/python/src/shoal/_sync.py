"""The synchronous client: :class:`Shoal`."""

from __future__ import annotations

import builtins
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, overload

import httpx

from ._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    Call,
    ClientCore,
    TimeoutTypes,
    create_body,
    exec_stream_body,
    logs_params,
    network_ref,
    not_started,
    pid_seg,
    seg,
    whole_seconds,
)
from ._errors import CommandError, NotFound, ShoalError, error_from_response
from ._files import Files
from ._models import (
    CommandResult,
    Health,
    Image,
    Member,
    Network,
    NetworkRef,
    ProcessEvent,
    ProcessInfo,
    SandboxInfo,
    SandboxMetrics,
    SandboxRef,
    Shape,
    network_key,
    sandbox_key,
)
from ._process import EventCallback, OutputCallback, ProcessHandle, _Controls


class Shoal(ClientCore):
    """Client for the Shoal HTTP API v1.

    ``url`` and ``api_key`` come from the arguments, else ``SHOAL_URL`` / ``SHOAL_API_KEY``, else the
    client config file ``shoal up`` wrote (``SHOAL_CONFIG``, ``$XDG_CONFIG_HOME/shoal/config.json``
    or ``~/.config/shoal/config.json``). The URL defaults to ``http://127.0.0.1:7070``.

    >>> with Shoal() as client:
    ...     net = client.networks.create("team-eval")
    ...     with client.sandboxes.create(rootfs="devbox:1", networks=[net]) as sb:
    ...         print(sb.run("uname", "-a").stdout)
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, max_retries)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=self._timeout)
        #: Networks: ``create``, ``get``, ``list``, ``delete``, ``members``.
        self.networks = Networks(self)
        #: Sandboxes: ``create``, ``get``, ``list``, ``delete``.
        self.sandboxes = Sandboxes(self)

    # -- plumbing -------------------------------------------------------------------------------

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                resp = self._http.request(
                    call.method,
                    self.url + call.path,
                    json=call.json,
                    params=call.params,
                    headers=self._request_headers(call),
                    timeout=call.timeout or self._timeout,
                )
            except httpx.HTTPError as e:
                raise self._transport_error(call, e) from e
            if self._should_retry(resp, attempt):
                resp.close()
                time.sleep(self._retry_delay(resp, attempt))
                attempt += 1
                continue
            return self._answer(resp)

    def _open(
        self, call: Call, content: Any = None, content_type: str | None = None, accept: str = "application/json"
    ) -> httpx.Response:
        """Sends a request whose answer is read as a stream (the caller closes it). Error answers
        raise as in :meth:`_send`; a 503 is retried unless the body is a stream."""
        attempt = 0
        replayable = content is None or isinstance(content, bytes)
        while True:
            req = self._stream_request(self._http, call, content, content_type, accept)
            try:
                resp = self._http.send(req, stream=True)
            except httpx.HTTPError as e:
                raise self._transport_error(call, e) from e
            if resp.is_success:
                return resp
            try:
                resp.read()
            except httpx.HTTPError:
                pass  # the error answer broke off: its status is enough
            finally:
                resp.close()
            if replayable and self._should_retry(resp, attempt):
                time.sleep(self._retry_delay(resp, attempt))
                attempt += 1
                continue
            raise error_from_response(resp)

    def _send_upload(self, call: Call, content: Any, content_type: str) -> Any:
        resp = self._open(call, content=content, content_type=content_type)
        try:
            resp.read()
        except httpx.HTTPError as e:
            raise self._transport_error(call, e) from e
        finally:
            resp.close()
        return self._answer(resp)

    def close(self) -> None:
        """Closes the connection pool (not needed with ``with Shoal() as client:``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Shoal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- top level ------------------------------------------------------------------------------

    def health(self) -> Health:
        return Health._from_json(self._send(Call("GET", "/v1/health")))

    def shapes(self) -> list[Shape]:
        """The sandbox sizes the server offers (``shape=`` of ``sandboxes.create``)."""
        return [Shape._from_json(s) for s in self._send(Call("GET", "/v1/shapes"))["shapes"]]

    def images(self) -> list[Image]:
        """The images sandboxes can start from (``rootfs=`` of ``sandboxes.create``)."""
        return [Image._from_json(i) for i in self._send(Call("GET", "/v1/images"))["images"]]


class Networks:
    """``client.networks``"""

    def __init__(self, client: Shoal) -> None:
        self._c = client

    def create(self, name: str, cidr: str | None = None) -> Network:
        """Creates a private network; its IPv4 block comes from the server's pool unless ``cidr`` is given."""
        body: dict[str, Any] = {"name": name}
        if cidr is not None:
            body["cidr"] = cidr
        return Network._from_json(self._c._send(Call("POST", "/v1/networks", json=body)))

    def get(self, network: NetworkRef) -> Network:
        """One network (by id or name) with its members."""
        return Network._from_json(self._c._send(Call("GET", f"/v1/networks/{seg(network_key(network))}")))

    def delete(self, network: NetworkRef, force: bool = False) -> None:
        """Deletes a network. One with members is refused (:class:`Conflict`) unless ``force``,
        which unplugs them first (they keep running on their other networks)."""
        params = {"force": "true"} if force else None
        self._c._send(Call("DELETE", f"/v1/networks/{seg(network_key(network))}", params=params))

    def members(self, network: NetworkRef) -> builtins.list[Member]:
        """The network's members: their address, MAC, DNS name and state."""
        body = self._c._send(Call("GET", f"/v1/networks/{seg(network_key(network))}/members"))
        return [Member._from_json(m) for m in body["members"]]

    def list(self) -> builtins.list[Network]:
        """Every network, oldest first."""
        return [Network._from_json(n) for n in self._c._send(Call("GET", "/v1/networks"))["networks"]]


class Sandboxes:
    """``client.sandboxes``"""

    def __init__(self, client: Shoal) -> None:
        self._c = client

    def create(
        self,
        rootfs: str,
        *,
        name: str | None = None,
        shape: str | None = None,
        networks: Sequence[NetworkRef] | NetworkRef | None = None,
        env: Mapping[str, object] | None = None,
        timeout_secs: int | None = None,
        on_timeout: str | None = None,
        idempotency_key: str | None = None,
    ) -> Sandbox:
        """Creates a sandbox from the image ``rootfs`` (``NAME:TAG``, e.g. ``devbox:1``) and returns
        once it is ready for :meth:`Sandbox.run`.

        ``networks`` are joined in order (``eth0``, ``eth1``, ...), each given as a :class:`Network`,
        an id or a name. ``shape`` defaults to ``s-1vcpu-1gb`` on the server. ``timeout_secs`` gives
        the sandbox a lifetime: at expiry it is deleted, or stopped with ``on_timeout="stop"``.
        Use the result as a context manager to delete the sandbox when the block ends.

        Every create sends an ``Idempotency-Key``: ``idempotency_key`` (1-255 printable ASCII
        characters, no spaces), else a new random UUID. A create sent again with the same key and
        the same arguments returns the sandbox the first one made instead of making another (the
        client's own 503 retries reuse the key); the same key with other arguments is refused
        (:class:`InvalidArgument`).
        """
        body = create_body(rootfs, name, shape, networks, env, timeout_secs, on_timeout)
        return Sandbox._from_json(self._c._send(self._c._create_call(body, idempotency_key)), self._c)

    def get(self, sandbox: SandboxRef) -> Sandbox:
        """One sandbox by id or name."""
        return Sandbox._from_json(self._c._send(Call("GET", f"/v1/sandboxes/{seg(sandbox_key(sandbox))}")), self._c)

    def delete(self, sandbox: SandboxRef) -> None:
        """Deletes a sandbox by id or name: its container, interfaces, rules and files."""
        self._c._send(Call("DELETE", f"/v1/sandboxes/{seg(sandbox_key(sandbox))}"))

    def list(self) -> builtins.list[Sandbox]:
        """Every sandbox, oldest first."""
        return [Sandbox._from_json(s, self._c) for s in self._c._send(Call("GET", "/v1/sandboxes"))["sandboxes"]]


@dataclass
class Sandbox(SandboxInfo):
    """A sandbox, with methods that act on it through the client that fetched it.

    ``with client.sandboxes.create(...) as sb:`` deletes the sandbox when the block ends.
    """

    _client: Shoal | None = field(default=None, repr=False, compare=False)

    @classmethod
    def _from_json(cls, d: dict[str, Any], client: Shoal) -> Sandbox:
        return cls(**cls._fields(d), _client=client)

    @property
    def client(self) -> Shoal:
        if self._client is None:
            raise RuntimeError("this Sandbox is not bound to a client: get it through client.sandboxes")
        return self._client

    def run(
        self,
        cmd: str,
        *args: object,
        env: Mapping[str, object] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        """Runs ``cmd args...`` in the sandbox (directly, not through a shell: use
        ``run("sh", "-c", "...")`` for shell syntax) and waits for it to finish.

        ``stdin`` is written to the command's input, then closed. ``timeout`` is in seconds
        (server default 60 s); on timeout the command is killed and ``timed_out`` is true.
        A non-zero exit is not an error unless ``check=True`` (then :class:`CommandError`).
        Processes started in the background (``sh -c 'nohup server >/dev/null 2>&1 &'``) keep running.
        """
        c = self.client
        call = c._exec_call(self.id, cmd, args, env, cwd, stdin, timeout)
        result = CommandResult._from_json(c._send(call))
        if check and not result.ok:
            raise CommandError(result, [cmd, *map(str, args)])
        return result

    # -- streamed processes ---------------------------------------------------------------------

    def exec(
        self,
        cmd: str,
        *args: object,
        env: Mapping[str, object] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        keep_stdin_open: bool = False,
        timeout: float | None = None,
        pty: bool | tuple[int, int] | None = None,
        background: bool = False,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> ProcessHandle:
        """Starts ``cmd args...`` and streams its output as it is produced; returns once the
        process runs, with a :class:`ProcessHandle` (``pid``, ``wait()``, iteration over its
        events, ``write_stdin``, ``close_stdin``, ``kill``, ``resize``)::

            with sb.exec("make", "test", on_stdout=sys.stdout.buffer.write) as p:
                result = p.wait()

        ``stdin`` (text or bytes) is written first; then stdin is closed unless
        ``keep_stdin_open=True`` (then :meth:`ProcessHandle.write_stdin`). ``timeout`` in seconds
        kills the process group (no timeout by default). ``pty=True`` (24x80) or ``(rows, cols)``
        runs it on a pseudo-terminal: output then comes as ``pty`` events (and to ``on_stdout``).
        The process belongs to the connection: closing the handle kills it, unless
        ``background=True``. Callbacks get output bytes as events are read (by iterating or by
        ``wait()``). A command that is not found starts nothing: ``pid`` is ``None`` and
        ``wait()`` gives exit code 127.
        """
        c = self.client
        body = exec_stream_body(cmd, args, env, cwd, stdin, keep_stdin_open, timeout, pty, background)
        call = Call("POST", f"/v1/sandboxes/{seg(self.id)}/exec/stream", json=body)
        resp = c._open(call, accept="application/x-ndjson")
        return ProcessHandle._start(
            c, call, resp, _Controls(seg(self.id)), None, on_stdout=on_stdout, on_stderr=on_stderr, on_event=on_event
        )

    def start_background(
        self,
        cmd: str,
        *args: object,
        env: Mapping[str, object] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        keep_stdin_open: bool = False,
        timeout: float | None = None,
        pty: bool | tuple[int, int] | None = None,
    ) -> int:
        """Starts ``cmd args...`` as a background process and returns its pid once it runs. It keeps
        running without a client; its output goes to a 1 MiB ring buffer that
        ``attach(pid, from_start=True)`` replays. Raises :class:`ShoalError` (code ``not_started``)
        when the command cannot run."""
        c = self.client
        body = exec_stream_body(cmd, args, env, cwd, stdin, keep_stdin_open, timeout, pty, True)
        call = Call("POST", f"/v1/sandboxes/{seg(self.id)}/exec/stream", json=body)
        with ProcessHandle._start(
            c, call, c._open(call, accept="application/x-ndjson"), _Controls(seg(self.id)), None
        ) as h:
            if h.pid is not None:
                return h.pid
            events: list[ProcessEvent] = []
            try:
                events.extend(h)
            except ShoalError:
                pass
            raise not_started(cmd, events)

    def processes(self) -> builtins.list[ProcessInfo]:
        """The sandbox's background processes, running or finished, in start order."""
        body = self.client._send(Call("GET", f"/v1/sandboxes/{seg(self.id)}/processes"))
        return [ProcessInfo._from_json(p) for p in body["processes"]]

    def write_stdin(self, pid: int, data: str | bytes, *, close: bool = False) -> None:
        """Writes to a process's stdin by pid (started with ``keep_stdin_open=True``); ``close=True``
        closes it afterwards."""
        self.client._send(_Controls(seg(self.id)).stdin(pid, data, close))

    def close_stdin(self, pid: int) -> None:
        """Closes a process's stdin by pid."""
        self.client._send(_Controls(seg(self.id)).stdin(pid, None, True))

    def kill_process(self, pid: int, signal: str | int | None = None) -> None:
        """Without ``signal``: SIGKILL to the process group, and a background process leaves the
        list. With it (``"SIGINT"``, ``"TERM"``, ``15``, ...): sends that signal."""
        self.client._send(_Controls(seg(self.id)).kill(pid, signal))

    def resize_process(self, pid: int, rows: int, cols: int) -> None:
        """Sets the window size of a process's pty."""
        self.client._send(_Controls(seg(self.id)).resize(pid, rows, cols))

    @property
    def files(self) -> Files:
        """The sandbox's files: ``read``, ``read_stream``, ``write``, ``list``, ``stat``, ``mkdir``,
        ``remove``, ``rename``, ``download_tar``, ``upload_tar``."""
        return Files(self.client, self.id)

    # -- networks -------------------------------------------------------------------------------

    @overload
    def attach(
        self,
        target: int,
        /,
        *,
        from_start: bool = False,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> ProcessHandle: ...

    @overload
    def attach(self, target: NetworkRef, /) -> Sandbox: ...

    def attach(
        self,
        target: NetworkRef | int,
        /,
        *,
        from_start: bool = False,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> ProcessHandle | Sandbox:
        """Two calls in one, told apart by the argument:

        - ``attach(pid)`` (an ``int``) attaches to a background process: a :class:`ProcessHandle`
          with its output from now on (with ``from_start=True``, first what its ring buffer kept),
          then its exit. Closing the handle leaves the process running.
        - ``attach(net)`` (a network object, id or name) plugs this running sandbox into one more
          network; updates and returns self.
        """
        if isinstance(target, bool):
            raise TypeError("attach() takes a process id (int) or a network (object, id or name), not a bool")
        if isinstance(target, int):
            c = self.client
            q = {"from_start": "true"} if from_start else None
            call = Call("GET", f"/v1/sandboxes/{seg(self.id)}/processes/{pid_seg(target)}/output", params=q)
            resp = c._open(call, accept="application/x-ndjson")
            return ProcessHandle._start(
                c,
                call,
                resp,
                _Controls(seg(self.id)),
                target,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                on_event=on_event,
            )
        network = target
        self._update(
            self.client._send(Call("POST", f"/v1/sandboxes/{seg(self.id)}/networks", json=network_ref(network)))
        )
        return self

    def detach(self, network: NetworkRef) -> Sandbox:
        """Unplugs this sandbox from a network (object, id or name); updates and returns self."""
        path = f"/v1/sandboxes/{seg(self.id)}/networks/{seg(network_key(network))}"
        self._update(self.client._send(Call("DELETE", path)))
        return self

    def stop(self) -> Sandbox:
        """Stops the sandbox's processes, keeping its filesystem and addresses (``state`` becomes
        ``stopped``; :meth:`run` is then a :class:`Conflict`); updates and returns self."""
        self._update(self.client._send(Call("POST", f"/v1/sandboxes/{seg(self.id)}/stop")))
        return self

    def start(self) -> Sandbox:
        """Starts a stopped sandbox again on its kept filesystem; updates and returns self."""
        self._update(self.client._send(Call("POST", f"/v1/sandboxes/{seg(self.id)}/start")))
        return self

    def set_timeout(self, seconds: int) -> Sandbox:
        """Makes the sandbox expire ``seconds`` from now (extends or shortens its lifetime; see
        ``expires_at`` and ``on_timeout``); updates and returns self."""
        body = {"timeout_secs": whole_seconds("seconds", seconds)}
        self._update(self.client._send(Call("POST", f"/v1/sandboxes/{seg(self.id)}/timeout", json=body)))
        return self

    def logs(self, tail: int = 200) -> str:
        """The last ``tail`` lines of the sandbox's console (the output of its PID 1)."""
        path = f"/v1/sandboxes/{seg(self.id)}/logs"
        return str(self.client._send(Call("GET", path, params=logs_params(tail)))["log"])

    def metrics(self) -> SandboxMetrics:
        """CPU, memory, processes, disk use and per-interface traffic."""
        return SandboxMetrics._from_json(self.client._send(Call("GET", f"/v1/sandboxes/{seg(self.id)}/metrics")))

    def refresh(self) -> Sandbox:
        """Fetches the sandbox again (state, networks, ...); updates and returns self."""
        self._update(self.client._send(Call("GET", f"/v1/sandboxes/{seg(self.id)}")))
        return self

    def delete(self) -> None:
        """Deletes the sandbox."""
        self.client._send(Call("DELETE", f"/v1/sandboxes/{seg(self.id)}"))

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.delete()
        except NotFound:
            pass  # already gone
        except ShoalError as e:
            if exc is None:
                raise
            # Do not hide the error that ended the block behind the cleanup's.
            warnings.warn(f"could not delete sandbox `{self.name}`: {e}", RuntimeWarning, stacklevel=2)
