/**
 * Streaming exec, background processes and reattach: the events of `POST …/exec/stream` and
 * `GET …/processes/{pid}/output`, decoded, behind a {@link ProcessHandle}.
 * @module
 */

import { ShoalError, ValidationError } from "./errors.js";
import type { BodyReader, Transport } from "./transport.js";
import type { ExecEventWire, ExecStreamRequest, ProcessInfo, PtySize } from "./types.js";

/** How a process ended. (Made by the SDK, hence camelCase; the wire form is the `exit` event.) */
export interface ExecResult {
  /** 128+N when killed by signal N; 127 when the command was not found, 126 when not executable. */
  exitCode: number;
  /** The signal that killed it, if one did. */
  signal: number | null;
  /** It ran past its `timeoutMs` and its process group was killed. */
  timedOut: boolean;
  durationMs: number;
}

/** Output bytes of one stream. `offset` (background processes and attach): where `data` starts in everything the process printed. */
export interface OutputEvent<T extends "stdout" | "stderr" | "pty"> {
  type: T;
  data: Uint8Array;
  offset?: number;
}

/**
 * One event of a process's stream, decoded: output is bytes (`Uint8Array`), the exit fields are
 * camelCase. A `pty` event is the output of a process on a pseudo-terminal (stdout and stderr
 * are one terminal there).
 */
export type ProcessEvent =
  | { type: "started"; pid: number }
  | OutputEvent<"stdout">
  | OutputEvent<"stderr">
  | OutputEvent<"pty">
  /** Nothing was printed for 5 s; the stream is alive. */
  | { type: "heartbeat" }
  /** The last event. */
  | ({ type: "exit" } & ExecResult)
  /** A stdin, signal or resize request for this process could not be applied; the stream goes on. */
  | { type: "error"; code: string; message: string };

export interface StreamOptions {
  /** Called with each chunk of stdout as it arrives (and with a pty's output). May return a promise: the stream waits for it. */
  onStdout?: (data: Uint8Array) => void | Promise<void>;
  /** Called with each chunk of stderr as it arrives. */
  onStderr?: (data: Uint8Array) => void | Promise<void>;
  /** Called with every event (after `onStdout` / `onStderr`). */
  onEvent?: (event: ProcessEvent) => void | Promise<void>;
  /**
   * Closes the stream when aborted: a foreground process is then killed by the server, a
   * background one keeps running. `done` rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

export interface ExecOptions extends StreamOptions {
  /** Extra environment variables (on top of the sandbox's `env`). */
  env?: Record<string, string>;
  /** Working directory inside the sandbox. */
  cwd?: string;
  /** Written to stdin first (text as UTF-8, or bytes). Then stdin is closed, unless `keepStdinOpen`. */
  stdin?: string | Uint8Array;
  /** Keep stdin open for `writeStdin()` until `closeStdin()`. */
  keepStdinOpen?: boolean;
  /** Kill the process group after this long. No timeout when absent. */
  timeoutMs?: number;
  /** Run on a pseudo-terminal: `true` for 24×80, or a size. Output then comes as `pty` events. */
  pty?: boolean | PtySize;
  /**
   * Keep the process running when this handle is closed or the connection drops; its output
   * goes to a 1 MiB ring buffer that `sandbox.attach(pid)` replays.
   */
  background?: boolean;
}

export interface AttachOptions extends StreamOptions {
  /** Replay what the process's ring buffer kept (its last 1 MiB of output) before live output. */
  fromStart?: boolean;
}

/** Events kept for an iterator that has not caught up; the stream pauses beyond this. */
const HIGH_WATER = 64;
/** The least time an event stream may go without a byte: the server sends a heartbeat every 5 s. */
const MIN_STREAM_READ_MS = 30_000;

/** @internal What the handle and the sandbox need to address one sandbox's processes. */
export class ProcessApi {
  constructor(
    readonly t: Transport,
    readonly path: (suffix: string) => string,
  ) {}

