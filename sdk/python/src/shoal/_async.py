"""The asynchronous client: :class:`AsyncShoal` (same surface as :class:`Shoal`, with ``await``)."""

from __future__ import annotations

import asyncio
import builtins
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
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
from ._files import AsyncFiles
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
from ._process import AsyncProcessHandle, EventCallback, OutputCallback, ProcessStart, _Controls


class AsyncShoal(ClientCore):
    """Async client for the Shoal HTTP API v1; configured like :class:`Shoal`.

    >>> async with AsyncShoal() as client:
    ...     net = await client.networks.create("team-eval")
    ...     async with client.sandboxes.create(rootfs="devbox:1", networks=[net]) as sb:
    ...         print((await sb.run("uname", "-a")).stdout)
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(url, api_key, timeout, max_retries)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=self._timeout)
        #: Networks: ``create``, ``get``, ``list``, ``delete``, ``members``.
        self.networks = AsyncNetworks(self)
        #: Sandboxes: ``create``, ``get``, ``list``, ``delete``.
        self.sandboxes = AsyncSandboxes(self)

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                resp = await self._http.request(
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
                await resp.aclose()
                await asyncio.sleep(self._retry_delay(resp, attempt))
                attempt += 1
                continue
            return self._answer(resp)

    async def _open(
        self, call: Call, content: Any = None, content_type: str | None = None, accept: str = "application/json"
    ) -> httpx.Response:
        """Sends a request whose answer is read as a stream (the caller closes it); see :meth:`Shoal._open`."""
        attempt = 0
        replayable = content is None or isinstance(content, bytes)
        while True:
            req = self._stream_request(self._http, call, content, content_type, accept)
            try:
                resp = await self._http.send(req, stream=True)
            except httpx.HTTPError as e:
                raise self._transport_error(call, e) from e
            if resp.is_success:
                return resp
            try:
                await resp.aread()
            except httpx.HTTPError:
                pass
            finally:
                await resp.aclose()
            if replayable and self._should_retry(resp, attempt):
                await asyncio.sleep(self._retry_delay(resp, attempt))
                attempt += 1
                continue
            raise error_from_response(resp)

    async def _send_upload(self, call: Call, content: Any, content_type: str) -> Any:
        resp = await self._open(call, content=content, content_type=content_type)
        try:
            await resp.aread()
        except httpx.HTTPError as e:
            raise self._transport_error(call, e) from e
        finally:
            await resp.aclose()
        return self._answer(resp)

    async def aclose(self) -> None:
        """Closes the connection pool (not needed with ``async with AsyncShoal() as client:``)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncShoal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def health(self) -> Health:
        return Health._from_json(await self._send(Call("GET", "/v1/health")))

    async def shapes(self) -> list[Shape]:
        """The sandbox sizes the server offers (``shape=`` of ``sandboxes.create``)."""
        return [Shape._from_json(s) for s in (await self._send(Call("GET", "/v1/shapes")))["shapes"]]

    async def images(self) -> list[Image]:
        """The images sandboxes can start from (``rootfs=`` of ``sandboxes.create``)."""
        return [Image._from_json(i) for i in (await self._send(Call("GET", "/v1/images")))["images"]]


class AsyncNetworks:
    """``client.networks``"""

    def __init__(self, client: AsyncShoal) -> None:
        self._c = client

    async def create(self, name: str, cidr: str | None = None) -> Network:
        """Creates a private network; its IPv4 block comes from the server's pool unless ``cidr`` is given."""
        body: dict[str, Any] = {"name": name}
        if cidr is not None:
            body["cidr"] = cidr
        return Network._from_json(await self._c._send(Call("POST", "/v1/networks", json=body)))

    async def get(self, network: NetworkRef) -> Network:
        """One network (by id or name) with its members."""
        return Network._from_json(await self._c._send(Call("GET", f"/v1/networks/{seg(network_key(network))}")))

    async def delete(self, network: NetworkRef, force: bool = False) -> None:
        """Deletes a network; one with members only with ``force`` (which unplugs them first)."""
        params = {"force": "true"} if force else None
        await self._c._send(Call("DELETE", f"/v1/networks/{seg(network_key(network))}", params=params))

    async def members(self, network: NetworkRef) -> builtins.list[Member]:
        """The network's members: their address, MAC, DNS name and state."""
        body = await self._c._send(Call("GET", f"/v1/networks/{seg(network_key(network))}/members"))
        return [Member._from_json(m) for m in body["members"]]

    async def list(self) -> builtins.list[Network]:
        """Every network, oldest first."""
        return [Network._from_json(n) for n in (await self._c._send(Call("GET", "/v1/networks")))["networks"]]


class SandboxCreation(Awaitable["AsyncSandbox"]):
    """What ``AsyncShoal.sandboxes.create`` returns: await it for the sandbox, or use it with
    ``async with`` to have the sandbox deleted when the block ends."""

    def __init__(self, make: Callable[[], Awaitable[AsyncSandbox]]) -> None:
        self._make = make
        self._sandbox: AsyncSandbox | None = None

    def __await__(self) -> Generator[Any, None, AsyncSandbox]:
        return self._make().__await__()

    async def __aenter__(self) -> AsyncSandbox:
        self._sandbox = await self._make()
        return self._sandbox

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sandbox is not None:
            await self._sandbox.__aexit__(exc_type, exc, tb)


