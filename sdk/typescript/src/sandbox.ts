import { SandboxFiles } from "./files.js";
import { ProcessApi } from "./process.js";
import type { AttachOptions, ExecOptions, ProcessHandle } from "./process.js";
import type { Transport } from "./transport.js";
import { seg } from "./transport.js";
import type { ExecRequest, ExecResponse, NetworkRef, Nic, ProcessInfo, SandboxData, SandboxMetrics, SandboxState } from "./types.js";

/** Server-side default of `timeout_ms` for a command. */
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
/** How much longer than the command may run the HTTP request waits for its answer. */
const EXEC_GRACE_MS = 30_000;

export interface RunCommandOptions {
  /** Extra environment variables (on top of the sandbox's `env`). */
  env?: Record<string, string>;
  /** Working directory inside the sandbox. */
  cwd?: string;
  /** UTF-8 text written to the command's stdin, then stdin is closed. */
  stdin?: string;
  /** Kill the command's process group after this long (server default 60 s, max 1 h). */
  timeoutMs?: number;
  /** Cancels the HTTP request (the command itself runs on until its own timeout). */
  signal?: AbortSignal;
}

/** What a command did. (Made by the SDK, hence camelCase; the wire form is {@link ExecResponse}.) */
export interface CommandResult {
  /** 128+N when killed by signal N, as a shell reports it. */
  exitCode: number;
  /** Output as UTF-8; invalid sequences are replaced with U+FFFD. */
  stdout: string;
  stderr: string;
  durationMs: number;
  /** The command ran past its timeout and was killed. */
  timedOut: boolean;
}

/** A network to attach: `{ id }`, `{ name }`, or a string that is either (`net-…` is an id). */
export type NetworkLike = NetworkRef | string;

export function toNetworkRef(n: NetworkLike): NetworkRef {
  if (typeof n === "string") return n.startsWith("net-") ? { id: n } : { name: n };
  return n;
}

/**
 * A sandbox: the API's fields as they are on the wire (`id`, `name`, `state`, `networks`,
 * `created_at`, …) plus methods. The fields are a snapshot of the last answer; `refresh()`,
 * `attachNetwork()` and `detachNetwork()` update them in place. `JSON.stringify(sandbox)`
 * gives the API's JSON.
 */
export class Sandbox implements SandboxData {
  declare id: string;
  declare name: string;
  declare shape: string;
  declare rootfs: string;
  declare state: SandboxState;
  declare state_reason?: string;
  declare runtime: string;
  declare networks: Nic[];
  declare env: Record<string, string>;
  declare created_at: string;
  declare expires_at?: string;
  declare on_timeout?: string;

  readonly #t: Transport;
  readonly #procs: ProcessApi;
  readonly #files: SandboxFiles;

  /** @internal Sandboxes come from `client.createSandbox()`, `getSandbox()` and `listSandboxes()`. */
  constructor(transport: Transport, data: SandboxData) {
    this.#t = transport;
    this.#set(data);
    this.#procs = new ProcessApi(transport, (suffix) => this.#path(suffix));
    this.#files = new SandboxFiles(transport, () => this.#path());
  }

  /** The sandbox's files: `read`, `readStream`, `write`, `list`, `stat`, `mkdir`, `remove`, `rename`, `downloadTar`, `uploadTar`. */
  get files(): SandboxFiles {
    return this.#files;
  }

