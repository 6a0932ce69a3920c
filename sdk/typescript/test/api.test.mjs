// Every method once against a real `shoal up` (started by test/run.sh in a network namespace;
// SHOAL_URL and SHOAL_API_KEY point at it). Uses busybox:1, which starts fast.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { AuthError, ConflictError, NotFoundError, Sandbox, ShoalClient, ShoalError, ValidationError } from "../dist/index.js";

const client = new ShoalClient();
const SHAPE = "s-1vcpu-256mb";

describe("against a real Shoal", () => {
  /** @type {Sandbox} */
  let sb;
  let netA;
  let netB;

  test("health, shapes, images", async () => {
    const h = await client.health();
    assert.equal(h.status, "ok");
    assert.match(h.version, /^\d+\.\d+\.\d+/);
    const shapes = await client.shapes();
    const def = shapes.find((s) => s.name === "s-1vcpu-1gb");
    assert.deepEqual(Object.keys(def).sort(), ["memory_mb", "name", "pids_limit", "vcpus"]);
    assert.equal(def.memory_mb, 1024);
    const refs = (await client.images()).map((i) => i.reference);
    assert.ok(refs.includes("busybox:1") && refs.includes("devbox:1"), refs.join(", "));
  });

  test("a wrong key is an AuthError (401)", async () => {
    const bad = new ShoalClient({ apiKey: "not-the-key" });
    await assert.rejects(bad.listSandboxes(), (e) => e instanceof AuthError && e.status === 401 && e.code === "unauthorized");
  });

  test("networks: create, get, list, members; bad input", async () => {
    netA = await client.networks.create({ name: "ts-net-a", cidr: "10.91.0.0/24" });
    assert.match(netA.id, /^net-/);
    assert.equal(netA.cidr, "10.91.0.0/24");
    assert.deepEqual(netA.members, []);
    netB = await client.networks.create({ name: "ts-net-b" });
    assert.match(netB.cidr, /^\d+\.\d+\.\d+\.\d+\/\d+$/, "a block from the pool");

    assert.equal((await client.networks.get("ts-net-a")).id, netA.id, "by name");
    assert.equal((await client.networks.get(netA.id)).name, "ts-net-a", "by id");
    const names = (await client.networks.list()).map((n) => n.name);
    assert.ok(names.includes("ts-net-a") && names.includes("ts-net-b"), names.join(", "));
    assert.deepEqual(await client.networks.members("ts-net-a"), []);

    await assert.rejects(client.networks.create({ name: "ts-net-a" }), (e) => e instanceof ConflictError && e.status === 409 && e.code === "conflict" && /already exists/.test(e.message));
    await assert.rejects(client.networks.create({ name: "Bad_Name" }), (e) => e instanceof ValidationError && e.status === 422 && e.code === "invalid_argument");
    await assert.rejects(client.networks.get("ts-no-such-net"), (e) => e instanceof NotFoundError && e.status === 404 && e.code === "not_found");
  });

  test("createSandbox: a running Sandbox with the API's fields", async () => {
    sb = await client.createSandbox({ name: "ts-sb1", shape: SHAPE, rootfs: "busybox:1", networks: [{ name: "ts-net-a" }], env: { GREETING: "hello" } });
    assert.ok(sb instanceof Sandbox);
    assert.match(sb.id, /^sbx-/);
    assert.equal(sb.name, "ts-sb1");
    assert.equal(sb.state, "running");
    assert.equal(sb.shape, SHAPE);
    assert.equal(sb.rootfs, "busybox:1");
    assert.deepEqual(sb.env, { GREETING: "hello" });
    assert.equal(sb.networks.length, 1);
    assert.equal(sb.networks[0].ifname, "eth0");
    assert.equal(sb.networks[0].network_id, netA.id);
    assert.equal(sb.ipOn("ts-net-a"), "10.91.0.2");
    assert.equal(typeof sb.created_at, "string");
  });

  test("createSandbox: bad input is refused with the right error", async () => {
    await assert.rejects(client.createSandbox({ name: "ts-sb1", shape: SHAPE, rootfs: "busybox:1" }), (e) => e instanceof ConflictError && e.status === 409 && /ts-sb1/.test(e.message));
    await assert.rejects(client.createSandbox({ shape: "s-64vcpu-1tb", rootfs: "busybox:1" }), (e) => {
      assert.ok(e instanceof ValidationError, e.name);
      assert.equal(e.status, 422);
      assert.equal(e.code, "invalid_argument");
      assert.match(e.message, /unknown shape `s-64vcpu-1tb`.*s-1vcpu-1gb/);
      return true;
    });
    await assert.rejects(client.createSandbox({ rootfs: "nosuchimage:9" }), (e) => e instanceof ValidationError && e.status === 422);
    // A network named in the body that does not exist makes the body invalid (422, not 404).
    await assert.rejects(client.createSandbox({ rootfs: "busybox:1", shape: SHAPE, networks: [{ name: "ts-no-such-net" }] }), (e) => {
      assert.ok(e instanceof ValidationError, e.name);
      assert.equal(e.status, 422);
      assert.match(e.message, /ts-no-such-net/);
      return true;
    });
    // (other test files may run at the same time: look only at this file's sandboxes)
    const ours = (await client.listSandboxes()).filter((s) => s.name.startsWith("ts-") || s.networks.some((n) => n.network_name.startsWith("ts-")));
    assert.deepEqual(ours.map((s) => s.name), ["ts-sb1"], "refused creates left nothing behind");
  });

  test("createSandbox with an idempotencyKey: retries get the same sandbox, only one exists", async () => {
    const key = `ts-job-${Math.random().toString(36).slice(2)}`;
    // Marked by an env var: other test files create sandboxes at the same time.
    const req = { rootfs: "busybox:1", shape: SHAPE, env: { IDEM: key }, timeout_secs: 600, on_timeout: "stop" };
    const ours = async () => (await client.listSandboxes()).filter((s) => s.env.IDEM === key);
    // Two at once (the second waits for the first's create), then one more afterwards.
    const [a, b] = await Promise.all([client.createSandbox(req, { idempotencyKey: key }), client.createSandbox(req, { idempotencyKey: key })]);
    const c = await client.createSandbox({ ...req }, { idempotencyKey: key });
    try {
      assert.match(a.id, /^sbx-/);
      assert.deepEqual([b.id, c.id], [a.id, a.id]);
      assert.equal(c.state, "running");
      assert.equal(c.on_timeout, "stop");
      assert.ok(c.expires_at && Date.parse(c.expires_at) > Date.now() + 500 * 1000, c.expires_at);
      assert.deepEqual((await ours()).map((s) => s.id), [a.id], "one sandbox");
      // The same key for a different request is refused, and makes nothing.
      await assert.rejects(client.createSandbox({ ...req, env: { IDEM: key, OTHER: "1" } }, { idempotencyKey: key }), (e) => {
        assert.ok(e instanceof ValidationError, e.name);
        assert.equal(e.status, 422);
        assert.match(e.message, /Idempotency-Key/);
        return true;
      });
      // Without a key of their own, two calls are two creates (each with its own automatic key).
      const d = await client.createSandbox(req);
      assert.notEqual(d.id, a.id);
      await d.delete();
      assert.deepEqual((await ours()).map((s) => s.id), [a.id]);
    } finally {
      await a.delete();
    }
    assert.deepEqual(await ours(), []);
  });

  test("runCommand: stdout, stderr, exit code, env, cwd, stdin, timeout", async () => {
    const r = await sb.runCommand("sh", ["-c", "echo out; echo err >&2; exit 3"]);
    assert.equal(r.exitCode, 3);
    assert.equal(r.stdout, "out\n");
    assert.equal(r.stderr, "err\n");
    assert.equal(r.timedOut, false);
    assert.equal(typeof r.durationMs, "number");
    assert.deepEqual(Object.keys(r).sort(), ["durationMs", "exitCode", "stderr", "stdout", "timedOut"]);

    const e = await sb.runCommand("sh", ["-c", 'echo "$GREETING $WHO"; pwd'], { env: { WHO: "world" }, cwd: "/tmp" });
    assert.equal(e.stdout, "hello world\n/tmp\n");
    assert.equal((await sb.runCommand("cat", [], { stdin: "piped in" })).stdout, "piped in");
    assert.equal((await sb.runCommand("hostname")).exitCode, 0, "args are optional");

    const t = await sb.runCommand("sleep", ["30"], { timeoutMs: 300 });
    assert.equal(t.timedOut, true);
    assert.equal(t.exitCode, 137, "killed by SIGKILL");
    assert.ok(t.durationMs < 10_000);

    await assert.rejects(sb.runCommand("", []), ValidationError);
  });

  test("getSandbox, listSandboxes, refresh", async () => {
    const byName = await client.getSandbox("ts-sb1");
    const byId = await client.getSandbox(sb.id);
    assert.deepEqual(byName.toJSON(), byId.toJSON());
    assert.equal(byName.id, sb.id);
    const list = await client.listSandboxes();
    assert.ok(list.every((s) => s instanceof Sandbox));
    assert.ok(list.some((s) => s.id === sb.id));
    sb.state = "stale";
    assert.equal(await sb.refresh(), sb, "refresh returns the same object");
    assert.equal(sb.state, "running");
    assert.deepEqual(JSON.parse(JSON.stringify(sb)), byId.toJSON());
  });

  test("stop, start, setTimeout, logs, metrics", async () => {
    await sb.runCommand("sh", ["-c", "echo kept > /root/file"]);
    assert.equal((await sb.stop()).state, "stopped");
    await assert.rejects(sb.runCommand("true"), (e) => e instanceof ConflictError && /stopped/.test(e.message));
    assert.equal((await sb.start()).state, "running");
    assert.equal((await sb.runCommand("cat", ["/root/file"])).stdout.trim(), "kept");
    await sb.setTimeout(3600);
    assert.ok(sb.expires_at && Date.parse(sb.expires_at) > Date.now() + 3000 * 1000, sb.expires_at);
    assert.match(await sb.logs(), /listening on/);
    const m = await sb.metrics();
    assert.ok(m.memory_bytes > 0 && m.pids >= 1, JSON.stringify(m));
    assert.equal(m.interfaces[0].ifname, "eth0");
  });

  test("members; a network with members cannot be deleted without force (409)", async () => {
    const [m] = await client.networks.members("ts-net-a");
    assert.equal(m.sandbox_id, sb.id);
    assert.equal(m.sandbox_name, "ts-sb1");
    assert.equal(m.ip, "10.91.0.2");
    assert.equal(m.dns_name, "ts-sb1.ts-net-a.internal");
    assert.equal(m.state, "running");
    assert.deepEqual((await client.networks.get(netA.id)).members, [m]);
    await assert.rejects(client.networks.delete("ts-net-a"), (e) => e instanceof ConflictError && e.status === 409 && /member/.test(e.message));
  });

  test("attachNetwork / detachNetwork on a running sandbox", async () => {
    const same = await sb.attachNetwork("ts-net-b");
    assert.equal(same, sb, "updates the sandbox in place");
    assert.equal(sb.networks.length, 2);
    const nic = sb.networks.find((n) => n.network_name === "ts-net-b");
    assert.equal(nic.ifname, "eth1");
    // The interface is really there, with its address.
    const addr = await sb.runCommand("ip", ["-o", "-4", "addr", "show", "dev", "eth1"]);
    assert.equal(addr.exitCode, 0, addr.stderr);
    assert.ok(addr.stdout.includes(` ${nic.ip}/`), addr.stdout);
    assert.ok((await client.networks.members("ts-net-b")).some((m) => m.sandbox_id === sb.id));

    await assert.rejects(sb.attachNetwork({ id: netB.id }), (e) => e instanceof ConflictError && /already on network/.test(e.message));

    await sb.detachNetwork("ts-net-b");
    assert.deepEqual(sb.networks.map((n) => n.network_name), ["ts-net-a"]);
    const gone = await sb.runCommand("ip", ["link", "show", "eth1"]);
    assert.notEqual(gone.exitCode, 0, "eth1 is gone");
    await assert.rejects(sb.detachNetwork({ name: "ts-net-b" }), (e) => e instanceof NotFoundError && /not on network/.test(e.message));

    // By id, both ways.
    await sb.attachNetwork({ id: netB.id });
    assert.equal(sb.networks.length, 2);
    await sb.detachNetwork(netB.id);
    assert.equal(sb.networks.length, 1);
  });

  test("networks.delete with force detaches the members", async () => {
    await client.networks.delete("ts-net-a", { force: true });
    await assert.rejects(client.networks.get("ts-net-a"), NotFoundError);
    await sb.refresh();
    assert.deepEqual(sb.networks, []);
    assert.equal(sb.state, "running", "the sandbox keeps running");
  });

  test("delete; then everything about it is a NotFoundError (404)", async () => {
    await sb.delete();
    const calls = [() => client.getSandbox("ts-sb1"), () => client.getSandbox(sb.id), () => sb.refresh(), () => sb.runCommand("true"), () => sb.delete(), () => client.deleteSandbox("ts-sb1")];
    for (const call of calls) {
      await assert.rejects(call, (e) => e instanceof NotFoundError && e instanceof ShoalError && e.status === 404 && e.code === "not_found");
    }
    await assert.rejects(client.getSandbox("ts-sb1"), /sandbox `ts-sb1` not found/);
  });

  test("createSandbox without a name; client.deleteSandbox", async () => {
    const s = await client.createSandbox({ rootfs: "busybox:1", shape: SHAPE });
    assert.match(s.name, /^sandbox-/, "a generated name");
    assert.deepEqual(s.networks, []);
    await client.deleteSandbox(s.id);
    await assert.rejects(client.getSandbox(s.id), NotFoundError);
    await client.networks.delete("ts-net-b");
    await assert.rejects(client.networks.members("ts-net-b"), NotFoundError);
  });
});
