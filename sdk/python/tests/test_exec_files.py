"""Streaming exec, background processes and files with the sync client, against a real Shoal (run.sh)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shoal import (
    ByteStream,
    Conflict,
    FileInfo,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProcessEvent,
    ProcessHandle,
    ProcessResult,
    Sandbox,
    Shoal,
    ShoalError,
)

pytestmark = pytest.mark.server
Names = Callable[[str], str]


@pytest.fixture(scope="module")
def sb(client: Shoal) -> Iterator[Sandbox]:
    with client.sandboxes.create(rootfs="busybox:1", shape="s-1vcpu-256mb", name=f"py-exec-{os.getpid()}") as s:
        yield s


def eventually(what: str, seconds: float, check: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_output_streams_in_order_as_it_is_produced(sb: Sandbox) -> None:
    t0 = time.monotonic()
    with sb.exec("sh", "-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three; exit 4") as p:
        assert isinstance(p, ProcessHandle) and isinstance(p.pid, int) and p.pid > 0
        seen: list[tuple[str, str, float]] = []
        for ev in p:
            assert isinstance(ev, ProcessEvent)
            if ev.type in ("stdout", "stderr"):
                seen.append((ev.type, ev.text, time.monotonic() - t0))
            elif ev.type == "exit":
                seen.append(("exit", str(ev.exit_code), time.monotonic() - t0))
        assert [(t, s) for t, s, _ in seen] == [
            ("stdout", "one\n"),
            ("stderr", "two\n"),
            ("stdout", "three\n"),
            ("exit", "4"),
        ]
        (_, _, one), (_, _, two), (_, _, three), (_, _, end) = seen
        assert one < 1.5, f"the first line came after {one:.2f} s"
        assert two - one >= 0.7 and three - one >= 1.5 and end - one >= 1.5, seen
        r = p.wait()
    assert r == ProcessResult(exit_code=4, signal=None, timed_out=False, duration_ms=r.duration_ms)
    assert r.duration_ms >= 1900 and not r.ok and p.result == r


def test_callbacks_during_wait(sb: Sandbox) -> None:
    out: list[tuple[bytes, float]] = []
    err: list[bytes] = []
    events: list[str] = []
    t0 = time.monotonic()
    p = sb.exec(
        "sh",
        "-c",
        'echo "$A $B"; pwd; echo e1 >&2; sleep 1; echo late',
        env={"A": "x", "B": 2},
        cwd="/tmp",
        on_stdout=lambda b: out.append((b, time.monotonic() - t0)),
        on_stderr=err.append,
        on_event=lambda ev: events.append(ev.type),
    )
    r = p.wait()
    assert r.ok and r.exit_code == 0
    assert b"".join(b for b, _ in out) == b"x 2\n/tmp\nlate\n"
    assert b"".join(err) == b"e1\n"
    late = next(t for b, t in out if b"late" in b)
    assert late - out[0][1] >= 0.7
    assert events[0] == "started" and events[-1] == "exit"
    assert p.wait() == r, "wait() again gives the same result"
    assert list(p) == [], "nothing left to iterate"


def test_callbacks_and_iteration_together(sb: Sandbox) -> None:
    cb: list[bytes] = []
    with sb.exec("sh", "-c", "for i in 1 2 3 4 5; do echo $i; done", on_stdout=cb.append) as p:
        it = b"".join(ev.data for ev in p if ev.type == "stdout")
    assert it == b"".join(cb) == b"1\n2\n3\n4\n5\n"


def test_binary_output_and_stdin(sb: Sandbox) -> None:
    sb.run("sh", "-c", "head -c 300000 /dev/urandom > /tmp/bin; printf '\\000\\377\\200\\n' >> /tmp/bin", check=True)
    inside = sb.run("sh", "-c", "sha256sum /tmp/bin | cut -d' ' -f1").stdout.strip()
    parts: list[bytes] = []
    assert sb.exec("cat", "/tmp/bin", on_stdout=parts.append).wait().ok
    data = b"".join(parts)
    assert len(data) == 300004 and data.endswith(b"\x00\xff\x80\n")
    assert hashlib.sha256(data).hexdigest() == inside

    raw = bytes(range(256))
    with sb.exec("sh", "-c", "cat > /tmp/in; wc -c < /tmp/in; sha256sum /tmp/in | cut -d' ' -f1", stdin=raw) as p:
        out = b"".join(ev.data for ev in p if ev.type == "stdout").decode()
    assert out.split() == ["256", hashlib.sha256(raw).hexdigest()]


def test_stdin_written_later_then_closed(sb: Sandbox) -> None:
    t0 = time.monotonic()
    out: list[tuple[str, float]] = []
    with sb.exec(
        "sh",
        "-c",
        "while read l; do echo got:$l; done; echo eof",
        keep_stdin_open=True,
        on_stdout=lambda b: out.append((b.decode(), time.monotonic() - t0)),
    ) as p:
        time.sleep(1.5)
        p.write_stdin("late\n")
        p.write_stdin(b"bytes\n")
        p.close_stdin()
        r = p.wait()
    assert r.ok
    assert "".join(s for s, _ in out) == "got:late\ngot:bytes\neof\n"
    assert out[0][1] >= 1.4


def test_kill_and_signals(sb: Sandbox) -> None:
    with sb.exec("sleep", "300") as p:
        p.kill()
        r = p.wait()
    assert (r.exit_code, r.signal) == (137, 9)

    with sb.exec("sh", "-c", "trap 'exit 130' INT; echo ready; while true; do sleep 0.1; done") as p:
        for ev in p:
            if ev.type == "stdout" and "ready" in ev.text:
                break
        p.kill("SIGINT")
        r = p.wait()
    assert r.exit_code == 130 and not r.timed_out

    r = sb.exec("sleep", "300", timeout=0.5).wait()
    assert r.timed_out and r.exit_code == 137


def test_kill_from_another_thread_while_iterating(sb: Sandbox) -> None:
    with sb.exec("sh", "-c", "while true; do echo tick; sleep 0.2; done") as p:
        threading.Timer(1.0, p.kill).start()
        ticks = sum(1 for ev in p if ev.type == "stdout")
        assert ticks >= 2
        assert p.wait().exit_code == 137


def test_pty(sb: Sandbox) -> None:
    with sb.exec("tty", pty=True) as p:
        events = list(p)
    assert not [e for e in events if e.type == "stdout"], "a pty's output comes as `pty` events"
    out = b"".join(e.data for e in events if e.type == "pty").decode()
    assert out.startswith("/dev/pts/") and out.rstrip("\r\n")[len("/dev/pts/") :].isdigit(), out
    assert p.wait().ok

    shown: list[bytes] = []
    with sb.exec(
        "sh", "-c", "stty size; read x; stty size", pty=(24, 80), keep_stdin_open=True, on_stdout=shown.append
    ) as p:
        for _ in p:
            if b"24 80" in b"".join(shown):
                break
        p.resize(40, 100)
        p.write_stdin("\n")
        assert p.wait().ok
    text = b"".join(shown).decode().replace("\r", "")
    assert text.startswith("24 80\n") and text.endswith("40 100\n"), text


def test_background_reattach_and_kill(sb: Sandbox) -> None:
    pid = sb.start_background("sh", "-c", "echo first; echo second >&2; while true; do sleep 0.2; done")
    assert isinstance(pid, int) and pid > 0
    time.sleep(0.5)
    [me] = [p for p in sb.processes() if p.pid == pid]
    assert me.running and me.cmd == "sh" and me.args[0] == "-c" and me.output_bytes >= 13 and not me.pty
    assert me.exit_code is None and me.started_at

    with sb.attach(pid, from_start=True) as h:
        assert h.pid == pid
        replay = ""
        for ev in h:
            if ev.type in ("stdout", "stderr"):
                assert isinstance(ev.offset, int)
                replay += ev.text
            if "first" in replay and "second" in replay:
                break
    with pytest.raises(ShoalError) as closed:
        h.wait()
    assert closed.value.code == "closed"
    assert next(p for p in sb.processes() if p.pid == pid).running, "detaching left it running"

    watcher = sb.attach(pid)
    sb.kill_process(pid)
    assert watcher.wait().exit_code == 137
    eventually("the process to leave the list", 5, lambda: all(p.pid != pid for p in sb.processes()))
    with pytest.raises(NotFound):
        sb.attach(pid)


def test_background_stdin_by_pid_and_exec_background(sb: Sandbox) -> None:
    pid = sb.start_background("sh", "-c", "read l; echo got:$l", keep_stdin_open=True)
    sb.write_stdin(pid, "hello\n", close=True)
    with sb.attach(pid, from_start=True) as h:
        out = b"".join(ev.data for ev in h if ev.type == "stdout")
        assert h.wait().ok
    assert out == b"got:hello\n"
    assert next(p for p in sb.processes() if p.pid == pid).exit_code == 0
    sb.kill_process(pid)

    p = sb.exec("sh", "-c", "sleep 1; echo survived > /tmp/survived", background=True)
    p.close()  # the connection goes, the process stays
    eventually("the background process to finish", 10, lambda: sb.run("cat", "/tmp/survived").stdout == "survived\n")


def test_closing_a_foreground_exec_kills_it(sb: Sandbox) -> None:
    with sb.exec("sh", "-c", "sleep 4242") as p:
        time.sleep(0.3)
    with pytest.raises(ShoalError):
        p.wait()
    eventually(
        "sleep 4242 to be gone",
        10,
        lambda: sb.run("sh", "-c", "ps | grep -c '[s]leep 4242' || true").stdout.strip() == "0",
    )


def test_command_not_found_and_bad_input(sb: Sandbox) -> None:
    err: list[bytes] = []
    p = sb.exec("no-such-command", on_stderr=err.append)
    assert p.pid is None
    assert p.wait().exit_code == 127
    assert b"not found" in b"".join(err)
    with pytest.raises(ShoalError) as ns:
        p.write_stdin("x")
    assert ns.value.code == "not_started"
    with pytest.raises(ShoalError) as bg:
        sb.start_background("no-such-command")
    assert bg.value.code == "not_started" and "not found" in bg.value.message
    with pytest.raises(InvalidArgument):
        sb.exec("sh", cwd="/no/such/dir")
    with pytest.raises(ValueError):
        sb.exec("")
    with pytest.raises(NotFound):
        sb.kill_process(999999)
    with pytest.raises(InvalidArgument):
        sb.kill_process(999999, "SIGNOPE")


def test_files_20mb_round_trip(sb: Sandbox, tmp_path: os.PathLike[str]) -> None:
    data = os.urandom(20 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    # Up from a file object, streamed in chunks.
    src = os.path.join(tmp_path, "big")
    with open(src, "wb") as f:
        f.write(data)
    with open(src, "rb") as f:
        assert sb.files.write("/tmp/big", f) == len(data)
    assert sb.run("sh", "-c", "sha256sum /tmp/big | cut -d' ' -f1").stdout.strip() == digest
    st = sb.files.stat("/tmp/big")
    assert (st.kind, st.size, st.name) == ("file", len(data), "big")
    # Down: whole, and streamed in chunks.
    assert hashlib.sha256(sb.files.read("/tmp/big")).hexdigest() == digest
    h = hashlib.sha256()
    n = 0
    with sb.files.read_stream("/tmp/big", chunk_size=1 << 16) as stream:
        assert isinstance(stream, ByteStream)
        for chunk in stream:
            h.update(chunk)
            n += 1
    assert h.hexdigest() == digest and n > 1
    # A range; bytes in one piece; a generator.
    assert sb.files.read("/tmp/big", offset=5, length=10) == data[5:15]
    assert sb.files.write("/tmp/big2", data) == len(data)
    assert hashlib.sha256(sb.files.read("/tmp/big2")).hexdigest() == digest
    assert sb.files.write("/tmp/gen", (part for part in [b"one ", b"two"])) == 7
    assert sb.files.read_text("/tmp/gen") == "one two"
    sb.files.remove("/tmp/big")
    sb.files.remove("/tmp/big2")


def test_files_list_stat_mkdir_rename_remove(sb: Sandbox) -> None:
    f = sb.files
    f.mkdir("/srv/app/sub", parents=True)
    f.mkdir("/srv/app/sub", parents=True)  # like mkdir -p
    with pytest.raises(Conflict):
        f.mkdir("/srv/app/sub")
    assert f.write("/srv/app/run.sh", "#!/bin/sh\necho ran\n", mode=0o755) == 19
    assert f.write("/srv/app/notes", "a\n", mode="600") == 2
    f.write("/srv/app/notes", b"b\n", append=True)
    assert f.read("/srv/app/notes") == b"a\nb\n"
    assert sb.run("/srv/app/run.sh").stdout == "ran\n"

    entries = f.list("/srv/app")
    assert all(isinstance(e, FileInfo) for e in entries)
    assert [(e.name, e.kind) for e in entries] == [("notes", "file"), ("run.sh", "file"), ("sub", "dir")]
    run = entries[1]
    assert run.mode == 0o755 and run.size == 19 and run.modified_at and run.is_file and not run.is_dir
    assert f.stat("/srv/app/notes").mode == 0o600
    assert f.stat("/srv/app").is_dir

    f.rename("/srv/app/notes", "/srv/app/sub/notes2")
    assert not f.exists("/srv/app/notes") and f.exists("/srv/app/sub/notes2")
    assert f.read_text("/srv/app/sub/notes2") == "a\nb\n"
    with pytest.raises(InvalidArgument) as not_empty:
        f.remove("/srv/app")
    assert not_empty.value.status == 422
    f.remove("/srv/app", recursive=True)
    assert not f.exists("/srv/app")


def test_files_tar_round_trip(sb: Sandbox) -> None:
    f = sb.files
    f.mkdir("/srv/tree/a/b", parents=True)
    f.write("/srv/tree/top.txt", "top\n")
    f.write("/srv/tree/a/b/deep.bin", bytes([0, 1, 2, 255]))
    f.write("/srv/tree/a/x.sh", "echo x\n", mode=0o700)
    with f.download_tar("/srv/tree") as stream:
        tar = stream.read()
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        names = sorted(m.name.rstrip("/") for m in t.getmembers())
        member = t.extractfile("top.txt") or t.extractfile("./top.txt")
        assert member is not None and member.read() == b"top\n"
    assert names == ["a", "a/b", "a/b/deep.bin", "a/x.sh", "top.txt"]

    # Up into a new directory: from bytes, and from a tar made here, streamed from a file object.
    assert f.upload_tar("/srv/copy", tar) == len(tar)
    assert f.read("/srv/copy/a/b/deep.bin") == bytes([0, 1, 2, 255])
    assert f.stat("/srv/copy/a/x.sh").mode == 0o700
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("made/here.txt")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    buf.seek(0)
    f.upload_tar("/srv/copy2", buf)
    assert f.read_text("/srv/copy2/made/here.txt") == "hello"
    f.remove("/srv", recursive=True)


def test_files_errors(sb: Sandbox) -> None:
    f = sb.files
    with pytest.raises(NotFound) as nf:
        f.stat("/no/such")
    assert (nf.value.status, nf.value.code) == (404, "not_found") and "/no/such" in nf.value.message
    for call in (
        lambda: f.read("/no/such"),
        lambda: f.read_stream("/no/such"),
        lambda: f.list("/no/such"),
        lambda: f.write("/no/such/dir/f", "x"),
        lambda: f.remove("/no/such"),
        lambda: f.download_tar("/no/such"),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(PermissionDenied) as pd:
        f.write("/sys/kernel/shoal-test", "x")
    assert (pd.value.status, pd.value.code) == (403, "permission_denied")
    with pytest.raises(InvalidArgument):
        f.read("/tmp")
    with pytest.raises(ValueError):
        f.stat("relative/path")


def test_stopped_sandbox_is_409(client: Shoal) -> None:
    with client.sandboxes.create(rootfs="busybox:1", shape="s-1vcpu-256mb") as s:
        s.stop()
        for call in (
            lambda: s.exec("true"),
            lambda: s.start_background("true"),
            lambda: s.processes(),
            lambda: s.attach(1),
            lambda: s.files.list("/"),
            lambda: s.files.read("/etc/hostname"),
            lambda: s.files.write("/tmp/x", "x"),
            lambda: s.files.stat("/"),
        ):
            with pytest.raises(Conflict) as c:
                call()
            assert c.value.status == 409 and "stopped" in c.value.message
