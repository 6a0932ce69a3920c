"""``sb.files``: the files of a running sandbox, streamed both ways."""

from __future__ import annotations

import asyncio
import builtins
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from ._base import UPLOAD_CHUNK, Call, check_path, file_params, mode_param, seg
from ._errors import NotFound
from ._models import FileInfo

if TYPE_CHECKING:
    from ._async import AsyncShoal
    from ._sync import Shoal

#: What ``write`` and ``upload_tar`` take: bytes, text (sent as UTF-8), a binary file object, or an
#: iterable of bytes (streamed, never held in memory whole). The async client also takes an async
#: iterable of bytes.
UploadData = bytes | bytearray | memoryview | str | BinaryIO | Iterable[bytes]
AsyncUploadData = UploadData | AsyncIterable[bytes]


def _sync_content(data: Any) -> bytes | Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if hasattr(data, "read"):
        return _read_file(data)
    if isinstance(data, Iterable):
        return (c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in data)
    raise TypeError(f"cannot upload a {type(data).__name__}: give bytes, str, a binary file or an iterable of bytes")


def _read_file(f: Any) -> Iterator[bytes]:
    while True:
        chunk = f.read(UPLOAD_CHUNK)
        if not chunk:
            return
        yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


def _async_content(data: Any) -> bytes | AsyncIterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        return _sync_content(data)  # type: ignore[return-value]
    if hasattr(data, "read"):
        return _aread_file(data)
    if isinstance(data, AsyncIterable):
        return _abytes(data)
    if isinstance(data, Iterable):
        return _abytes_sync(data)
    raise TypeError(
        f"cannot upload a {type(data).__name__}: give bytes, str, a binary file or an (async) iterable of bytes"
    )


async def _aread_file(f: Any) -> AsyncIterator[bytes]:
    while True:
        if inspect.iscoroutinefunction(f.read):
            chunk = await f.read(UPLOAD_CHUNK)
        else:
            chunk = await asyncio.to_thread(f.read, UPLOAD_CHUNK)  # a plain file: read off the event loop
        if not chunk:
            return
        yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