class AsyncSandboxes:
    """``client.sandboxes``"""

    def __init__(self, client: AsyncShoal) -> None:
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
    ) -> SandboxCreation:
        """Creates a sandbox from the image ``rootfs`` and returns once it is ready.

        ``sb = await client.sandboxes.create(...)``, or
        ``async with client.sandboxes.create(...) as sb:`` to delete it when the block ends.
        See :meth:`Sandboxes.create` for the arguments (``idempotency_key``: the key is fixed when
        ``create`` is called, so awaiting the same result twice gives the same sandbox).
        """
        body = create_body(rootfs, name, shape, networks, env, timeout_secs, on_timeout)
        call = self._c._create_call(body, idempotency_key)

        async def make() -> AsyncSandbox:
            return AsyncSandbox._from_json(await self._c._send(call), self._c)

        return SandboxCreation(make)

    async def get(self, sandbox: SandboxRef) -> AsyncSandbox:
        """One sandbox by id or name."""
        d = await self._c._send(Call("GET", f"/v1/sandboxes/{seg(sandbox_key(sandbox))}"))
        return AsyncSandbox._from_json(d, self._c)

    async def delete(self, sandbox: SandboxRef) -> None:
        """Deletes a sandbox by id or name."""
        await self._c._send(Call("DELETE", f"/v1/sandboxes/{seg(sandbox_key(sandbox))}"))

    async def list(self) -> builtins.list[AsyncSandbox]:
        """Every sandbox, oldest first."""
        body = await self._c._send(Call("GET", "/v1/sandboxes"))
        return [AsyncSandbox._from_json(s, self._c) for s in body["sandboxes"]]


