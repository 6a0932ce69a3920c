/**
 * One HTTP exchange with the API: auth header, JSON in and out, error mapping, a timeout per
 * attempt, and retries with exponential backoff on `503 Service Unavailable` (only: every other
 * answer is final, and a request that got no answer is never re-sent, since it may have done
 * its work).
 * @internal
 * @module
 */

import { ConnectionError, ShoalError, TimeoutError, ValidationError, errorForStatus } from "./errors.js";
import type { ErrorBody } from "./types.js";

export interface TransportOptions {
  url: string;
  apiKey: string;
  timeoutMs: number;
  retries: number;
  retryBaseMs: number;
  fetch: typeof fetch;
}

export interface CallOptions {
  /** JSON body. */
  body?: unknown;
  /** Timeout of each attempt; defaults to the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Cancels the call (also while it waits between retries). */
  signal?: AbortSignal | undefined;
  /** Extra request headers, sent with every attempt (e.g. `idempotency-key`). */
  headers?: Record<string, string>;
}

/** Most a wait between two retries lasts, also when the server's `Retry-After` asks for more. */
const MAX_BACKOFF_MS = 10_000;

export class Transport {
  constructor(readonly opts: TransportOptions) {}

  async call<T>(method: string, path: string, call: CallOptions = {}): Promise<T> {
    const what = `${method} ${path}`;
    const url = this.opts.url + path;
    const headers: Record<string, string> = {
      ...call.headers,
      authorization: `Bearer ${this.opts.apiKey}`,
      accept: "application/json",
    };
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    const timeoutMs = call.timeoutMs ?? this.opts.timeoutMs;

    for (let attempt = 0; ; attempt++) {
      call.signal?.throwIfAborted();
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = call.signal ? anySignal([call.signal, timeout]) : timeout;
      let res: Response;
      let text: string;
      try {
        res = await this.opts.fetch(url, { method, headers, body: body ?? null, signal });
        text = await res.text();
      } catch (e) {
        if (call.signal?.aborted) throw call.signal.reason;
        if (timeout.aborted) {
          throw new TimeoutError({
            status: 0,
            code: "timeout",
            message: `${what}: no answer from ${this.opts.url} within ${timeoutMs} ms (raise \`timeoutMs\` for slow operations)`,
            cause: e,
            request: what,
          });
        }
        const why = describeFetchError(e);
        throw new ConnectionError({
          status: 0,
          code: "unreachable",
          message: `cannot reach the Shoal API at ${this.opts.url} (${why}); is \`shoal up\` running, and are SHOAL_URL / the client config right?`,
          cause: e,
          request: what,
        });
      }

      if (res.ok) {
        if (res.status === 204 || text === "") return undefined as T;
        try {
          return JSON.parse(text) as T;
        } catch (e) {
          throw new ShoalError({ status: res.status, code: "invalid_response", message: `${what}: the answer is not JSON: ${text.slice(0, 200)}`, cause: e, request: what });
        }
      }

      if (res.status === 503 && attempt < this.opts.retries) {
        await sleep(backoffMs(attempt, this.opts.retryBaseMs, res.headers.get("retry-after")), call.signal);
        continue;
      }
      throw errorFromAnswer(res.status, text, what);
    }
  }