  #readTimeout(): number {
    return Math.max(this.t.opts.timeoutMs, MIN_STREAM_READ_MS);
  }

  async list(): Promise<ProcessInfo[]> {
    return (await this.t.call<{ processes: ProcessInfo[] }>("GET", this.path("/processes"))).processes;
  }

  async writeStdin(pid: number, data: string | Uint8Array | undefined, close: boolean): Promise<void> {
    const body: { data?: string; data_base64?: string; close?: boolean } = {};
    if (typeof data === "string") body.data = data;
    else if (data !== undefined) body.data_base64 = toBase64(bytesOf(data, "data"));
    if (close) body.close = true;
    await this.t.call<void>("POST", this.path(`/processes/${pidSeg(pid)}/stdin`), { body });
  }

  async kill(pid: number, signal?: string | number): Promise<void> {
    if (signal === undefined) {
      await this.t.call<void>("DELETE", this.path(`/processes/${pidSeg(pid)}`));
    } else {
      await this.t.call<void>("POST", this.path(`/processes/${pidSeg(pid)}/signal`), { body: { signal: String(signal) } });
    }
  }

  async resize(pid: number, rows: number, cols: number): Promise<void> {
    await this.t.call<void>("POST", this.path(`/processes/${pidSeg(pid)}/resize`), { body: { rows, cols } });
  }

  /** Starts `cmd` and answers once the first event is in (the pid, usually). */
  async exec(cmd: string, args: string[], opts: ExecOptions): Promise<ProcessHandle> {
    const body = execBody(cmd, args, opts);
    const { body: reader } = await this.t.open("POST", this.path("/exec/stream"), { body, accept: "application/x-ndjson", signal: opts.signal, timeoutMs: this.#readTimeout() });
    return ProcessHandle.start(this, reader, opts);
  }

  async attach(pid: number, opts: AttachOptions): Promise<ProcessHandle> {
    const q = opts.fromStart ? "?from_start=true" : "";
    const { body: reader } = await this.t.open("GET", this.path(`/processes/${pidSeg(pid)}/output${q}`), { accept: "application/x-ndjson", signal: opts.signal, timeoutMs: this.#readTimeout() });
    return ProcessHandle.start(this, reader, opts, pid);
  }

  /** A background process; returns once it runs (its output stays in its ring buffer). */
  async startBackground(cmd: string, args: string[], opts: Omit<ExecOptions, "background" | keyof StreamOptions> & { signal?: AbortSignal }): Promise<{ pid: number }> {
    const body = execBody(cmd, args, { ...opts, background: true });
    const { body: reader } = await this.t.open("POST", this.path("/exec/stream"), { body, accept: "application/x-ndjson", signal: opts.signal, timeoutMs: this.#readTimeout() });
    const lines = new EventLines(reader);
    try {
      const first = await lines.next();
      if (first?.type === "started") return { pid: first.pid };
      // It could not start (command not found, not executable): the stream says why.
      const err: string[] = [];
      let exit: number | undefined;
      for (let ev: ProcessEvent | null = first; ev !== null; ev = await lines.next()) {
        if (ev.type === "stderr" || ev.type === "stdout" || ev.type === "pty") err.push(new TextDecoder().decode(ev.data));
        if (ev.type === "exit") {
          exit = ev.exitCode;
          break;
        }
      }
      throw new ShoalError({
        status: 0,
        code: "not_started",
        message: `\`${cmd}\` did not start${exit === undefined ? "" : ` (exit ${exit})`}: ${err.join("").trim() || "no output"}`,
      });
    } finally {
      reader.close(); // a background process does not depend on this connection
    }
  }
}

function execBody(cmd: string, args: string[], opts: ExecOptions): ExecStreamRequest {
  if (typeof cmd !== "string" || cmd === "") throw new ValidationError({ status: 0, code: "invalid_argument", message: "cmd must be a non-empty string" });
  const req: ExecStreamRequest = { cmd, args: args.map(String) };
  if (opts.env !== undefined) req.env = opts.env;
  if (opts.cwd !== undefined) req.cwd = opts.cwd;
  if (typeof opts.stdin === "string") req.stdin = opts.stdin;
  else if (opts.stdin !== undefined) req.stdin_base64 = toBase64(bytesOf(opts.stdin, "stdin"));
  if (opts.keepStdinOpen) req.keep_stdin_open = true;
  if (opts.timeoutMs !== undefined) req.timeout_ms = opts.timeoutMs;
  if (opts.background) req.background = true;
  if (opts.pty) req.pty = opts.pty === true ? { rows: 24, cols: 80 } : { rows: opts.pty.rows, cols: opts.pty.cols };
  return req;
}

function pidSeg(pid: number): string {
  if (!Number.isInteger(pid) || pid <= 0) throw new ValidationError({ status: 0, code: "invalid_argument", message: `a process id must be a positive integer, not ${pid}` });
  return String(pid);
}

/**
 * A process running in a sandbox, as `sandbox.exec()` or `sandbox.attach()` returns it.
 *
 * Its events arrive through the callbacks (`onStdout`, `onStderr`, `onEvent`) and through async
 * iteration (`for await (const ev of handle)`), and `done` settles when it exits:
 *
 * ```ts
 * const p = await sb.exec("sh", ["-c", "echo hi; sleep 1; echo bye"]);
 * for await (const ev of p) if (ev.type === "stdout") process.stdout.write(ev.data);
 * const { exitCode } = await p.done;
 * ```
 *
 * Start iterating right away: without callbacks, events wait for the iterator (and the
 * stream pauses after 64 of them) until you read `done`, which from then on consumes them. With
 * callbacks the stream is read at full speed, and an iterator sees the events from when it
 * starts. Breaking out of the loop does not stop the process: `kill()` does; `close()` drops
 * the connection (a foreground process then dies, a background one keeps running).
 */
export class ProcessHandle implements AsyncIterable<ProcessEvent> {
  /** The process id inside the sandbox. `undefined` only when the command could not start (then the stream has its `stderr` and an `exit` with 126 or 127). */
  readonly pid: number | undefined;

  readonly #api: ProcessApi;
  readonly #body: BodyReader;
  readonly #lines: EventLines;
  readonly #opts: StreamOptions;
  readonly #pushMode: boolean;
  #pending: ProcessEvent[];
  #queue: ProcessEvent[] = [];
  #iterating = false;
  #iteratorDone = false;
  #doneWanted = false;
  #finished = false;
  #failed = false;
  #closedByUser = false;
  #error: unknown;
  #wakePump: (() => void) | undefined;
  #wakeIterator: (() => void) | undefined;
  readonly #done: Promise<ExecResult>;
  #resolve!: (r: ExecResult) => void;
  #reject!: (e: unknown) => void;

  private constructor(api: ProcessApi, body: BodyReader, lines: EventLines, opts: StreamOptions, pid: number | undefined, pending: ProcessEvent[]) {
    this.#api = api;
    this.#body = body;
    this.#lines = lines;
    this.#opts = opts;
    this.#pushMode = opts.onStdout !== undefined || opts.onStderr !== undefined || opts.onEvent !== undefined;
    this.pid = pid;
    this.#pending = pending;
    this.#done = new Promise<ExecResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#done.catch(() => {}); // a rejection nobody awaits must not crash the process
    opts.signal?.addEventListener("abort", () => this.close(), { once: true });
    // After the caller's `await` resumed: an iterator it starts at once sees every event.
    setTimeout(() => void this.#pump(), 0);
  }

  /** @internal */
  static async start(api: ProcessApi, body: BodyReader, opts: StreamOptions, pid?: number): Promise<ProcessHandle> {
    const lines = new EventLines(body);
    const pending: ProcessEvent[] = [];
    if (pid === undefined) {
      try {
        const first = await lines.next();
        if (first !== null) pending.push(first);
        if (first?.type === "started") pid = first.pid;
      } catch (e) {
        body.close();
        throw e;
      }
    }
    return new ProcessHandle(api, body, lines, opts, pid, pending);
  }

  /**
   * Settles when the process exits: resolves with how it ended, rejects when the stream broke
   * off first (connection lost, `close()`, the `signal` aborted). Reading it makes the handle
   * consume events that no iterator is reading.
   */
  get done(): Promise<ExecResult> {
    this.#doneWanted = true;
    this.#keepChanged();
    return this.#done;
  }

  /** Writes to the process's stdin (it must have been started with `keepStdinOpen`). Text is sent as UTF-8. */
  async writeStdin(data: string | Uint8Array): Promise<void> {
    await this.#api.writeStdin(this.#pid(), data, false);
  }

  /** Closes the process's stdin (EOF; ^D on a pty). */
  async closeStdin(): Promise<void> {
    await this.#api.writeStdin(this.#pid(), undefined, true);
  }

  /**
   * Without an argument: SIGKILL to the process group (and a background process leaves the
   * process list). With one (`"SIGINT"`, `"TERM"`, `15`, …): sends that signal to the group.
   */
  async kill(signal?: string | number): Promise<void> {
    await this.#api.kill(this.#pid(), signal);
  }

  /** Sets the pty's window size (the process gets SIGWINCH). */
  async resize(rows: number, cols: number): Promise<void> {
    await this.#api.resize(this.#pid(), rows, cols);
  }

  /**
   * Drops the connection. A foreground process is then killed by the server; a background one
   * (or an attached one) keeps running. Iteration ends; `done` rejects (code `closed`) unless
   * the process had already exited.
   */
  close(): void {
    if (this.#finished) return;
    this.#closedByUser = true;
    this.#body.close();
    const reason = this.#opts.signal?.aborted
      ? this.#opts.signal.reason
      : new ShoalError({ status: 0, code: "closed", message: `the stream of process ${this.pid ?? "(not started)"} was closed before it exited` });
    this.#fail(reason);
  }

  [Symbol.asyncIterator](): AsyncIterator<ProcessEvent> {
    if (this.#iterating) throw new TypeError("this process's events are already being iterated");
    this.#iterating = true;
    const end = (): IteratorResult<ProcessEvent> => {
      this.#iterating = false;
      this.#iteratorDone = true;
      this.#queue.length = 0;
      this.#keepChanged();
      return { done: true, value: undefined };
    };
    const it: AsyncIterator<ProcessEvent> & AsyncIterable<ProcessEvent> = {
      next: async () => {
        for (;;) {
          if (!this.#iterating) return { done: true, value: undefined };
          const ev = this.#queue.shift();
          if (ev !== undefined) {
            this.#wake("pump");
            return { done: false, value: ev };
          }
          if (this.#finished) {
            end();
            if (this.#failed && !this.#closedByUser) throw this.#error;
            return { done: true, value: undefined };
          }
          await new Promise<void>((r) => (this.#wakeIterator = r));
        }
      },
      return: async () => end(),
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  #pid(): number {
    if (this.pid === undefined) throw new ShoalError({ status: 0, code: "not_started", message: "the command did not start (see its stderr and exit code)" });
    return this.pid;
  }

  /** Events are kept for an iterator: one runs, or one may still come (no callbacks, `done` not read). */
  #keep(): boolean {
    return this.#iterating || (!this.#pushMode && !this.#doneWanted && !this.#iteratorDone);
  }

  #keepChanged(): void {
    if (!this.#keep()) this.#queue.length = 0;
    this.#wake("pump");
  }

  #wake(who: "pump" | "iterator"): void {
    const f = who === "pump" ? this.#wakePump : this.#wakeIterator;
    if (who === "pump") this.#wakePump = undefined;
    else this.#wakeIterator = undefined;
    f?.();
  }

  async #pump(): Promise<void> {
    let lastError: { code: string; message: string } | undefined;
    try {
      for (;;) {
        while (!this.#finished && this.#keep() && this.#queue.length >= HIGH_WATER) {
          await new Promise<void>((r) => (this.#wakePump = r));
        }
        if (this.#finished) return;
        const ev = this.#pending.shift() ?? (await this.#lines.next());
        if (this.#finished) return;
        if (ev === null) {
          throw new ShoalError({
            status: 0,
            code: lastError?.code ?? "stream_ended",
            message: lastError ? `the stream ended before the process exited: ${lastError.message}` : "the stream ended before the process exited",
          });
        }
        if (ev.type === "error") lastError = ev;
        await this.#dispatch(ev);
        if (this.#keep()) {
          this.#queue.push(ev);
          this.#wake("iterator");
        }
        if (ev.type === "exit") {
          const { exitCode, signal, timedOut, durationMs } = ev;
          this.#finished = true;
          this.#resolve({ exitCode, signal, timedOut, durationMs });
          this.#body.close();
          this.#wake("iterator");
          return;
        }
      }
    } catch (e) {
      if (!this.#finished) {
        this.#body.close();
        this.#fail(this.#opts.signal?.aborted ? this.#opts.signal.reason : e);
      }
    }
  }

  async #dispatch(ev: ProcessEvent): Promise<void> {
    const o = this.#opts;
    if ((ev.type === "stdout" || ev.type === "pty") && o.onStdout) await o.onStdout(ev.data);
    else if (ev.type === "stderr" && o.onStderr) await o.onStderr(ev.data);
    if (o.onEvent) await o.onEvent(ev);
  }

  #fail(e: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#failed = true;
    this.#error = e;
    this.#reject(e);
    this.#wake("iterator");
    this.#wake("pump");
  }
}

/** NDJSON lines of a stream, decoded into events. */
class EventLines {
  readonly #decoder = new TextDecoder();
  #buf = "";

  constructor(readonly body: BodyReader) {}

  async next(): Promise<ProcessEvent | null> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        const ev = parseEvent(line);
        if (ev !== null) return ev;
        continue;
      }
      const chunk = await this.body.read();
      if (chunk === null) {
        const rest = this.#buf + this.#decoder.decode();
        this.#buf = "";
        return parseEvent(rest);
      }
      this.#buf += this.#decoder.decode(chunk, { stream: true });
    }
  }
}

/** One NDJSON line as an event; `null` for a blank line or an event type this version does not know. */
export function parseEvent(line: string): ProcessEvent | null {
  if (line.trim() === "") return null;
  let w: ExecEventWire;
  try {
    w = JSON.parse(line) as ExecEventWire;
  } catch (e) {
    throw new ShoalError({ status: 0, code: "invalid_response", message: `unreadable stream event: ${line.slice(0, 200)}`, cause: e });
  }
  switch (w.type) {
    case "started":
      return { type: "started", pid: w.pid };
    case "stdout":
    case "stderr":
    case "pty": {
      const ev: OutputEvent<typeof w.type> = { type: w.type, data: fromBase64(w.data) };
      if (typeof w.offset === "number") ev.offset = w.offset;
      return ev as ProcessEvent;
    }
    case "heartbeat":
      return { type: "heartbeat" };
    case "exit":
      return { type: "exit", exitCode: w.exit_code, signal: w.signal ?? null, timedOut: w.timed_out ?? false, durationMs: w.duration_ms };
    case "error":
      return { type: "error", code: w.code, message: w.message };
    default:
      return null; // a newer server's event: skip it
  }
}

// ---------------------------------------------------------------- bytes

interface BufferLike {
  from(s: string, enc: "base64"): Uint8Array;
  from(b: ArrayBufferLike, offset: number, len: number): { toString(enc: "base64"): string };
}
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

export function fromBase64(s: string): Uint8Array {
  if (NodeBuffer) {
    const b = NodeBuffer.from(s, "base64");
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toBase64(b: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(b.buffer, b.byteOffset, b.length).toString("base64");
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) bin += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(bin);
}

function bytesOf(data: unknown, what: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new ValidationError({ status: 0, code: "invalid_argument", message: `${what} must be a string or a Uint8Array` });
}