async def _abytes(it: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    async for c in it:
        yield c.encode("utf-8") if isinstance(c, str) else bytes(c)


async def _abytes_sync(it: Iterable[Any]) -> AsyncIterator[bytes]:
    for c in it:
        yield c.encode("utf-8") if isinstance(c, str) else bytes(c)


class ByteStream:
    """A download being read (``read_stream``, ``download_tar``): iterate over it for chunks of
    bytes as they arrive, or :meth:`read` the rest at once. Use it as a context manager (or
    :meth:`close` it) when you stop before the end."""

    def __init__(self, client: Shoal, call: Call, resp: httpx.Response, chunk_size: int | None) -> None:
        self._client = client
        self._call = call
        self._resp = resp
        self._chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._resp.iter_bytes(self._chunk_size)
        except httpx.HTTPError as e:
            raise self._client._transport_error(self._call, e) from e
        finally:
            self._resp.close()

    def read(self) -> bytes:
        """The rest of the download."""
        return b"".join(self)

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> ByteStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncByteStream:
    """The async form of :class:`ByteStream`: ``async for chunk in stream``, ``await stream.read()``."""

    def __init__(self, client: AsyncShoal, call: Call, resp: httpx.Response, chunk_size: int | None) -> None:
        self._client = client
        self._call = call
        self._resp = resp
        self._chunk_size = chunk_size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_bytes(self._chunk_size):
                yield chunk
        except httpx.HTTPError as e:
            raise self._client._transport_error(self._call, e) from e
        finally:
            await self._resp.aclose()

    async def read(self) -> bytes:
        """The rest of the download."""
        return b"".join([c async for c in self])

    async def aclose(self) -> None:
        await self._resp.aclose()

    async def __aenter__(self) -> AsyncByteStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _FileCalls:
    """Request shapes of the file endpoints (shared by both clients)."""

    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/v1/sandboxes/{seg(sandbox_id)}/files"

    def list(self, path: str) -> Call:
        return Call("GET", self.base, params=file_params(path))

    def stat(self, path: str) -> Call:
        return Call("GET", f"{self.base}/stat", params=file_params(path))

    def read(self, path: str, offset: int | None, length: int | None) -> Call:
        extra = {
            "offset": None if offset is None else str(int(offset)),
            "len": None if length is None else str(int(length)),
        }
        return Call("GET", f"{self.base}/content", params=file_params(path, **extra))

    def write(self, path: str, mode: int | str | None, append: bool) -> Call:
        return Call(
            "PUT",
            f"{self.base}/content",
            params=file_params(path, mode=mode_param(mode), append="true" if append else None),
        )

    def mkdir(self, path: str, parents: bool) -> Call:
        return Call("POST", f"{self.base}/mkdir", json={"path": check_path(path), "parents": bool(parents)})

    def remove(self, path: str, recursive: bool) -> Call:
        return Call("DELETE", self.base, params=file_params(path, recursive="true" if recursive else None))

    def rename(self, src: str, dst: str) -> Call:
        return Call("POST", f"{self.base}/rename", json={"from": check_path(src), "to": check_path(dst)})

    def tar(self, method: str, path: str) -> Call:
        return Call(method, f"{self.base}/tar", params=file_params(path))


class Files:
    """``sb.files``: the files of a running sandbox. Paths are absolute paths inside the sandbox.

    Errors: :class:`NotFound` (no such file or directory), :class:`PermissionDenied` (``EACCES``,
    ``EPERM``, a read-only filesystem), :class:`Conflict` (already exists; the sandbox is not
    running), :class:`InvalidArgument` (not a directory, directory not empty, ...).
    """

    def __init__(self, client: Shoal, sandbox_id: str) -> None:
        self._c = client
        self._calls = _FileCalls(sandbox_id)

    def list(self, path: str) -> builtins.list[FileInfo]:
        """A directory's entries, sorted by name."""
        return [FileInfo._from_json(e) for e in self._c._send(self._calls.list(path))["entries"]]

    def stat(self, path: str) -> FileInfo:
        """One file, directory or symlink (a final symlink is not followed)."""
        return FileInfo._from_json(self._c._send(self._calls.stat(path)))

    def exists(self, path: str) -> bool:
        """Whether something exists at ``path``."""
        try:
            self.stat(path)
            return True
        except NotFound:
            return False

    def read(self, path: str, *, offset: int | None = None, length: int | None = None) -> bytes:
        """A file's contents (or the part ``offset`` / ``length`` select)."""
        return self.read_stream(path, offset=offset, length=length).read()

    def read_text(self, path: str, encoding: str = "utf-8", errors: str = "strict") -> str:
        """A file's contents as text."""
        return self.read(path).decode(encoding, errors)

    def read_stream(
        self, path: str, *, offset: int | None = None, length: int | None = None, chunk_size: int | None = None
    ) -> ByteStream:
        """A file's contents, read as you iterate (``for chunk in sb.files.read_stream(p)``).
        Errors before the first byte (no such file, ...) are raised here."""
        call = self._calls.read(path, offset, length)
        return ByteStream(self._c, call, self._c._open(call, accept="*/*"), chunk_size)

    def write(self, path: str, data: UploadData, *, mode: int | str | None = None, append: bool = False) -> int:
        """Writes a file from bytes, text (UTF-8), a binary file object or an iterable of bytes
        (streamed). The bytes go to a temporary file that replaces ``path`` at the end, so readers
        never see half a file; with ``append=True`` they are appended. ``mode``: ``0o755`` or
        ``"755"`` (without it a replaced file keeps its mode, a new one gets 0644). The directory
        must exist. Returns the number of bytes written."""
        call = self._calls.write(path, mode, append)
        return int(self._c._send_upload(call, _sync_content(data), "application/octet-stream")["bytes"])

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        """Creates a directory; with ``parents=True`` like ``mkdir -p`` (no error if it exists)."""
        self._c._send(self._calls.mkdir(path, parents))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Removes a file, a symlink (not followed) or a directory (non-empty: ``recursive=True``)."""
        self._c._send(self._calls.remove(path, recursive))

    def rename(self, src: str, dst: str) -> None:
        """Renames (moves) ``src`` to ``dst`` within one filesystem."""
        self._c._send(self._calls.rename(src, dst))

    def download_tar(self, path: str, *, chunk_size: int | None = None) -> ByteStream:
        """A directory as an uncompressed tar archive (entries relative to it), streamed."""
        call = self._calls.tar("GET", path)
        return ByteStream(self._c, call, self._c._open(call, accept="*/*"), chunk_size)

    def upload_tar(self, path: str, data: UploadData) -> int:
        """Extracts a tar archive into the directory ``path`` (created if missing). Returns the tar bytes read."""
        call = self._calls.tar("PUT", path)
        return int(self._c._send_upload(call, _sync_content(data), "application/x-tar")["bytes"])


class AsyncFiles:
    """``sb.files`` of an :class:`AsyncSandbox`: the same calls as :class:`Files`, awaited."""

    def __init__(self, client: AsyncShoal, sandbox_id: str) -> None:
        self._c = client
        self._calls = _FileCalls(sandbox_id)

    async def list(self, path: str) -> builtins.list[FileInfo]:
        """A directory's entries, sorted by name."""
        return [FileInfo._from_json(e) for e in (await self._c._send(self._calls.list(path)))["entries"]]

    async def stat(self, path: str) -> FileInfo:
        """One file, directory or symlink (a final symlink is not followed)."""
        return FileInfo._from_json(await self._c._send(self._calls.stat(path)))

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
            return True
        except NotFound:
            return False

    async def read(self, path: str, *, offset: int | None = None, length: int | None = None) -> bytes:
        """A file's contents (or the part ``offset`` / ``length`` select)."""
        return await (await self.read_stream(path, offset=offset, length=length)).read()

    async def read_text(self, path: str, encoding: str = "utf-8", errors: str = "strict") -> str:
        return (await self.read(path)).decode(encoding, errors)

    async def read_stream(
        self, path: str, *, offset: int | None = None, length: int | None = None, chunk_size: int | None = None
    ) -> AsyncByteStream:
        """A file's contents, read as you iterate (``async for chunk in await sb.files.read_stream(p)``)."""
        call = self._calls.read(path, offset, length)
        return AsyncByteStream(self._c, call, await self._c._open(call, accept="*/*"), chunk_size)

    async def write(
        self, path: str, data: AsyncUploadData, *, mode: int | str | None = None, append: bool = False
    ) -> int:
        """Writes a file (streamed); see :meth:`Files.write`. Also takes an async iterable of bytes."""
        call = self._calls.write(path, mode, append)
        return int((await self._c._send_upload(call, _async_content(data), "application/octet-stream"))["bytes"])

    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        await self._c._send(self._calls.mkdir(path, parents))

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        await self._c._send(self._calls.remove(path, recursive))

    async def rename(self, src: str, dst: str) -> None:
        await self._c._send(self._calls.rename(src, dst))

    async def download_tar(self, path: str, *, chunk_size: int | None = None) -> AsyncByteStream:
        call = self._calls.tar("GET", path)
        return AsyncByteStream(self._c, call, await self._c._open(call, accept="*/*"), chunk_size)

    async def upload_tar(self, path: str, data: AsyncUploadData) -> int:
        call = self._calls.tar("PUT", path)
        return int((await self._c._send_upload(call, _async_content(data), "application/x-tar"))["bytes"])