  #set(data: SandboxData): this {
    // Optional fields absent from the new answer must not survive from the old one.
    delete this.state_reason;
    delete this.expires_at;
    delete this.on_timeout;
    Object.assign(this, data);
    return this;
  }

  #path(suffix = ""): string {
    return `/v1/sandboxes/${seg(this.id, "sandbox")}${suffix}`;
  }

  /**
   * Runs `cmd args…` in the sandbox and waits for it to finish. A non-zero exit is not an
   * error: look at `exitCode`. Nothing goes through a shell; for pipes and `&&` run
   * `runCommand("sh", ["-c", "…"])`.
   */
  async runCommand(cmd: string, args: string[] = [], opts: RunCommandOptions = {}): Promise<CommandResult> {
    const req: ExecRequest = { cmd, args };
    if (opts.env !== undefined) req.env = opts.env;
    if (opts.cwd !== undefined) req.cwd = opts.cwd;
    if (opts.stdin !== undefined) req.stdin = opts.stdin;
    if (opts.timeoutMs !== undefined) req.timeout_ms = opts.timeoutMs;
    // The request must outlive the command: wait for its timeout plus a grace period.
    const timeoutMs = Math.max(this.#t.opts.timeoutMs, (opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS) + EXEC_GRACE_MS);
    const r = await this.#t.call<ExecResponse>("POST", this.#path("/exec"), { body: req, timeoutMs, signal: opts.signal });
    return { exitCode: r.exit_code, stdout: r.stdout, stderr: r.stderr, durationMs: r.duration_ms, timedOut: r.timed_out ?? false };
  }

  /**
   * Starts `cmd args…` and streams its output as it is produced. Resolves once the process
   * runs, with a {@link ProcessHandle}: `pid`, `done` (the exit), `writeStdin` / `closeStdin`
   * (with `keepStdinOpen`), `kill`, `resize` (with `pty`), and async iteration over its events.
   *
   * ```ts
   * const p = await sb.exec("sh", ["-c", "for i in 1 2 3; do echo $i; sleep 1; done"], {
   *   onStdout: (b) => process.stdout.write(b),
   * });
   * const { exitCode } = await p.done;
   * ```
   *
   * The process belongs to the connection: when it closes (`close()`, `signal` aborted, the
   * client exits) the process is killed, unless `background` is set. There is no timeout
   * unless `timeoutMs` is given. Errors before it starts (a missing `cwd`, a stopped sandbox)
   * reject this call; a command that is not found starts no process: its handle has no `pid`,
   * and `done` resolves with exit code 127.
   */
  async exec(cmd: string, args: string[] = [], opts: ExecOptions = {}): Promise<ProcessHandle> {
    return this.#procs.exec(cmd, args, opts);
  }

  /**
   * Starts `cmd args…` as a background process and resolves with its pid once it runs. It keeps
   * running without a client; its output goes to a 1 MiB ring buffer that {@link attach}
   * replays. Only its own `timeoutMs`, a signal, `killProcess` or the sandbox stopping end it.
   */
  async startBackground(cmd: string, args: string[] = [], opts: Omit<ExecOptions, "background" | "onStdout" | "onStderr" | "onEvent"> = {}): Promise<{ pid: number }> {
    return this.#procs.startBackground(cmd, args, opts);
  }

  /**
   * Attaches to a background process: its output from now on (with `fromStart`, first what
   * its ring buffer kept), then its exit. Closing the handle leaves the process running.
   */
  async attach(pid: number, opts: AttachOptions = {}): Promise<ProcessHandle> {
    return this.#procs.attach(pid, opts);
  }

  /** The sandbox's background processes, running or finished, in start order. */
  async processes(): Promise<ProcessInfo[]> {
    return this.#procs.list();
  }

  /** Writes to a process's stdin by pid (started with `keepStdinOpen`); `close` closes it afterwards. */
  async writeStdin(pid: number, data: string | Uint8Array, opts: { close?: boolean } = {}): Promise<void> {
    return this.#procs.writeStdin(pid, data, opts.close ?? false);
  }

  /** Closes a process's stdin by pid. */
  async closeStdin(pid: number): Promise<void> {
    return this.#procs.writeStdin(pid, undefined, true);
  }

  /** Without `signal`: SIGKILL to the process group, and a background process leaves the list. With it: sends that signal (`"SIGINT"`, `"TERM"`, `15`, …). */
  async killProcess(pid: number, signal?: string | number): Promise<void> {
    return this.#procs.kill(pid, signal);
  }

  /** Sets the window size of a process's pty. */
  async resizeProcess(pid: number, rows: number, cols: number): Promise<void> {
    return this.#procs.resize(pid, rows, cols);
  }

  /** Plugs this (running) sandbox into one more network (the next free `ethN`); returns `this`, updated. */
  async attachNetwork(network: NetworkLike): Promise<this> {
    const data = await this.#t.call<SandboxData>("POST", this.#path("/networks"), { body: toNetworkRef(network) });
    return this.#set(data);
  }

  /** Unplugs this sandbox from a network (id or name); returns `this`, updated. */
  async detachNetwork(network: string | NetworkRef): Promise<this> {
    const key = typeof network === "string" ? network : (network.id ?? network.name);
    const data = await this.#t.call<SandboxData>("DELETE", this.#path(`/networks/${seg(key as string, "network")}`));
    return this.#set(data);
  }

  /** Stops the sandbox's processes, keeping its filesystem and addresses; returns `this`, updated. */
  async stop(): Promise<this> {
    return this.#set(await this.#t.call<SandboxData>("POST", this.#path("/stop")));
  }

  /** Starts a stopped sandbox again on its kept filesystem; returns `this`, updated. */
  async start(): Promise<this> {
    return this.#set(await this.#t.call<SandboxData>("POST", this.#path("/start")));
  }

  /** Makes the sandbox expire `seconds` from now (extends or shortens its lifetime). */
  async setTimeout(seconds: number): Promise<this> {
    return this.#set(await this.#t.call<SandboxData>("POST", this.#path("/timeout"), { body: { timeout_secs: seconds } }));
  }

  /** The last `tail` lines of the sandbox's console (its PID 1's output). */
  async logs(tail = 200): Promise<string> {
    return (await this.#t.call<{ log: string }>("GET", this.#path(`/logs?tail=${tail}`))).log;
  }

  /** CPU, memory, processes, disk and per-interface traffic. */
  async metrics(): Promise<SandboxMetrics> {
    return this.#t.call<SandboxMetrics>("GET", this.#path("/metrics"));
  }

  /** Reloads the fields from the server; returns `this`. */
  async refresh(): Promise<this> {
    return this.#set(await this.#t.call<SandboxData>("GET", this.#path()));
  }

  /** Deletes the sandbox (its interfaces leave every network; its addresses return to the pools). */
  async delete(): Promise<void> {
    await this.#t.call<void>("DELETE", this.#path());
  }

  /** The IPv4 address of this sandbox on a network (id or name), from the last snapshot. */
  ipOn(network: string): string | undefined {
    return this.networks.find((n) => n.network_id === network || n.network_name === network)?.ip;
  }

  /** The API's JSON form (without methods). */
  toJSON(): SandboxData {
    const { ...data } = this as unknown as SandboxData;
    return data;
  }
}