  /**
   * A request whose answer is read as a stream (exec and attach events, file and tar
   * downloads) and/or whose body is streamed (uploads). Error answers become errors as in
   * {@link call}; a 503 is retried unless the body is a stream. `timeoutMs` bounds the wait for
   * the answer, each wait for the server to take the next upload chunk, and each read of the
   * answer's body ({@link BodyReader.read}); never the whole exchange, so long-running
   * processes and large files are fine.
   */
  async open(method: string, path: string, opts: OpenOptions = {}): Promise<Opened> {
    const what = `${method} ${path}`;
    const url = this.opts.url + path;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.opts.apiKey}`,
      accept: opts.accept ?? "application/json",
    };
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.body);
    } else if (opts.upload !== undefined) {
      headers["content-type"] = opts.contentType ?? "application/octet-stream";
    }
    const timeoutMs = opts.timeoutMs ?? this.opts.timeoutMs;

    for (let attempt = 0; ; attempt++) {
      opts.signal?.throwIfAborted();
      const ctl = new AbortController();
      const state = { timedOut: false, closed: false };
      const onUserAbort = () => ctl.abort(opts.signal!.reason);
      opts.signal?.addEventListener("abort", onUserAbort, { once: true });
      const watchdog = new Watchdog(timeoutMs, () => {
        state.timedOut = true;
        ctl.abort(new TimeoutError({ status: 0, code: "timeout", message: `${what}: no progress for ${timeoutMs} ms (raise \`timeoutMs\`)`, request: what }));
      });
      const init: RequestInit & { duplex?: "half" } = { method, headers, signal: ctl.signal };
      if (body !== undefined) init.body = body;
      if (opts.upload !== undefined) {
        init.body = watchedUpload(opts.upload, watchdog);
        init.duplex = "half"; // Node's fetch needs it for a streamed request body
      }
      const fail = (e: unknown): ShoalError | unknown => {
        if (opts.signal?.aborted) return opts.signal.reason;
        if (state.closed) return new ShoalError({ status: 0, code: "closed", message: `${what}: closed by the client`, cause: e, request: what });
        if (state.timedOut) {
          return new TimeoutError({ status: 0, code: "timeout", message: `${what}: no answer from ${this.opts.url} within ${timeoutMs} ms (raise \`timeoutMs\`)`, cause: e, request: what });
        }
        if (e instanceof ShoalError) return e;
        return new ConnectionError({
          status: 0,
          code: "unreachable",
          message: `${what}: the connection to the Shoal API at ${this.opts.url} failed (${describeFetchError(e)})`,
          cause: e,
          request: what,
        });
      };
      const cleanup = () => {
        watchdog.stop();
        opts.signal?.removeEventListener("abort", onUserAbort);
      };
      let res: Response;
      watchdog.arm();
      try {
        res = await this.opts.fetch(url, init);
      } catch (e) {
        cleanup();
        throw fail(e);
      }
      watchdog.stop();
      if (res.ok) {
        const reader = new BodyReader(res, watchdog, fail, () => {
          state.closed = true;
          cleanup();
          ctl.abort(new ShoalError({ status: 0, code: "closed", message: `${what}: closed by the client`, request: what }));
        }, cleanup);
        return { res, body: reader };
      }
      let text = "";
      try {
        text = await res.text();
      } catch {
        // the error answer broke off: report the status alone
      }
      cleanup();
      if (res.status === 503 && attempt < this.opts.retries && opts.upload === undefined) {
        await sleep(backoffMs(attempt, this.opts.retryBaseMs, res.headers.get("retry-after")), opts.signal);
        continue;
      }
      throw errorFromAnswer(res.status, text, what);
    }
  }
}

export interface OpenOptions {
  /** JSON body. */
  body?: unknown;
  /** A raw body, streamed (uploads). */
  upload?: ReadableStream<Uint8Array>;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal | undefined;
  /** See {@link Transport.open}; defaults to the client's `timeoutMs`. */
  timeoutMs?: number;
}

export interface Opened {
  res: Response;
  body: BodyReader;
}

