// The NDJSON event stream, streamed uploads and their errors, against a scripted local server on
// 127.0.0.1 (no Shoal needed).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import { ConflictError, ConnectionError, NotFoundError, ShoalClient, ShoalError, TimeoutError } from "../dist/index.js";

const SANDBOX = { id: "sbx-0123456789", name: "a", shape: "s-1vcpu-1gb", rootfs: "busybox:1", state: "running", runtime: "container", networks: [], env: {}, created_at: "2026-01-01T00:00:00Z" };
const b64 = (s) => Buffer.from(s).toString("base64");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("streams against a scripted server", () => {
  const requests = [];
  let handler;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const r = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(r);
      if (req.url === "/v1/sandboxes/a") return json(res, 200, SANDBOX);
      handler(req, res, r);
    });
  });
  let client;
  let sb;

  function json(res, status, body) {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  before(async () => {
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    client = new ShoalClient({ url: `http://127.0.0.1:${server.address().port}`, apiKey: "k", retryBaseMs: 1, timeoutMs: 2000 });
    sb = await client.getSandbox("a");
  });
  after(() => new Promise((r) => server.close(r)));

  test("exec: the request body; events split across chunks; unknown events skipped", async () => {
    requests.length = 0;
    handler = async (req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      const body = [
        { type: "started", pid: 42 },
        { type: "stdout", data: b64("hel") },
        { type: "future-event", x: 1 },
        { type: "stderr", data: b64("oops") },
        { type: "heartbeat" },
        { type: "error", code: "invalid_argument", message: "process 42 has no pty to resize" },
        { type: "stdout", data: b64("lo\n") },
        { type: "exit", exit_code: 3, signal: null, timed_out: false, duration_ms: 12 },
      ]
        .map((e) => JSON.stringify(e) + "\n")
        .join("");
      // Dribble it out in pieces that cut lines (and a UTF-8-free JSON) anywhere.
      for (let i = 0; i < body.length; i += 7) {
        res.write(body.slice(i, i + 7));
        await sleep(1);
      }
      res.end();
    };
    const p = await sb.exec("sh", ["-c", "x"], { env: { A: "1" }, cwd: "/tmp", stdin: new Uint8Array([0, 255]), keepStdinOpen: true, timeoutMs: 5000, pty: true });
    assert.equal(p.pid, 42);
    const types = [];
    let out = "";
    for await (const ev of p) {
      types.push(ev.type);
      if (ev.type === "stdout") out += Buffer.from(ev.data).toString();
    }
    assert.deepEqual(types, ["started", "stdout", "stderr", "heartbeat", "error", "stdout", "exit"]);
    assert.equal(out, "hello\n");
    assert.deepEqual(await p.done, { exitCode: 3, signal: null, timedOut: false, durationMs: 12 });
    const r = requests.find((x) => x.url === "/v1/sandboxes/sbx-0123456789/exec/stream");
    assert.equal(r.method, "POST");
    assert.equal(r.headers.authorization, "Bearer k");
    assert.deepEqual(JSON.parse(r.body), { cmd: "sh", args: ["-c", "x"], env: { A: "1" }, cwd: "/tmp", stdin_base64: "AP8=", keep_stdin_open: true, timeout_ms: 5000, pty: { rows: 24, cols: 80 } });
  });

  test("exec: an error answer before the stream is a normal error; 503 is retried", async () => {
    let n = 0;
    handler = (req, res) => {
      n++;
      if (n === 1) return json(res, 503, { error: { code: "unavailable", message: "busy" } });
      json(res, 409, { error: { code: "conflict", message: "sandbox `a` is stopped" } });
    };
    await assert.rejects(sb.exec("true"), (e) => e instanceof ConflictError && e.status === 409 && /stopped/.test(e.message));
    assert.equal(n, 2);
  });

  test("a stream that ends without `exit` rejects `done` (and the iterator)", async () => {
    handler = (req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end(JSON.stringify({ type: "started", pid: 7 }) + "\n" + JSON.stringify({ type: "error", code: "internal", message: "lost the sandbox agent: reset" }) + "\n");
    };
    const p = await sb.exec("true");
    await assert.rejects(async () => {
      for await (const _ of p);
    }, (e) => e instanceof ShoalError && e.code === "internal" && /lost the sandbox agent/.test(e.message));
    await assert.rejects(p.done, /lost the sandbox agent/);
  });

  test("a download that goes silent times out per read (timeoutMs); event streams wait at least 30 s", async () => {
    handler = (req, res) => {
      const events = req.url.includes("/exec/stream");
      res.writeHead(200, { "content-type": events ? "application/x-ndjson" : "application/octet-stream" });
      res.write(events ? JSON.stringify({ type: "started", pid: 7 }) + "\n" : "some");
      // then nothing, not even heartbeats
    };
    const quick = new ShoalClient({ url: client.url, apiKey: "k", timeoutMs: 300 });
    const s = await quick.getSandbox("a");
    const t0 = Date.now();
    await assert.rejects(s.files.read("/f"), (e) => e instanceof TimeoutError && e.code === "timeout");
    assert.ok(Date.now() - t0 < 5000);
    const p = await s.exec("sleep", ["100"]);
    const early = await Promise.race([p.done.then(() => "settled", () => "settled"), sleep(1500).then(() => "waiting")]);
    assert.equal(early, "waiting", "1.5 s of silence is not a timeout for an event stream");
    p.close();
  });

  test("controls by pid: stdin text and bytes, close, signal, kill, resize", async () => {
    requests.length = 0;
    handler = (req, res) => {
      res.writeHead(204);
      res.end();
    };
    await sb.writeStdin(5, "hi");
    await sb.writeStdin(5, new Uint8Array([1, 2]), { close: true });
    await sb.closeStdin(5);
    await sb.killProcess(5, "SIGINT");
    await sb.killProcess(5);
    await sb.resizeProcess(5, 40, 100);
    assert.deepEqual(
      requests.map((r) => `${r.method} ${r.url} ${r.body}`),
      [
        'POST /v1/sandboxes/sbx-0123456789/processes/5/stdin {"data":"hi"}',
        'POST /v1/sandboxes/sbx-0123456789/processes/5/stdin {"data_base64":"AQI=","close":true}',
        'POST /v1/sandboxes/sbx-0123456789/processes/5/stdin {"close":true}',
        'POST /v1/sandboxes/sbx-0123456789/processes/5/signal {"signal":"SIGINT"}',
        "DELETE /v1/sandboxes/sbx-0123456789/processes/5 ",
        'POST /v1/sandboxes/sbx-0123456789/processes/5/resize {"rows":40,"cols":100}',
      ],
    );
  });

  test("files: query strings, a streamed upload, errors", async () => {
    requests.length = 0;
    handler = (req, res, r) => {
      if (req.method === "PUT") return json(res, 200, { bytes: r.body.length });
      if (req.url.startsWith("/v1/sandboxes/sbx-0123456789/files/content")) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        return res.end("abc");
      }
      json(res, 404, { error: { code: "not_found", message: "no such file or directory: /x y" } });
    };
    assert.equal(await sb.files.write("/dir/a b&c", "hello", { mode: 0o755, append: true }), 5);
    const parts = ["x", "yz"].map((s) => new TextEncoder().encode(s));
    assert.equal(await sb.files.uploadTar("/t", new ReadableStream({ pull: (c) => (parts.length ? c.enqueue(parts.shift()) : c.close()) })), 3);
    assert.equal(Buffer.from(await sb.files.read("/f", { offset: 1, length: 2 })).toString(), "abc");
    await assert.rejects(sb.files.stat("/x y"), (e) => e instanceof NotFoundError && e.message === "no such file or directory: /x y");
    assert.deepEqual(
      requests.map((r) => `${r.method} ${r.url} ${r.headers["content-type"] ?? ""}`),
      [
        "PUT /v1/sandboxes/sbx-0123456789/files/content?path=%2Fdir%2Fa+b%26c&mode=755&append=true application/octet-stream",
        "PUT /v1/sandboxes/sbx-0123456789/files/tar?path=%2Ft application/x-tar",
        "GET /v1/sandboxes/sbx-0123456789/files/content?path=%2Ff&offset=1&len=2 ",
        "GET /v1/sandboxes/sbx-0123456789/files/stat?path=%2Fx+y ",
      ],
    );
    assert.equal(requests[1].body.toString(), "xyz");
  });

  test("a connection that breaks mid-stream: ConnectionError", async () => {
    handler = (req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(JSON.stringify({ type: "started", pid: 9 }) + "\n");
      setTimeout(() => res.socket.destroy(), 50);
    };
    const p = await sb.exec("sleep", ["100"]);
    await assert.rejects(p.done, (e) => e instanceof ConnectionError && e.status === 0);
    const dead = new ShoalClient({ url: "http://127.0.0.1:9", apiKey: "k" });
    await assert.rejects(dead.getSandbox("a"), ConnectionError);
  });
});
