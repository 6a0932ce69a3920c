// Waits (up to 60 s) until the API at SHOAL_URL answers GET /v1/health with 200, or the
// `shoal up` process (pid in argv[2]) exits.
const url = process.env.SHOAL_URL;
const key = process.env.SHOAL_API_KEY;
const pid = Number(process.argv[2]);
const deadline = Date.now() + 60_000;
for (;;) {
  try {
    const r = await fetch(`${url}/v1/health`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(2000) });
    if (r.status === 200) break;
  } catch {
    // not listening yet
  }
  try {
    process.kill(pid, 0);
  } catch {
    console.error("wait-ready: shoal up exited before it answered");
    process.exit(1);
  }
  if (Date.now() > deadline) {
    console.error(`wait-ready: ${url} did not answer within 60 s`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 50));
}
