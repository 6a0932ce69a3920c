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
