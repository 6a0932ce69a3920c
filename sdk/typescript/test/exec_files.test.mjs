// Streaming exec, background processes and files against a real `shoal up` (test/run.sh).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { ConflictError, NotFoundError, PermissionDeniedError, ProcessHandle, ShoalClient, ShoalError, ValidationError } from "../dist/index.js";

const client = new ShoalClient();
const SHAPE = "s-1vcpu-256mb";
const text = (b) => new TextDecoder().decode(b);
const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function eventually(what, ms, check) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function collect(stream) {
  const parts = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

describe("exec, processes and files", () => {
  let sb;
  before(async () => {
    sb = await client.createSandbox({ name: `ts-exec-${process.pid}`, shape: SHAPE, rootfs: "busybox:1" });
  });
  after(async () => {
    await sb?.delete();
  });

  test("output streams as it is produced (iterator), in order, with timing", async () => {
    const t0 = Date.now();
    const p = await sb.exec("sh", ["-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three; exit 4"]);
    assert.ok(p instanceof ProcessHandle);
    assert.ok(Number.isInteger(p.pid) && p.pid > 0, String(p.pid));
    const seen = [];
    for await (const ev of p) {
      if (ev.type === "stdout" || ev.type === "stderr") seen.push({ type: ev.type, text: text(ev.data), at: Date.now() - t0 });
      if (ev.type === "exit") seen.push({ type: "exit", code: ev.exitCode, at: Date.now() - t0 });
    }
    assert.deepEqual(
      seen.map((s) => `${s.type}:${s.text ?? s.code}`),
      ["stdout:one\n", "stderr:two\n", "stdout:three\n", "exit:4"],
    );
    const [one, two, three, exit] = seen;
    assert.ok(one.at < 1500, `the first line came after ${one.at} ms`);
    assert.ok(two.at - one.at >= 700, `two came ${two.at - one.at} ms after one`);
    assert.ok(three.at - one.at >= 1500, `three came ${three.at - one.at} ms after one`);
    assert.ok(exit.at - one.at >= 1500, "the first line arrived well before the end");
    const r = await p.done;
    assert.deepEqual(Object.keys(r).sort(), ["durationMs", "exitCode", "signal", "timedOut"]);
    assert.equal(r.exitCode, 4);
    assert.equal(r.signal, null);
    assert.equal(r.timedOut, false);
    assert.ok(r.durationMs >= 1900, String(r.durationMs));
  });

  test("callbacks get the output as it comes; done has the exit", async () => {
    const out = [];
    const err = [];
    const t0 = Date.now();
    const p = await sb.exec("sh", ["-c", 'echo "$A $B"; pwd; echo e1 >&2; sleep 1; echo late'], {
      env: { A: "x", B: "y" },
      cwd: "/tmp",
      onStdout: (b) => out.push({ s: text(b), at: Date.now() - t0 }),
      onStderr: (b) => err.push(text(b)),
    });
    const r = await p.done;
    assert.equal(r.exitCode, 0);
    assert.equal(out.map((o) => o.s).join(""), "x y\n/tmp\nlate\n");
    assert.equal(err.join(""), "e1\n");
    const late = out.find((o) => o.s.includes("late"));
    const first = out[0];
    assert.ok(late.at - first.at >= 700, `late came ${late.at - first.at} ms after the first line`);
  });

  test("callbacks and the iterator together see every event", async () => {
    const cb = [];
    const events = [];
    const p = await sb.exec("sh", ["-c", "for i in 1 2 3 4 5; do echo $i; done"], { onStdout: (b) => cb.push(text(b)), onEvent: (ev) => events.push(ev.type) });
    const it = [];
    for await (const ev of p) if (ev.type === "stdout") it.push(text(ev.data));
    assert.equal(it.join(""), "1\n2\n3\n4\n5\n");
    assert.equal(cb.join(""), "1\n2\n3\n4\n5\n");
    assert.equal(events[0], "started");
    assert.equal(events.at(-1), "exit");
    assert.equal((await p.done).exitCode, 0);
    // Iterating once more after the end: nothing, at once.
    for await (const _ of p) assert.fail("no events left");
  });

  test("without callbacks, events wait for a late iterator; reading `done` alone drains a large output", async () => {
    const p = await sb.exec("sh", ["-c", "for i in $(seq 1 200); do echo line$i; done"]);
    await sleep(1000); // more than 64 events' worth: the stream pauses and waits
    let out = "";
    let started = false;
    for await (const ev of p) {
      if (ev.type === "started") started = true;
      if (ev.type === "stdout") out += text(ev.data);
    }
    assert.ok(started, "the iterator sees `started` too");
    assert.equal(out.split("\n").filter(Boolean).length, 200);
    assert.ok(out.startsWith("line1\n") && out.endsWith("line200\n"));

    const q = await sb.exec("sh", ["-c", "head -c 5000000 /dev/zero"]);
    const r = await q.done; // nobody iterates: `done` consumes the events
    assert.equal(r.exitCode, 0);
  });

  test("binary output arrives intact; binary stdin goes in intact", async () => {
    await sb.runCommand("sh", ["-c", "head -c 300000 /dev/urandom > /tmp/bin; printf '\\000\\377\\200\\n' >> /tmp/bin"]);
    const inside = (await sb.runCommand("sh", ["-c", "sha256sum /tmp/bin | cut -d' ' -f1"])).stdout.trim();
    const parts = [];
    const p = await sb.exec("cat", ["/tmp/bin"], { onStdout: (b) => parts.push(Buffer.from(b)) });
    assert.equal((await p.done).exitCode, 0);
    const got = Buffer.concat(parts);
    assert.equal(got.length, 300004);
    assert.equal(sha256(got), inside);
    assert.deepEqual([...got.subarray(-4)], [0, 0xff, 0x80, 0x0a]);

    const input = new Uint8Array(256).map((_, i) => i);
    const q = await sb.exec("sh", ["-c", "cat > /tmp/in; wc -c < /tmp/in; sha256sum /tmp/in | cut -d' ' -f1"], { stdin: input });
    let out = "";
    for await (const ev of q) if (ev.type === "stdout") out += text(ev.data);
    assert.equal(out.split(/\s+/).filter(Boolean).join(" "), `256 ${sha256(input)}`);
  });

  test("stdin written later, then closed", async () => {
    const t0 = Date.now();
    const out = [];
    const p = await sb.exec("sh", ["-c", "while read l; do echo got:$l; done; echo eof"], { keepStdinOpen: true, onStdout: (b) => out.push({ s: text(b), at: Date.now() - t0 }) });
    await sleep(1500);
    assert.deepEqual(out, [], "nothing before the input");
    await p.writeStdin("late\n");
    await p.writeStdin(new TextEncoder().encode("bytes\n"));
    await eventually("the echo", 5000, () => out.map((o) => o.s).join("").includes("got:bytes"));
    await p.closeStdin();
    const r = await p.done;
    assert.equal(r.exitCode, 0);
    assert.equal(out.map((o) => o.s).join(""), "got:late\ngot:bytes\neof\n");
    assert.ok(out[0].at >= 1400, `the answer came after ${out[0].at} ms`);
  });

  test("kill: SIGKILL by default; the stream ends with 137", async () => {
    const p = await sb.exec("sleep", ["300"]);
    await p.kill();
    const r = await p.done;
    assert.equal(r.exitCode, 137);
    assert.equal(r.signal, 9);
  });

  test("SIGINT ends a `trap 'exit 130' INT` loop", async () => {
    const p = await sb.exec("sh", ["-c", "trap 'exit 130' INT; echo ready; while true; do sleep 0.1; done"]);
    for await (const ev of p) {
      if (ev.type === "stdout" && text(ev.data).includes("ready")) break;
    }
    await p.kill("SIGINT");
    const r = await p.done;
    assert.equal(r.exitCode, 130);
    assert.equal(r.timedOut, false);
  });

  test("timeoutMs kills the process group", async () => {
    const p = await sb.exec("sleep", ["300"], { timeoutMs: 500 });
    const r = await p.done;
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, 137);
  });

  test("pty: tty names the terminal; resize reaches it", async () => {
    let out = "";
    const p = await sb.exec("tty", [], { pty: true });
    for await (const ev of p) {
      assert.notEqual(ev.type, "stdout", "a pty's output comes as `pty` events");
      if (ev.type === "pty") out += text(ev.data);
    }
    assert.match(out, /^\/dev\/pts\/\d+\r?\n$/);
    assert.equal((await p.done).exitCode, 0);

    let shown = "";
    const q = await sb.exec("sh", ["-c", "stty size; read x; stty size"], { pty: { rows: 24, cols: 80 }, keepStdinOpen: true, onStdout: (b) => (shown += text(b)) });
    await eventually("the first size", 5000, () => shown.includes("24 80"));
    await q.resize(40, 100);
    await q.writeStdin("\n");
    assert.equal((await q.done).exitCode, 0);
    assert.match(shown.replace(/\r/g, ""), /24 80\n[\s\S]*40 100\n$/);
  });

  test("background: keeps running without a client, listed, reattached from the start, killed", async () => {
    const { pid } = await sb.startBackground("sh", ["-c", "echo first; echo second >&2; while true; do sleep 0.2; done"]);
    assert.ok(Number.isInteger(pid) && pid > 0);
    await sleep(500);
    const procs = await sb.processes();
    const me = procs.find((p) => p.pid === pid);
    assert.ok(me, JSON.stringify(procs));
    assert.equal(me.running, true);
    assert.equal(me.cmd, "sh");
    assert.ok(me.output_bytes >= 13, JSON.stringify(me));

    // Reattach from the start: the earlier output is replayed, with offsets.
    const h = await sb.attach(pid, { fromStart: true });
    assert.equal(h.pid, pid);
    let replay = "";
    for await (const ev of h) {
      if (ev.type === "stdout" || ev.type === "stderr") {
        assert.equal(typeof ev.offset, "number");
        replay += text(ev.data);
      }
      if (replay.includes("first") && replay.includes("second")) break;
    }
    h.close();
    await assert.rejects(h.done, (e) => e instanceof ShoalError && e.code === "closed");
    assert.equal((await sb.processes()).find((p) => p.pid === pid)?.running, true, "detaching left it running");

    // A second attach watches it die.
    const w = await sb.attach(pid);
    await sb.killProcess(pid);
    const r = await w.done;
    assert.equal(r.exitCode, 137);
    await eventually("the process to leave the list", 5000, async () => !(await sb.processes()).some((p) => p.pid === pid));
    await assert.rejects(sb.attach(pid), NotFoundError);
  });

  test("background with stdin by pid, and exec's own background flag", async () => {
    const { pid } = await sb.startBackground("sh", ["-c", "read l; echo got:$l"], { keepStdinOpen: true });
    await sb.writeStdin(pid, "hello\n", { close: true });
    const h = await sb.attach(pid, { fromStart: true });
    let out = "";
    for await (const ev of h) if (ev.type === "stdout") out += text(ev.data);
    assert.equal(out, "got:hello\n");
    assert.equal((await h.done).exitCode, 0);
    assert.equal((await sb.processes()).find((p) => p.pid === pid)?.exit_code, 0);
    await sb.killProcess(pid); // a finished one is just forgotten

    const bg = await sb.exec("sh", ["-c", "sleep 1; echo survived > /tmp/survived"], { background: true });
    bg.close(); // the connection goes, the process stays
    await eventually("the background process to finish", 10_000, async () => (await sb.runCommand("cat", ["/tmp/survived"])).stdout === "survived\n");
  });

  test("closing a foreground exec (AbortSignal) kills its process", async () => {
    const ac = new AbortController();
    const p = await sb.exec("sh", ["-c", "sleep 4242"], { signal: ac.signal });
    await sleep(300);
    ac.abort(new Error("enough"));
    await assert.rejects(p.done, /enough/);
    await eventually("sleep 4242 to be gone", 10_000, async () => (await sb.runCommand("sh", ["-c", "ps | grep -c '[s]leep 4242' || true"])).stdout.trim() === "0");
  });

  test("a command that does not exist: exit 127 and its message; startBackground rejects", async () => {
    let err = "";
    const p = await sb.exec("no-such-command", [], { onStderr: (b) => (err += text(b)) });
    assert.equal(p.pid, undefined);
    assert.equal((await p.done).exitCode, 127);
    assert.match(err, /not found/);
    await assert.rejects(p.writeStdin("x"), (e) => e instanceof ShoalError && e.code === "not_started");
    await assert.rejects(sb.startBackground("no-such-command"), (e) => e instanceof ShoalError && e.code === "not_started" && /not found/.test(e.message));
    await assert.rejects(sb.exec("sh", [], { cwd: "/no/such/dir" }), ValidationError);
    await assert.rejects(sb.exec(""), ValidationError);
    await assert.rejects(sb.killProcess(999999), NotFoundError);
    await assert.rejects(sb.killProcess(999999, "SIGNOPE"), ValidationError);
  });

  test("files: a 20 MB binary round trip (stream up, stream and whole down) with sha256", async () => {
    const data = randomBytes(20 * 1024 * 1024);
    const sum = sha256(data);
    // Up as a stream of 1 MiB chunks.
    let at = 0;
    const up = new ReadableStream({
      pull(c) {
        if (at >= data.length) return c.close();
        c.enqueue(new Uint8Array(data.subarray(at, at + (1 << 20))));
        at += 1 << 20;
      },
    });
    assert.equal(await sb.files.write("/tmp/big", up), data.length);
    assert.equal((await sb.runCommand("sh", ["-c", "sha256sum /tmp/big | cut -d' ' -f1"])).stdout.trim(), sum);
    const st = await sb.files.stat("/tmp/big");
    assert.equal(st.size, data.length);
    assert.equal(st.kind, "file");
    // Down, whole and streamed.
    const whole = await sb.files.read("/tmp/big");
    assert.ok(whole instanceof Uint8Array);
    assert.equal(whole.length, data.length);
    assert.equal(sha256(whole), sum);
    const streamed = await collect(await sb.files.readStream("/tmp/big"));
    assert.equal(sha256(streamed), sum);
    // A range; bytes in one piece; an async iterable (a Node stream) up.
    assert.deepEqual(Buffer.from(await sb.files.read("/tmp/big", { offset: 5, length: 10 })), data.subarray(5, 15));
    assert.equal(await sb.files.write("/tmp/big2", data), data.length);
    assert.equal(sha256(await sb.files.read("/tmp/big2")), sum);
    async function* gen() {
      yield new TextEncoder().encode("one ");
      yield new TextEncoder().encode("two");
    }
    assert.equal(await sb.files.write("/tmp/gen", gen()), 7);
    assert.equal(await sb.files.readText("/tmp/gen"), "one two");
    await sb.files.remove("/tmp/big");
    await sb.files.remove("/tmp/big2");
  });

  test("files: write modes and append, list, stat, mkdir, rename, remove", async () => {
    await sb.files.mkdir("/srv/app/sub", { parents: true });
    await sb.files.mkdir("/srv/app/sub", { parents: true }); // like mkdir -p: no error
    await assert.rejects(sb.files.mkdir("/srv/app/sub"), ConflictError);
    assert.equal(await sb.files.write("/srv/app/run.sh", "#!/bin/sh\necho ran\n", { mode: 0o755 }), 19);
    assert.equal(await sb.files.write("/srv/app/notes", "a\n", { mode: "600" }), 2);
    await sb.files.write("/srv/app/notes", "b\n", { append: true });
    assert.equal(await sb.files.readText("/srv/app/notes"), "a\nb\n");
    assert.equal((await sb.runCommand("/srv/app/run.sh")).stdout, "ran\n");

    const entries = await sb.files.list("/srv/app");
    assert.deepEqual(entries.map((e) => [e.name, e.kind]), [["notes", "file"], ["run.sh", "file"], ["sub", "dir"]]);
    const run = entries.find((e) => e.name === "run.sh");
    assert.equal(run.mode, 0o755);
    assert.equal(run.size, 19);
    assert.ok(!Number.isNaN(Date.parse(run.modified_at)));
    assert.deepEqual(Object.keys(run).sort(), ["kind", "mode", "modified_at", "name", "size"]);
    assert.equal((await sb.files.stat("/srv/app/notes")).mode, 0o600);
    assert.equal((await sb.files.stat("/srv/app")).kind, "dir");

    await sb.files.rename("/srv/app/notes", "/srv/app/sub/notes2");
    assert.equal(await sb.files.exists("/srv/app/notes"), false);
    assert.equal(await sb.files.readText("/srv/app/sub/notes2"), "a\nb\n");
    await assert.rejects(sb.files.remove("/srv/app"), (e) => e instanceof ValidationError && e.status === 422);
    await sb.files.remove("/srv/app", { recursive: true });
    assert.equal(await sb.files.exists("/srv/app"), false);
  });

  test("files: a tree through tar, down and up", async () => {
    await sb.files.mkdir("/srv/tree/a/b", { parents: true });
    await sb.files.write("/srv/tree/top.txt", "top\n");
    await sb.files.write("/srv/tree/a/b/deep.bin", new Uint8Array([0, 1, 2, 255]));
    await sb.files.write("/srv/tree/a/x.sh", "echo x\n", { mode: 0o700 });
    const tar = await collect(await sb.files.downloadTar("/srv/tree"));
    assert.equal(tar.length % 512, 0, "a tar is whole 512-byte blocks");
    const names = [];
    for (let off = 0; off + 512 <= tar.length; ) {
      const name = tar.subarray(off, off + 100).toString("latin1").replace(/\0.*$/s, "");
      if (name === "") break;
      const size = parseInt(tar.subarray(off + 124, off + 136).toString("latin1").replace(/\0.*$/s, "").trim() || "0", 8);
      names.push(name);
      off += 512 + Math.ceil(size / 512) * 512;
    }
    assert.deepEqual(names.map((n) => n.replace(/\/$/, "")).sort(), ["a", "a/b", "a/b/deep.bin", "a/x.sh", "top.txt"]);

    // Up again, into a new directory, from bytes and from a stream.
    assert.equal(await sb.files.uploadTar("/srv/copy", tar), tar.length);
    assert.equal(await sb.files.readText("/srv/copy/top.txt"), "top\n");
    assert.deepEqual([...(await sb.files.read("/srv/copy/a/b/deep.bin"))], [0, 1, 2, 255]);
    assert.equal((await sb.files.stat("/srv/copy/a/x.sh")).mode, 0o700);
    assert.equal(await sb.files.uploadTar("/srv/copy2", await sb.files.downloadTar("/srv/tree")), tar.length);
    assert.deepEqual((await sb.files.list("/srv/copy2")).map((e) => e.name), ["a", "top.txt"]);
    await sb.files.remove("/srv", { recursive: true });
  });

  test("files: errors", async () => {
    await assert.rejects(sb.files.stat("/no/such"), (e) => e instanceof NotFoundError && e.status === 404 && e.code === "not_found" && e.message.includes("/no/such"));
    await assert.rejects(sb.files.read("/no/such"), (e) => e instanceof NotFoundError && e.status === 404);
    await assert.rejects(sb.files.readStream("/no/such"), NotFoundError);
    await assert.rejects(sb.files.list("/no/such"), NotFoundError);
    await assert.rejects(sb.files.write("/no/such/dir/f", "x"), NotFoundError);
    await assert.rejects(sb.files.remove("/no/such"), NotFoundError);
    await assert.rejects(sb.files.downloadTar("/no/such"), NotFoundError);
    await assert.rejects(sb.files.write("/sys/kernel/shoal-test", "x"), (e) => e instanceof PermissionDeniedError && e.status === 403 && e.code === "permission_denied");
    await assert.rejects(sb.files.read("/tmp"), (e) => e instanceof ValidationError && e.status === 422);
    await assert.rejects(sb.files.stat("relative/path"), ValidationError);
  });

  test("a stopped sandbox: exec, processes and files are 409", async () => {
    const s = await client.createSandbox({ shape: SHAPE, rootfs: "busybox:1" });
    try {
      await s.stop();
      const calls = [() => s.exec("true"), () => s.startBackground("true"), () => s.processes(), () => s.attach(1), () => s.files.list("/"), () => s.files.read("/etc/hostname"), () => s.files.write("/tmp/x", "x"), () => s.files.stat("/")];
      for (const call of calls) {
        await assert.rejects(call, (e) => e instanceof ConflictError && e.status === 409 && /stopped/.test(e.message));
      }
    } finally {
      await s.delete();
    }
    await assert.rejects(s.exec("true"), NotFoundError);
  });
});
