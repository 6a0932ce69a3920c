"""Streamed processes: the handles ``sb.exec(...)`` and ``sb.attach(pid)`` return."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._base import Call, parse_event, pid_seg, stdin_body
from ._errors import ShoalError
from ._models import ProcessEvent, ProcessResult

if TYPE_CHECKING:
    from ._async import AsyncShoal
    from ._sync import Shoal

#: A callback for output bytes; the async client also takes coroutine functions.
OutputCallback = Callable[[bytes], Any]
EventCallback = Callable[[ProcessEvent], Any]

_STREAM_ERRORS = (httpx.HTTPError, httpx.StreamError)


class _Controls:
    """The small requests that steer a process by pid (shared by both clients)."""

    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/v1/sandboxes/{sandbox_id}/processes"

    def stdin(self, pid: int, data: str | bytes | None, close: bool) -> Call:
        if data is None and not close:
            raise ValueError("nothing to write: give data, or close=True")
        return Call("POST", f"{self.base}/{pid_seg(pid)}/stdin", json=stdin_body(data, close))

    def kill(self, pid: int, signal: str | int | None) -> Call:
        if signal is None:
            return Call("DELETE", f"{self.base}/{pid_seg(pid)}")
        return Call("POST", f"{self.base}/{pid_seg(pid)}/signal", json={"signal": str(signal)})

    def resize(self, pid: int, rows: int, cols: int) -> Call:
        return Call("POST", f"{self.base}/{pid_seg(pid)}/resize", json={"rows": int(rows), "cols": int(cols)})


class _HandleState:
    """What the sync and the async handle share: bookkeeping of one stream's events."""

    def __init__(
        self,
        call: Call,
        controls: _Controls,
        on_stdout: OutputCallback | None,
        on_stderr: OutputCallback | None,
        on_event: EventCallback | None,
        pid: int | None,
    ) -> None:
        self._call = call
        self._controls = controls
        self._on_stdout = on_stdout
        self._on_stderr = on_stderr
        self._on_event = on_event
        #: The process id inside the sandbox; ``None`` only when the command could not start (the
        #: stream then has its ``stderr`` and an ``exit`` with 126 or 127).
        self.pid: int | None = pid
        self._pending: list[ProcessEvent] = []
        self._result: ProcessResult | None = None
        self._error: ShoalError | None = None
        self._closed = False
        self._last_error: ProcessEvent | None = None

    @property
    def result(self) -> ProcessResult | None:
        """How the process ended, once its ``exit`` event was read; ``None`` before."""
        return self._result

    @property
    def finished(self) -> bool:
        """The stream is over: the process exited, the stream broke off, or it was closed."""
        return self._result is not None or self._error is not None or self._closed

    def _pid(self) -> int:
        if self.pid is None:
            raise ShoalError(None, "not_started", "the command did not start (see its stderr and exit code)")
        return self.pid

    def _callbacks(self, ev: ProcessEvent) -> list[Any]:
        """Runs the callbacks for ``ev``; returns what they returned (awaitables, for the async handle)."""
        out: list[Any] = []
        if ev.type in ("stdout", "pty") and self._on_stdout is not None:
            out.append(self._on_stdout(ev.data))
        elif ev.type == "stderr" and self._on_stderr is not None:
            out.append(self._on_stderr(ev.data))
        if self._on_event is not None:
            out.append(self._on_event(ev))
        return out

    def _after(self, ev: ProcessEvent | None) -> None:
        """Bookkeeping once an event (or the end of the stream, ``None``) was read."""
        if ev is None:
            if self._closed:
                return
            last = self._last_error
            if last is not None:
                self._error = ShoalError(
                    None, last.code or "stream_ended", f"the stream ended before the process exited: {last.message}"
                )
            else:
                self._error = ShoalError(None, "stream_ended", "the stream ended before the process exited")
            raise self._error
        if ev.type == "error":
            self._last_error = ev
        if ev.type == "exit":
            self._result = ProcessResult(
                exit_code=ev.exit_code if ev.exit_code is not None else -1,
                signal=ev.signal,
                timed_out=ev.timed_out,
                duration_ms=ev.duration_ms or 0,
            )

    def _outcome(self) -> ProcessResult:
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        raise ShoalError(None, "closed", f"the stream of process {self.pid} was closed before it exited")

    def __repr__(self) -> str:
        state = "exited" if self._result is not None else "closed" if self.finished else "running"
        return f"<{type(self).__name__} pid={self.pid} {state}>"


