// Runs examples/typescript/two-sandboxes.ts (the DESIGN.md example, compiled to
// build/examples/ by `npm run build:examples`) as a user would, against the real Shoal.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { promisify } from "node:util";

import { ShoalClient } from "../dist/index.js";

const script = fileURLToPath(new URL("../build/examples/two-sandboxes.js", import.meta.url));

test("the DESIGN.md example runs as written (devbox:1)", async () => {
  let out;
  try {
    out = await promisify(execFile)(process.execPath, [script], { timeout: 110_000 });
  } catch (e) {
    assert.fail(`the example failed (exit ${e.code}):\nstdout:\n${e.stdout}\nstderr:\n${e.stderr}`);
  }
  const { stdout, stderr } = out;
  assert.equal(stderr, "");
  assert.match(stdout, /^ok: api reaches worker: curl says "ok"$/m);
  assert.match(stdout, /^ok: GET http:\/\/[\d.]+:8080\/health -> 200$/m);
  assert.match(stdout, /^ok: outsider \([\d.]+\) cannot reach worker: curl exit \d+, status 000$/m);

  // It cleaned up after itself.
  const client = new ShoalClient();
  const left = (await client.networks.list()).map((n) => n.name);
  assert.ok(!left.includes("team-eval") && !left.includes("other"), left.join(", "));
});
