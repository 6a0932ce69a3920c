// The example of DESIGN.md, run as written: two sandboxes on one private network talk over
// it; a third sandbox on another network cannot reach them.
//
// Needs a running Shoal with the image devbox:1 (Debian 12 with python3 and curl):
//   shoal up &  shoal image build devbox:1
// Run it (from sdk/typescript; URL and key come from SHOAL_URL/SHOAL_API_KEY or the client
// config file that `shoal up` wrote):
//   npm run build && npm run build:examples && node build/examples/two-sandboxes.js
//
// It cleans up what it created, also when it fails; a failed check throws (exit code 1).

import { ShoalClient } from "@shoal/sdk";
import type { Network, Sandbox } from "@shoal/sdk";

// Serves /health (a file that says "ok") on port 8080, in the background, and waits until it
// answers, so that the next command finds it up.
const HEALTH_SERVER = [
  "mkdir -p /srv && echo ok > /srv/health && cd /srv",
  "nohup python3 -m http.server 8080 >/dev/null 2>&1 &",
  "for i in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:8080/health && exit 0; sleep 0.1; done; exit 1",
].join("\n");

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

const client = new ShoalClient(); // URL + API key from env or ~/.config/shoal
const sandboxes: Sandbox[] = [];
const networks: Network[] = [];
try {
  // ---- DESIGN.md, "What a user does" ----
  const net = await client.networks.create({ name: "team-eval" });
  networks.push(net);
  const api = await client.createSandbox({ shape: "s-1vcpu-1gb", rootfs: "devbox:1", networks: [{ id: net.id }] });
  sandboxes.push(api);
  const worker = await client.createSandbox({ shape: "s-1vcpu-1gb", rootfs: "devbox:1", networks: [{ id: net.id }] });
  sandboxes.push(worker);
  const served = await worker.runCommand("sh", ["-c", HEALTH_SERVER]);
  check(served.exitCode === 0, `worker serves /health on port 8080 (${served.stderr.trim() || "started"})`);
  const { members } = await client.networks.get(net.id);
  const workerIp = members?.find((m) => m.sandbox_id === worker.id)?.ip;
  const health = await api.runCommand("curl", [`http://${workerIp}:8080/health`]);
  // ---- end of the DESIGN.md example ----

  console.log(`api ${api.name} (${api.ipOn(net.name)}) -> worker ${worker.name} (${workerIp}) on ${net.name} ${net.cidr}`);
  check(health.exitCode === 0 && health.stdout.trim() === "ok", `api reaches worker: curl says ${JSON.stringify(health.stdout.trim())}`);
  const status = await api.runCommand("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", `http://${workerIp}:8080/health`]);
  check(status.stdout === "200", `GET http://${workerIp}:8080/health -> ${status.stdout}`);

  // A sandbox on another network cannot reach the worker (default deny between networks).
  const other = await client.networks.create({ name: "other" });
  networks.push(other);
  const outsider = await client.createSandbox({ rootfs: "devbox:1", networks: [{ name: "other" }] });
  sandboxes.push(outsider);
  const probe = await outsider.runCommand("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", `http://${workerIp}:8080/health`]);
  check(probe.exitCode !== 0 && probe.stdout === "000", `outsider (${outsider.ipOn("other")}) cannot reach worker: curl exit ${probe.exitCode}, status ${probe.stdout}`);
} finally {
  for (const s of sandboxes.reverse()) await s.delete().catch((e: Error) => console.error(`deleting ${s.name}: ${e.message}`));
  for (const n of networks.reverse()) await client.networks.delete(n.id, { force: true }).catch((e: Error) => console.error(`deleting ${n.name}: ${e.message}`));
}