@dataclass
class AsyncSandbox(SandboxInfo):
    """A sandbox with awaitable methods; ``async with sb:`` deletes it when the block ends."""

    _client: AsyncShoal | None = field(default=None, repr=False, compare=False)

    @classmethod
    def _from_json(cls, d: dict[str, Any], client: AsyncShoal) -> AsyncSandbox:
        return cls(**cls._fields(d), _client=client)

    @property
    def client(self) -> AsyncShoal:
        if self._client is None:
            raise RuntimeError("this AsyncSandbox is not bound to a client: get it through client.sandboxes")
        return self._client

    async def run(
        self,
        cmd: str,
        *args: object,
        env: Mapping[str, object] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> CommandResult:
        """Runs ``cmd args...`` in the sandbox and waits for it; see :meth:`Sandbox.run`."""
        c = self.client
        call = c._exec_call(self.id, cmd, args, env, cwd, stdin, timeout)
        result = CommandResult._from_json(await c._send(call))
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
    ) -> ProcessStart:
        """Starts ``cmd args...`` and streams its output; see :meth:`Sandbox.exec`.

        ``p = await sb.exec(...)``, or ``async with sb.exec(...) as p:`` to close the stream (and
        kill a foreground process that still runs) when the block ends. Then ``async for ev in p``
        and ``await p.wait()``. Callbacks may be coroutine functions.
        """
        body = exec_stream_body(cmd, args, env, cwd, stdin, keep_stdin_open, timeout, pty, background)
        call = Call("POST", f"/v1/sandboxes/{seg(self.id)}/exec/stream", json=body)
        c = self.client

        async def make() -> AsyncProcessHandle:
            resp = await c._open(call, accept="application/x-ndjson")
            return await AsyncProcessHandle._start(
                c,
                call,
                resp,
                _Controls(seg(self.id)),
                None,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                on_event=on_event,
            )

        return ProcessStart(make)

    async def start_background(
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
        """Starts a background process and returns its pid once it runs; see :meth:`Sandbox.start_background`."""
        c = self.client
        body = exec_stream_body(cmd, args, env, cwd, stdin, keep_stdin_open, timeout, pty, True)
        call = Call("POST", f"/v1/sandboxes/{seg(self.id)}/exec/stream", json=body)
        resp = await c._open(call, accept="application/x-ndjson")
        async with await AsyncProcessHandle._start(c, call, resp, _Controls(seg(self.id)), None) as h:
            if h.pid is not None:
                return h.pid
            events: list[ProcessEvent] = []
            try:
                async for ev in h:
                    events.append(ev)
            except ShoalError:
                pass
            raise not_started(cmd, events)

    async def processes(self) -> builtins.list[ProcessInfo]:
        """The sandbox's background processes, running or finished, in start order."""
        body = await self.client._send(Call("GET", f"/v1/sandboxes/{seg(self.id)}/processes"))
        return [ProcessInfo._from_json(p) for p in body["processes"]]

    async def write_stdin(self, pid: int, data: str | bytes, *, close: bool = False) -> None:
        """Writes to a process's stdin by pid; ``close=True`` closes it afterwards."""
        await self.client._send(_Controls(seg(self.id)).stdin(pid, data, close))

    async def close_stdin(self, pid: int) -> None:
        """Closes a process's stdin by pid."""
        await self.client._send(_Controls(seg(self.id)).stdin(pid, None, True))

    async def kill_process(self, pid: int, signal: str | int | None = None) -> None:
        """SIGKILL to the process group (it leaves the list) without ``signal``; that signal with it."""
        await self.client._send(_Controls(seg(self.id)).kill(pid, signal))

    async def resize_process(self, pid: int, rows: int, cols: int) -> None:
        """Sets the window size of a process's pty."""
        await self.client._send(_Controls(seg(self.id)).resize(pid, rows, cols))

    @property
    def files(self) -> AsyncFiles:
        """The sandbox's files; the calls of :class:`Files`, awaited."""
        return AsyncFiles(self.client, self.id)

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
    ) -> ProcessStart: ...

    @overload
    def attach(self, target: NetworkRef, /) -> Coroutine[Any, Any, AsyncSandbox]: ...

    def attach(
        self,
        target: NetworkRef | int,
        /,
        *,
        from_start: bool = False,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> ProcessStart | Coroutine[Any, Any, AsyncSandbox]:
        """``await sb.attach(pid)`` (an ``int``): a handle on a background process's output (with
        ``from_start=True``, first what its ring buffer kept); also ``async with sb.attach(pid)``.
        ``await sb.attach(net)``: plugs this running sandbox into one more network; updates and
        returns self. See :meth:`Sandbox.attach`."""
        if isinstance(target, bool):
            raise TypeError("attach() takes a process id (int) or a network (object, id or name), not a bool")
        if isinstance(target, int):
            c = self.client
            q = {"from_start": "true"} if from_start else None
            call = Call("GET", f"/v1/sandboxes/{seg(self.id)}/processes/{pid_seg(target)}/output", params=q)
            pid = target

            async def make() -> AsyncProcessHandle:
                resp = await c._open(call, accept="application/x-ndjson")
                return await AsyncProcessHandle._start(
                    c,
                    call,
                    resp,
                    _Controls(seg(self.id)),
                    pid,
                    on_stdout=on_stdout,
                    on_stderr=on_stderr,
                    on_event=on_event,
                )

            return ProcessStart(make)
        return self._attach_network(target)

    async def _attach_network(self, network: NetworkRef) -> AsyncSandbox:
        """Plugs this running sandbox into one more network; updates and returns self."""
        path = f"/v1/sandboxes/{seg(self.id)}/networks"
        self._update(await self.client._send(Call("POST", path, json=network_ref(network))))
        return self

    async def detach(self, network: NetworkRef) -> AsyncSandbox:
        """Unplugs this sandbox from a network; updates and returns self."""
        path = f"/v1/sandboxes/{seg(self.id)}/networks/{seg(network_key(network))}"
        self._update(await self.client._send(Call("DELETE", path)))
        return self

    async def stop(self) -> AsyncSandbox:
        """Stops the sandbox's processes, keeping its filesystem and addresses; updates and returns self."""
        self._update(await self.client._send(Call("POST", f"/v1/sandboxes/{seg(self.id)}/stop")))
        return self

    async def start(self) -> AsyncSandbox:
        """Starts a stopped sandbox again on its kept filesystem; updates and returns self."""
        self._update(await self.client._send(Call("POST", f"/v1/sandboxes/{seg(self.id)}/start")))
        return self

    async def set_timeout(self, seconds: int) -> AsyncSandbox:
        """Makes the sandbox expire ``seconds`` from now; updates and returns self."""
        body = {"timeout_secs": whole_seconds("seconds", seconds)}
        self._update(await self.client._send(Call("POST", f"/v1/sandboxes/{seg(self.id)}/timeout", json=body)))
        return self

    async def logs(self, tail: int = 200) -> str:
        """The last ``tail`` lines of the sandbox's console (the output of its PID 1)."""
        path = f"/v1/sandboxes/{seg(self.id)}/logs"
        return str((await self.client._send(Call("GET", path, params=logs_params(tail))))["log"])

    async def metrics(self) -> SandboxMetrics:
        """CPU, memory, processes, disk use and per-interface traffic."""
        return SandboxMetrics._from_json(await self.client._send(Call("GET", f"/v1/sandboxes/{seg(self.id)}/metrics")))

    async def refresh(self) -> AsyncSandbox:
        """Fetches the sandbox again; updates and returns self."""
        self._update(await self.client._send(Call("GET", f"/v1/sandboxes/{seg(self.id)}")))
        return self

    async def delete(self) -> None:
        """Deletes the sandbox."""
        await self.client._send(Call("DELETE", f"/v1/sandboxes/{seg(self.id)}"))

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.delete()
        except NotFound:
            pass
        except ShoalError as e:
            if exc is None:
                raise
            warnings.warn(f"could not delete sandbox `{self.name}`: {e}", RuntimeWarning, stacklevel=2)
