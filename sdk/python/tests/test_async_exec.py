"""Streaming exec, background processes and files with the async client, against a real Shoal."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import time
from collections.abc import AsyncIterator

import pytest

from shoal import (
    AsyncByteStream,
    AsyncProcessHandle,
    AsyncSandbox,
    AsyncShoal,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ShoalError,
)

pytestmark = [pytest.mark.server, pytest.mark.asyncio]


async def test_async_exec_streams_callbacks_stdin_signals_pty() -> None:
    async with AsyncShoal() as client, client.sandboxes.create(rootfs="busybox:1", shape="s-1vcpu-256mb") as sb:
        # Output as it is produced, in order, through `async for`.
        t0 = time.monotonic()
        seen: list[tuple[str, str, float]] = []
        async with sb.exec("sh", "-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three; exit 4") as p:
            assert isinstance(p, AsyncProcessHandle) and isinstance(p.pid, int)
            async for ev in p:
                if ev.type in ("stdout", "stderr"):
                    seen.append((ev.type, ev.text, time.monotonic() - t0))
            r = await p.wait()
        assert [(t, s) for t, s, _ in seen] == [("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n")]
        assert seen[0][2] < 1.5 and seen[2][2] - seen[0][2] >= 1.5, seen
        assert (r.exit_code, r.signal, r.timed_out) == (4, None, False)

        # Callbacks, plain and coroutine functions, during wait().
        out: list[bytes] = []
        err: list[bytes] = []

        async def on_err(b: bytes) -> None:
            await asyncio.sleep(0)
            err.append(b)

        p = await sb.exec("sh", "-c", "echo $A; echo e >&2", env={"A": "x"}, on_stdout=out.append, on_stderr=on_err)
        assert (await p.wait()).ok
        assert (b"".join(out), b"".join(err)) == (b"x\n", b"e\n")

        # Binary stdin, and stdin written later then closed.
        raw = bytes(range(256))
        p = await sb.exec("sh", "-c", "cat | sha256sum | cut -d' ' -f1", stdin=raw)
        got = b"".join([ev.data async for ev in p if ev.type == "stdout"])
        assert got.decode().strip() == hashlib.sha256(raw).hexdigest()
        lines: list[tuple[bytes, float]] = []
        t0 = time.monotonic()
        async with sb.exec(
            "sh",
            "-c",
            "while read l; do echo got:$l; done",
            keep_stdin_open=True,
            on_stdout=lambda b: lines.append((b, time.monotonic() - t0)),
        ) as p:
            await asyncio.sleep(1.5)
            await p.write_stdin("late\n")
            await p.close_stdin()
            assert (await p.wait()).ok
        assert b"".join(b for b, _ in lines) == b"got:late\n" and lines[0][1] >= 1.4

        # kill(): SIGKILL; kill("SIGINT") ends a trap loop with 130; timeout.
        async with sb.exec("sleep", "300") as p:
            await p.kill()
            assert (await p.wait()).exit_code == 137
        async with sb.exec("sh", "-c", "trap 'exit 130' INT; echo ready; while true; do sleep 0.1; done") as p:
            async for ev in p:
                if ev.type == "stdout" and "ready" in ev.text:
                    break
            await p.kill("SIGINT")
            assert (await p.wait()).exit_code == 130
        assert (await (await sb.exec("sleep", "300", timeout=0.5)).wait()).timed_out

        # A pty.
        async with sb.exec("tty", pty=True) as p:
            text = b"".join([ev.data async for ev in p if ev.type == "pty"]).decode()
        assert text.startswith("/dev/pts/"), text


async def test_async_background_and_attach() -> None:
    async with AsyncShoal() as client, client.sandboxes.create(rootfs="busybox:1", shape="s-1vcpu-256mb") as sb:
        assert isinstance(sb, AsyncSandbox)
        pid = await sb.start_background("sh", "-c", "echo first; while true; do sleep 0.2; done")
        await asyncio.sleep(0.3)
        [me] = [p for p in await sb.processes() if p.pid == pid]
        assert me.running
        async with sb.attach(pid, from_start=True) as h:
            async for ev in h:
                if ev.type == "stdout" and "first" in ev.text:
                    assert ev.offset == 0
                    break
        assert next(p for p in await sb.processes() if p.pid == pid).running
        watcher = await sb.attach(pid)
        await sb.kill_process(pid)
        assert (await watcher.wait()).exit_code == 137
        with pytest.raises(NotFound):
            await sb.attach(pid)
        with pytest.raises(ShoalError) as ns:
            await sb.start_background("no-such-command")
        assert ns.value.code == "not_started"
        # attach(net) still plugs into a network.
        net = await client.networks.create(f"py-anet-{os.getpid()}")
        try:
            assert await sb.attach(net) is sb and sb.networks[0].network_id == net.id
        finally:
            await client.networks.delete(net, force=True)


async def test_async_files() -> None:
    async with AsyncShoal() as client, client.sandboxes.create(rootfs="busybox:1", shape="s-1vcpu-256mb") as sb:
        f = sb.files
        data = os.urandom(20 * 1024 * 1024)
        digest = hashlib.sha256(data).hexdigest()

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 1 << 20):
                yield data[i : i + (1 << 20)]

        assert await f.write("/tmp/big", chunks()) == len(data)
        assert (await sb.run("sh", "-c", "sha256sum /tmp/big | cut -d' ' -f1")).stdout.strip() == digest
        assert hashlib.sha256(await f.read("/tmp/big")).hexdigest() == digest
        h = hashlib.sha256()
        stream = await f.read_stream("/tmp/big")
        assert isinstance(stream, AsyncByteStream)
        async for chunk in stream:
            h.update(chunk)
        assert h.hexdigest() == digest
        assert (await f.stat("/tmp/big")).size == len(data)
        await f.remove("/tmp/big")

        await f.mkdir("/srv/t/sub", parents=True)
        await f.write("/srv/t/a.txt", "a\n", mode=0o640)
        await f.write("/srv/t/a.txt", "b\n", append=True)
        assert await f.read_text("/srv/t/a.txt") == "a\nb\n"
        assert [(e.name, e.kind, e.mode) for e in await f.list("/srv/t")] == [
            ("a.txt", "file", 0o640),
            ("sub", "dir", 0o755),
        ]
        await f.rename("/srv/t/a.txt", "/srv/t/sub/b.txt")
        assert not await f.exists("/srv/t/a.txt")
        tar = await (await f.download_tar("/srv/t")).read()
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            assert sorted(m.name.rstrip("/") for m in t.getmembers()) == ["sub", "sub/b.txt"]
        assert await f.upload_tar("/srv/u", tar) == len(tar)
        assert await f.read("/srv/u/sub/b.txt") == b"a\nb\n"
        with pytest.raises(InvalidArgument):
            await f.remove("/srv/u")
        await f.remove("/srv", recursive=True)

        with pytest.raises(NotFound):
            await f.read("/no/such")
        with pytest.raises(NotFound):
            await f.stat("/no/such")
        with pytest.raises(PermissionDenied):
            await f.write("/sys/kernel/shoal-test", b"x")
        with pytest.raises(Conflict):
            await f.mkdir("/tmp")

        await sb.stop()
        with pytest.raises(Conflict):
            await f.list("/")
        with pytest.raises(Conflict):
            await sb.exec("true")