class ProcessHandle(_HandleState):
    """A process running in a sandbox, from ``sb.exec(...)`` or ``sb.attach(pid)``.

    Iterate over it for its events as they arrive, or call :meth:`wait` for the exit (the
    callbacks given to ``exec`` run either way, as events are read)::

        with sb.exec("sh", "-c", "echo hi; sleep 1; echo bye") as p:
            for ev in p:
                if ev.type == "stdout":
                    print(ev.text, end="")
            print(p.wait().exit_code)

    Events are read as you consume them: a process whose output nobody reads eventually waits
    (as with a pipe). Leaving the ``with`` block (or :meth:`close`) drops the connection: a
    foreground process is then killed, a background one keeps running.
    """

    def __init__(
        self,
        client: Shoal,
        call: Call,
        resp: httpx.Response,
        controls: _Controls,
        on_stdout: OutputCallback | None,
        on_stderr: OutputCallback | None,
        on_event: EventCallback | None,
        pid: int | None,
    ) -> None:
        super().__init__(call, controls, on_stdout, on_stderr, on_event, pid)
        self._client = client
        self._resp = resp
        self._lines = resp.iter_lines()

    @classmethod
    def _start(
        cls, client: Shoal, call: Call, resp: httpx.Response, controls: _Controls, pid: int | None, **cb: Any
    ) -> ProcessHandle:
        h = cls(client, call, resp, controls, cb.get("on_stdout"), cb.get("on_stderr"), cb.get("on_event"), pid)
        if pid is None:
            try:
                first = h._read()
            except BaseException:
                resp.close()
                raise
            if first is not None:
                h._pending.append(first)
                if first.type == "started":
                    h.pid = first.pid
        return h

    def _read(self) -> ProcessEvent | None:
        try:
            for line in self._lines:
                ev = parse_event(line)
                if ev is not None:
                    return ev
        except _STREAM_ERRORS as e:
            if self._closed:
                return None
            self._resp.close()
            err = (
                self._client._transport_error(self._call, e)
                if isinstance(e, httpx.HTTPError)
                else ShoalError(None, "closed", str(e))
            )
            self._error = err
            raise err from e
        return None

    def _next(self) -> ProcessEvent | None:
        if self.finished:
            return None
        ev = self._pending.pop(0) if self._pending else self._read()
        try:
            self._after(ev)
        finally:
            if self.finished:
                self._resp.close()
        if ev is not None:
            self._callbacks(ev)
        return ev

    def __iter__(self) -> Iterator[ProcessEvent]:
        while True:
            ev = self._next()
            if ev is None:
                return
            yield ev

    def wait(self) -> ProcessResult:
        """Reads the rest of the stream (running the callbacks) and returns how the process ended.

        Raises :class:`ShoalError` when the stream ended before the process did (connection lost,
        :meth:`close`)."""
        while self._next() is not None:
            pass
        return self._outcome()

    def write_stdin(self, data: str | bytes) -> None:
        """Writes to the process's stdin (it must have been started with ``keep_stdin_open=True``);
        text is sent as UTF-8."""
        self._client._send(self._controls.stdin(self._pid(), data, False))

    def close_stdin(self) -> None:
        """Closes the process's stdin (EOF; ^D on a pty)."""
        self._client._send(self._controls.stdin(self._pid(), None, True))

    def kill(self, signal: str | int | None = None) -> None:
        """Without ``signal``: SIGKILL to the process group (a background process also leaves the
        process list). With it (``"SIGINT"``, ``"TERM"``, ``15``, ...): sends that signal to the group."""
        self._client._send(self._controls.kill(self._pid(), signal))

    def resize(self, rows: int, cols: int) -> None:
        """Sets the pty's window size (the process gets SIGWINCH)."""
        self._client._send(self._controls.resize(self._pid(), rows, cols))

    def close(self) -> None:
        """Drops the connection: a foreground process is killed by the server, a background (or
        attached) one keeps running. Iteration ends; :meth:`wait` then raises unless it had exited."""
        if not self.finished:
            self._closed = True
        self._resp.close()

    def __enter__(self) -> ProcessHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncProcessHandle(_HandleState):
    """The async form of :class:`ProcessHandle`: ``async for ev in p``, ``await p.wait()``.

    Callbacks may be plain functions or coroutine functions (awaited as events are read)."""

    def __init__(
        self,
        client: AsyncShoal,
        call: Call,
        resp: httpx.Response,
        controls: _Controls,
        on_stdout: OutputCallback | None,
        on_stderr: OutputCallback | None,
        on_event: EventCallback | None,
        pid: int | None,
    ) -> None:
        super().__init__(call, controls, on_stdout, on_stderr, on_event, pid)
        self._client = client
        self._resp = resp
        self._lines = resp.aiter_lines()

    @classmethod
    async def _start(
        cls, client: AsyncShoal, call: Call, resp: httpx.Response, controls: _Controls, pid: int | None, **cb: Any
    ) -> AsyncProcessHandle:
        h = cls(client, call, resp, controls, cb.get("on_stdout"), cb.get("on_stderr"), cb.get("on_event"), pid)
        if pid is None:
            try:
                first = await h._read()
            except BaseException:
                await resp.aclose()
                raise
            if first is not None:
                h._pending.append(first)
                if first.type == "started":
                    h.pid = first.pid
        return h

    async def _read(self) -> ProcessEvent | None:
        try:
            async for line in self._lines:
                ev = parse_event(line)
                if ev is not None:
                    return ev
        except _STREAM_ERRORS as e:
            if self._closed:
                return None
            await self._resp.aclose()
            err = (
                self._client._transport_error(self._call, e)
                if isinstance(e, httpx.HTTPError)
                else ShoalError(None, "closed", str(e))
            )
            self._error = err
            raise err from e
        return None

    async def _next(self) -> ProcessEvent | None:
        if self.finished:
            return None
        ev = self._pending.pop(0) if self._pending else await self._read()
        try:
            self._after(ev)
        finally:
            if self.finished:
                await self._resp.aclose()
        if ev is not None:
            for r in self._callbacks(ev):
                if inspect.isawaitable(r):
                    await r
        return ev

    async def __aiter__(self) -> AsyncIterator[ProcessEvent]:
        while True:
            ev = await self._next()
            if ev is None:
                return
            yield ev

    async def wait(self) -> ProcessResult:
        """Reads the rest of the stream (running the callbacks) and returns how the process ended."""
        while await self._next() is not None:
            pass
        return self._outcome()

    async def write_stdin(self, data: str | bytes) -> None:
        """Writes to the process's stdin (started with ``keep_stdin_open=True``)."""
        await self._client._send(self._controls.stdin(self._pid(), data, False))

    async def close_stdin(self) -> None:
        """Closes the process's stdin (EOF; ^D on a pty)."""
        await self._client._send(self._controls.stdin(self._pid(), None, True))

    async def kill(self, signal: str | int | None = None) -> None:
        """SIGKILL to the process group without ``signal``; that signal with it. See :meth:`ProcessHandle.kill`."""
        await self._client._send(self._controls.kill(self._pid(), signal))

    async def resize(self, rows: int, cols: int) -> None:
        """Sets the pty's window size."""
        await self._client._send(self._controls.resize(self._pid(), rows, cols))

    async def aclose(self) -> None:
        """Drops the connection (a foreground process is killed, a background one keeps running)."""
        if not self.finished:
            self._closed = True
        await self._resp.aclose()

    async def __aenter__(self) -> AsyncProcessHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class ProcessStart(Awaitable[AsyncProcessHandle]):
    """What ``AsyncSandbox.exec`` and ``AsyncSandbox.attach(pid)`` return: await it for the
    handle, or use ``async with sb.exec(...) as p:`` to close the stream when the block ends."""

    def __init__(self, make: Callable[[], Awaitable[AsyncProcessHandle]]) -> None:
        self._make = make
        self._handle: AsyncProcessHandle | None = None

    def __await__(self) -> Generator[Any, None, AsyncProcessHandle]:
        return self._make().__await__()

    async def __aenter__(self) -> AsyncProcessHandle:
        self._handle = await self._make()
        return self._handle

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            await self._handle.aclose()
