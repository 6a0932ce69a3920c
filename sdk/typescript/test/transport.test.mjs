// HTTP behaviour against a scripted local server on 127.0.0.1 (loopback only): auth header,
// JSON bodies, error mapping, retries on 503 only, timeouts, connection errors.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import {
  AuthError,
  ConflictError,
  ConnectionError,
  NotFoundError,
  ShoalClient,
  ShoalError,
  TimeoutError,
  UnavailableError,
  ValidationError,
} from "../dist/index.js";

/** Answers from a queue of handlers; records every request. */
function fakeApi() {
  const requests = [];
  let script = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const h = script.shift() ?? ((res) => reply(res, 500, { error: { code: "internal", message: "unscripted" } }));
      h(res, req);
    });
  });
  return {
    server,
    requests,
    set(...handlers) {
      script = handlers;
      requests.length = 0;
    },
  };
}

function reply(res, status, body, headers = {}) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(text);
}
const err = (status, code, message) => (res) => reply(res, status, { error: { code, message } });

describe("transport", () => {
  const api = fakeApi();
  let client;
  let url;

  before(async () => {
    await new Promise((r) => api.server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${api.server.address().port}`;
    client = new ShoalClient({ url, apiKey: "secret", retryBaseMs: 1, timeoutMs: 5000 });
  });
  after(() => new Promise((r) => api.server.close(r)));

  test("sends the key, JSON bodies, and parses answers", async () => {
    api.set((res) => reply(res, 201, { id: "net-1", name: "a", cidr: "10.0.0.0/24", created_at: "t", members: [] }));
    const n = await client.networks.create({ name: "a" });
    assert.equal(n.id, "net-1");
    const [r] = api.requests;
    assert.equal(r.method, "POST");
    assert.equal(r.url, "/v1/networks");
    assert.equal(r.headers.authorization, "Bearer secret");
    assert.equal(r.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(r.body), { name: "a" });
  });

  test("names are escaped into one path segment; force is a query flag", async () => {
    api.set((res) => res.writeHead(204).end(), (res) => res.writeHead(204).end());
    await client.networks.delete("a b/c", { force: true });
    await client.networks.delete("plain");
    assert.deepEqual(api.requests.map((r) => r.url), ["/v1/networks/a%20b%2Fc?force=true", "/v1/networks/plain"]);
    await assert.rejects(client.getSandbox(""), ValidationError);
    await assert.rejects(client.networks.get(""), ValidationError);
    await assert.rejects(client.getSandbox(".."), ValidationError);
  });

  test("error answers become typed errors with status, code and message", async () => {
    const cases = [
      [400, "invalid_argument", ValidationError],
      [401, "unauthorized", AuthError],
      [404, "not_found", NotFoundError],
      [409, "conflict", ConflictError],
      [405, "method_not_allowed", ShoalError],
      [422, "invalid_argument", ValidationError],
      [500, "internal", ShoalError],
    ];
    for (const [status, code, cls] of cases) {
      api.set(err(status, code, `what went wrong ${status}`));
      await assert.rejects(client.getSandbox("x"), (e) => {
        assert.ok(e instanceof cls, `${status} -> ${e.name}`);
        assert.ok(e instanceof ShoalError);
        assert.equal(e.status, status);
        assert.equal(e.code, code);
        assert.equal(e.message, `what went wrong ${status}`);
        assert.equal(e.request, "GET /v1/sandboxes/x");
        return true;
      });
      assert.equal(api.requests.length, 1, `${status} is not retried`);
    }
  });

  test("an error answer that is not the API's format keeps its text", async () => {
    api.set((res) => reply(res, 502, "<html>bad gateway</html>", { "content-type": "text/html" }));
    await assert.rejects(client.shapes(), (e) => e instanceof ShoalError && e.status === 502 && e.code === "unknown" && e.message.includes("bad gateway"));
  });

  test("503 is retried with backoff, then succeeds", async () => {
    const busy = err(503, "unavailable", "busy");
    api.set(busy, busy, (res) => reply(res, 200, { shapes: [{ name: "s", vcpus: 1, memory_mb: 1, pids_limit: 1 }] }));
    const shapes = await client.shapes();
    assert.equal(shapes[0].name, "s");
    assert.equal(api.requests.length, 3);
    // POST bodies are re-sent intact.
    api.set(busy, (res) => reply(res, 201, { id: "net-2", name: "b", cidr: "c", created_at: "t", members: [] }));
    await client.networks.create({ name: "b" });
    assert.deepEqual(api.requests.map((r) => r.body), ['{"name":"b"}', '{"name":"b"}']);
  });

  test("createSandbox sends an Idempotency-Key: a new UUID per call, the same on each 503 retry", async () => {
    const busy = err(503, "unavailable", "busy");
    api.set(busy, busy, (res) => reply(res, 201, sbxBody()), (res) => reply(res, 201, sbxBody()));
    const sb = await client.createSandbox({ rootfs: "busybox:1" });
    assert.equal(sb.id, "sbx-1");
    await client.createSandbox({ rootfs: "busybox:1" });
    const keys = api.requests.map((r) => r.headers["idempotency-key"]);
    assert.equal(keys.length, 4);
    assert.match(keys[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(keys.slice(0, 3), [keys[0], keys[0], keys[0]], "the retries of one call reuse its key");
    assert.notEqual(keys[3], keys[0], "another call, another key");
    assert.deepEqual(api.requests.map((r) => r.body), Array(4).fill('{"rootfs":"busybox:1"}'));

    // Only creates carry one.
    api.set((res) => reply(res, 200, sbxBody()), (res) => reply(res, 201, { id: "net-1", name: "a", cidr: "c", created_at: "t", members: [] }));
    await client.getSandbox("n");
    await client.networks.create({ name: "a" });
    assert.deepEqual(api.requests.map((r) => r.headers["idempotency-key"]), [undefined, undefined]);
  });

  test("createSandbox sends the caller's idempotencyKey; a replay (200) is a Sandbox too; bad keys are refused here", async () => {
    const busy = err(503, "unavailable", "busy");
    api.set(busy, (res) => reply(res, 200, sbxBody()));
    const sb = await client.createSandbox({ rootfs: "busybox:1" }, { idempotencyKey: "job-42" });
    assert.equal(sb.id, "sbx-1");
    assert.deepEqual(api.requests.map((r) => r.headers["idempotency-key"]), ["job-42", "job-42"]);

    api.set();
    for (const bad of ["", "has space", "tab\t", "é", "k".repeat(256)]) {
      await assert.rejects(client.createSandbox({ rootfs: "busybox:1" }, { idempotencyKey: bad }), (e) => e instanceof ValidationError && e.status === 0 && /idempotencyKey/.test(e.message));
    }
    assert.equal(api.requests.length, 0, "nothing was sent");
    api.set((res) => reply(res, 201, sbxBody()));
    await client.createSandbox({ rootfs: "busybox:1" }, { idempotencyKey: "~".repeat(255) });
    assert.equal(api.requests[0].headers["idempotency-key"], "~".repeat(255));
  });

  test("503 after all retries is an UnavailableError; Retry-After is honoured", async () => {
    const busy = (res) => reply(res, 503, { error: { code: "unavailable", message: "busy" } }, { "retry-after": "0" });
    api.set(busy, busy, busy, busy, busy);
    await assert.rejects(client.images(), (e) => e instanceof UnavailableError && e.status === 503 && e.code === "unavailable");
    assert.equal(api.requests.length, 4, "1 try + 3 retries");
    const once = new ShoalClient({ url, apiKey: "secret", retries: 0 });
    api.set(busy, busy);
    await assert.rejects(once.images(), UnavailableError);
    assert.equal(api.requests.length, 1);
  });

  test("no answer within timeoutMs is a TimeoutError (and is not retried)", async () => {
    const slow = new ShoalClient({ url, apiKey: "secret", timeoutMs: 200 });
    api.set((res) => setTimeout(() => reply(res, 200, { images: [] }), 1500));
    const t0 = Date.now();
    await assert.rejects(slow.images(), (e) => e instanceof TimeoutError && e.code === "timeout" && e.status === 0);
    assert.ok(Date.now() - t0 < 1200, "gave up at the timeout");
    assert.equal(api.requests.length, 1);
  });

  test("runCommand maps the exec answer and stretches the timeout to the command's", async () => {
    const sbx = { id: "sbx-1", name: "n", shape: "s", rootfs: "r", state: "running", runtime: "container", networks: [], env: {}, created_at: "t" };
    const slow = new ShoalClient({ url, apiKey: "secret", timeoutMs: 100 });
    api.set(
      (res) => reply(res, 200, sbx),
      (res) => setTimeout(() => reply(res, 200, { exit_code: 3, stdout: "o", stderr: "e", duration_ms: 7, timed_out: false }), 300),
    );
    const sb = await slow.getSandbox("n");
    const r = await sb.runCommand("sh", ["-c", "x"], { cwd: "/", env: { A: "1" }, stdin: "in", timeoutMs: 1000 });
    assert.deepEqual(r, { exitCode: 3, stdout: "o", stderr: "e", durationMs: 7, timedOut: false });
    assert.equal(api.requests[1].url, "/v1/sandboxes/sbx-1/exec");
    assert.deepEqual(JSON.parse(api.requests[1].body), { cmd: "sh", args: ["-c", "x"], env: { A: "1" }, cwd: "/", stdin: "in", timeout_ms: 1000 });
    assert.deepEqual(JSON.parse(JSON.stringify(sb)), sbx, "JSON of a Sandbox is the API's JSON");
  });

  test("a caller's AbortSignal cancels, with the caller's reason", async () => {
    api.set(
      (res) => reply(res, 200, sbxBody()),
      (res) => setTimeout(() => reply(res, 200, { exit_code: 0, stdout: "", stderr: "", duration_ms: 1, timed_out: false }), 1000),
    );
    const sb = await client.getSandbox("n");
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stop")), 50);
    await assert.rejects(sb.runCommand("sleep", ["5"], { signal: ac.signal }), /stop/);
    await assert.rejects(sb.runCommand("true", [], { signal: ac.signal }), /stop/, "already aborted: rejects at once");
    assert.equal(api.requests.length, 2);
  });

  test("nobody listening is a ConnectionError that names the URL", async () => {
    const probe = createServer();
    await new Promise((r) => probe.listen(0, "127.0.0.1", r));
    const port = probe.address().port;
    await new Promise((r) => probe.close(r));
    const dead = new ShoalClient({ url: `http://127.0.0.1:${port}`, apiKey: "k" });
    await assert.rejects(dead.health(), (e) => {
      assert.ok(e instanceof ConnectionError, e.name);
      assert.equal(e.status, 0);
      assert.equal(e.code, "unreachable");
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(e.message, /ECONNREFUSED/);
      return true;
    });
  });
});

function sbxBody() {
  return { id: "sbx-1", name: "n", shape: "s", rootfs: "r", state: "running", runtime: "container", networks: [], env: {}, created_at: "t" };
}