/** @internal A timer that fires when nothing happened for `ms`; re-armed on progress. */
export class Watchdog {
  #t: ReturnType<typeof setTimeout> | undefined;
  constructor(
    readonly ms: number,
    readonly fire: () => void,
  ) {}
  arm(): void {
    this.stop();
    this.#t = setTimeout(this.fire, this.ms);
  }
  stop(): void {
    if (this.#t !== undefined) clearTimeout(this.#t);
    this.#t = undefined;
  }
}

/** The upload as fetch pulls it; the watchdog runs only while fetch waits to take the next chunk. */
function watchedUpload(src: ReadableStream<Uint8Array>, watchdog: Watchdog): ReadableStream<Uint8Array> {
  const reader = src.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        watchdog.stop(); // the source may take its time: that is not the server's fault
        const r = await reader.read();
        if (r.done) c.close();
        else c.enqueue(r.value);
        watchdog.arm();
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Reads a streamed answer chunk by chunk, each read bounded by the request's timeout. */
export class BodyReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #finished = false;

  /** @internal */
  constructor(
    res: Response,
    readonly watchdog: Watchdog,
    readonly fail: (e: unknown) => unknown,
    readonly abort: () => void,
    readonly cleanup: () => void,
  ) {
    this.#reader = res.body?.getReader();
  }

  /** The next chunk, or `null` at the end of the body. */
  async read(): Promise<Uint8Array | null> {
    if (this.#finished || this.#reader === undefined) return null;
    this.watchdog.arm();
    try {
      const r = await this.#reader.read();
      if (r.done) {
        this.#finished = true;
        this.cleanup();
        return null;
      }
      return r.value;
    } catch (e) {
      this.#finished = true;
      this.cleanup();
      throw this.fail(e);
    } finally {
      this.watchdog.stop();
    }
  }

  /** Closes the connection (for a foreground exec, the server then kills the process). */
  close(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.abort();
    this.#reader?.cancel().catch(() => {});
  }

  /** The rest of the body as a web `ReadableStream`; cancelling it closes the connection. */
  toStream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (c) => {
        const chunk = await this.read();
        if (chunk === null) c.close();
        else c.enqueue(chunk);
      },
      cancel: () => this.close(),
    });
  }

  /** The rest of the body in one array. */
  async bytes(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let n = 0;
    for (;;) {
      const c = await this.read();
      if (c === null) break;
      parts.push(c);
      n += c.length;
    }
    return concat(parts, n);
  }
}

export function concat(parts: Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}


function errorFromAnswer(status: number, text: string, what: string): ShoalError {
  let code = "unknown";
  let message = text.trim() || `HTTP ${status}`;
  try {
    const b = JSON.parse(text) as Partial<ErrorBody>;
    if (b && typeof b.error?.code === "string" && typeof b.error.message === "string") {
      code = b.error.code;
      message = b.error.message;
    }
  } catch {
    // not the API's error format (a proxy in between?): keep the raw text
  }
  return errorForStatus({ status, code, message, request: what });
}

/** Delay before retry number `attempt + 1`: the server's `Retry-After` when it sends one, else base·2^attempt with jitter. */
export function backoffMs(attempt: number, baseMs: number, retryAfter: string | null): number {
  if (retryAfter !== null) {
    const secs = Number(retryAfter);
    if (Number.isFinite(secs) && secs >= 0) return Math.min(secs * 1000, MAX_BACKOFF_MS);
  }
  const exp = Math.min(baseMs * 2 ** attempt, MAX_BACKOFF_MS);
  return exp / 2 + Math.random() * (exp / 2);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** `AbortSignal.any` (Node ≥ 20.3), with a fallback for older 20.x. */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any.call(AbortSignal, signals);
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      c.abort(s.reason);
      break;
    }
    s.addEventListener("abort", () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

/** Node's fetch says only "fetch failed"; the useful part (ECONNREFUSED …) is in `cause`. */
function describeFetchError(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const c = cur as { code?: unknown; message?: unknown; cause?: unknown };
    const s = typeof c.code === "string" ? `${c.code}` : typeof c.message === "string" ? c.message : String(cur);
    if (s && !parts.includes(s)) parts.push(s);
    cur = c.cause;
  }
  return parts.join(": ") || "unknown error";
}

/** A path segment for an id or a name. */
export function seg(key: string, what: string): string {
  if (typeof key !== "string" || key === "" || key === "." || key === "..") {
    throw new ValidationError({ status: 0, code: "invalid_argument", message: `${what} must be a non-empty id or name, not ${JSON.stringify(key)}` });
  }
  return encodeURIComponent(key);
}
