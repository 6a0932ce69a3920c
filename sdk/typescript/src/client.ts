import { resolveConfig } from "./config.js";
import { Sandbox } from "./sandbox.js";
import { ValidationError } from "./errors.js";
import { Transport, seg } from "./transport.js";
import type { Health, Image, Member, Network, NetworkCreate, SandboxCreate, SandboxData, Shape } from "./types.js";

export interface ShoalClientOptions {
  /** API base URL; else `SHOAL_URL`, else the client config file, else `http://127.0.0.1:7070`. */
  url?: string;
  /** API key; else `SHOAL_API_KEY`, else the client config file. */
  apiKey?: string;
  /**
   * Timeout of each HTTP attempt in ms (default 120 000). Creating a sandbox answers only when it
   * runs, so keep this above your slowest create. `runCommand` waits at least the command's own
   * timeout plus 30 s.
   */
  timeoutMs?: number;
  /** How often a `503 Service Unavailable` answer is retried (default 3; 0 disables). */
  retries?: number;
  /** First backoff delay in ms before a retry; doubles each time, with jitter (default 250). */
  retryBaseMs?: number;
  /** A `fetch` implementation (default: the platform's `globalThis.fetch`). */
  fetch?: typeof fetch;
}

export interface CreateSandboxOptions {
  /**
   * The create's `Idempotency-Key` (1-255 printable ASCII characters, no spaces). A create sent
   * again with the same key and the same request answers with the sandbox the first one made
   * (waiting for it if that create is still running) instead of making a second; the same key
   * with a different request is refused (422). Default: a random UUID for each `createSandbox`
   * call, so that the SDK's own retries of that call never make two sandboxes. Pass your own
   * (e.g. a job id) to make retries across calls or processes safe too.
   */
  idempotencyKey?: string;
}

export interface DeleteNetworkOptions {
  /** Detach every member first instead of failing with 409 (the sandboxes keep running). */
  force?: boolean;
}

/** `client.networks`: private overlay networks. */
export class Networks {
  readonly #t: Transport;

  /** @internal */
  constructor(transport: Transport) {
    this.#t = transport;
  }

  /** Creates a network; its `cidr` comes from the server's pool unless given. */
  async create(req: NetworkCreate): Promise<Network> {
    return this.#t.call<Network>("POST", "/v1/networks", { body: req });
  }

  /** One network, with its `members`. */
  async get(idOrName: string): Promise<Network> {
    return this.#t.call<Network>("GET", `/v1/networks/${seg(idOrName, "network")}`);
  }

  async list(): Promise<Network[]> {
    return (await this.#t.call<{ networks: Network[] }>("GET", "/v1/networks")).networks;
  }

  /** Deletes a network. One that still has members is refused (409) unless `force`. */
  async delete(idOrName: string, opts: DeleteNetworkOptions = {}): Promise<void> {
    const q = opts.force ? "?force=true" : "";
    await this.#t.call<void>("DELETE", `/v1/networks/${seg(idOrName, "network")}${q}`);
  }

  /** The sandboxes on a network, with their addresses and DNS names. */
  async members(idOrName: string): Promise<Member[]> {
    return (await this.#t.call<{ members: Member[] }>("GET", `/v1/networks/${seg(idOrName, "network")}/members`)).members;
  }
}

/**
 * A client of one Shoal API.
 *
 * ```ts
 * const client = new ShoalClient(); // URL + key from options, env, or ~/.config/shoal/config.json
 * const sb = await client.createSandbox({ rootfs: "devbox:1" });
 * const { stdout } = await sb.runCommand("uname", ["-a"]);
 * await sb.delete();
 * ```
 */
export class ShoalClient {
  /** The API base URL in use (no trailing slash). */
  readonly url: string;
  readonly networks: Networks;
  readonly #t: Transport;

  /** @throws {ConfigError} when no API key is found. */
  constructor(opts: ShoalClientOptions = {}) {
    const { url, apiKey } = resolveConfig({ url: opts.url, apiKey: opts.apiKey });
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("no fetch: Shoal's SDK needs Node.js 20 or later (or pass `fetch`)");
    this.url = url;
    this.#t = new Transport({
      url,
      apiKey,
      timeoutMs: positive(opts.timeoutMs, "timeoutMs") ?? 120_000,
      retries: Math.floor(nonNegative(opts.retries, "retries") ?? 3),
      retryBaseMs: nonNegative(opts.retryBaseMs, "retryBaseMs") ?? 250,
      fetch: f,
    });
    this.networks = new Networks(this.#t);
  }

  /**
   * Creates a sandbox and answers once it runs (HTTP 201; 200 when the server replays the
   * sandbox an earlier create with the same `idempotencyKey` made). Safe to retry: every call
   * sends an `Idempotency-Key` (see {@link CreateSandboxOptions.idempotencyKey}).
   */
  async createSandbox(req: SandboxCreate, opts: CreateSandboxOptions = {}): Promise<Sandbox> {
    const key = opts.idempotencyKey ?? globalThis.crypto.randomUUID();
    checkIdempotencyKey(key);
    const data = await this.#t.call<SandboxData>("POST", "/v1/sandboxes", { body: req, headers: { "idempotency-key": key } });
    return new Sandbox(this.#t, data);
  }

  async getSandbox(idOrName: string): Promise<Sandbox> {
    return new Sandbox(this.#t, await this.#t.call<SandboxData>("GET", `/v1/sandboxes/${seg(idOrName, "sandbox")}`));
  }

  async listSandboxes(): Promise<Sandbox[]> {
    const { sandboxes } = await this.#t.call<{ sandboxes: SandboxData[] }>("GET", "/v1/sandboxes");
    return sandboxes.map((d) => new Sandbox(this.#t, d));
  }

  /** Deletes a sandbox by id or name (same as `(await getSandbox(x)).delete()`, in one request). */
  async deleteSandbox(idOrName: string): Promise<void> {
    await this.#t.call<void>("DELETE", `/v1/sandboxes/${seg(idOrName, "sandbox")}`);
  }

  /** The catalogue of shapes (vCPUs, memory, pids limit). */
  async shapes(): Promise<Shape[]> {
    return (await this.#t.call<{ shapes: Shape[] }>("GET", "/v1/shapes")).shapes;
  }

  /** The images sandboxes can start from (`rootfs`). */
  async images(): Promise<Image[]> {
    return (await this.#t.call<{ images: Image[] }>("GET", "/v1/images")).images;
  }

  /** `GET /v1/health` (needs a valid key, so it also checks the key). */
  async health(): Promise<Health> {
    return this.#t.call<Health>("GET", "/v1/health");
  }
}

/** What the server accepts as an `Idempotency-Key`: 1-255 printable ASCII characters (no space). */
function checkIdempotencyKey(key: string): void {
  if (typeof key !== "string" || !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new ValidationError({
      status: 0,
      code: "invalid_argument",
      message: `idempotencyKey must be 1-255 printable ASCII characters without spaces, not ${JSON.stringify(key)}`,
    });
  }
}

function positive(v: number | undefined, name: string): number | undefined {
  if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new RangeError(`${name} must be a positive number of milliseconds, not ${v}`);
  return v;
}

function nonNegative(v: number | undefined, name: string): number | undefined {
  if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`${name} must be a non-negative number, not ${v}`);
  return v;
}
