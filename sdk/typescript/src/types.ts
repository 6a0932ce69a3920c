/**
 * Request and response bodies of the Shoal HTTP API v1 (mirrors `crates/api/src/types.rs`).
 *
 * Objects that the API returns keep the API's own snake_case field names (`sandbox_id`,
 * `created_at`, …), so what you read here is exactly what `docs/api.md` and `curl` show.
 * @module
 */

/** The body of every error answer. */
export interface ErrorBody {
  error: {
    /** Stable, machine-readable: `not_found`, `conflict`, `invalid_argument`, `unauthorized`, … */
    code: string;
    /** What went wrong and what to do about it. */
    message: string;
  };
}

export interface NetworkCreate {
  /** 1-63 lower-case letters, digits and `-`; the prefixes `sbx-` and `net-` are reserved. */
  name: string;
  /** IPv4 block (/16../29); taken from the server's address pool when absent. */
  cidr?: string;
}

export interface Network {
  /** `net-…` */
  id: string;
  name: string;
  cidr: string;
  /** RFC 3339 timestamp. */
  created_at: string;
  members: Member[];
}

/** One sandbox's place on one network. */
export interface Member {
  sandbox_id: string;
  sandbox_name: string;
  ip: string;
  mac: string;
  /** `<sandbox-name>.<network-name>.internal`, resolvable by the network's members. */
  dns_name: string;
  /** The sandbox's state (`running`, `failed`, …). */
  state: string;
  joined_at: string;
}

/** A network named by id or by name. */
export type NetworkRef = { id: string; name?: never } | { name: string; id?: never };

export interface SandboxCreate {
  /** Generated (`sandbox-…`) when absent. Same rules as network names. */
  name?: string;
  /** Defaults to `s-1vcpu-1gb` on the server; `client.shapes()` lists them. */
  shape?: string;
  /** Image reference `NAME:TAG`, e.g. `devbox:1`; `client.images()` lists them. */
  rootfs: string;
  /** Networks to join at create time, in order: the first becomes `eth0`. */
  networks?: NetworkRef[];
  /** Environment variables of every command run in the sandbox. */
  env?: Record<string, string>;
  /** Lifetime in seconds; at expiry the sandbox is deleted (or stopped, see `on_timeout`). Newer servers only. */
  timeout_secs?: number;
  /** `delete` (default) or `stop`. Newer servers only. */
  on_timeout?: "delete" | "stop" | (string & {});
}

export type SandboxState = "creating" | "running" | "stopping" | "stopped" | "failed" | "deleting" | (string & {});

/** A sandbox as the API describes it (the data fields of {@link Sandbox}). */
export interface SandboxData {
  /** `sbx-…` */
  id: string;
  name: string;
  shape: string;
  rootfs: string;
  state: SandboxState;
  /** Why the sandbox is `failed`, when it is. */
  state_reason?: string;
  /** `container` or `microvm`. */
  runtime: string;
  networks: Nic[];
  env: Record<string, string>;
  created_at: string;
  /** When the sandbox expires (RFC 3339), if it has a timeout. Newer servers only. */
  expires_at?: string;
  /** What happens at expiry: `delete` or `stop`. Newer servers only. */
  on_timeout?: string;
}

/** One interface of a sandbox on one network. */
export interface Nic {
  network_id: string;
  network_name: string;
  /** Name inside the sandbox: `eth0`, `eth1`, … in join order. */
  ifname: string;
  ip: string;
  mac: string;
}

/** The wire form of an exec request (`POST /v1/sandboxes/{id}/exec`). */
export interface ExecRequest {
  cmd: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** UTF-8 text written to the command's stdin, then stdin is closed. */
  stdin?: string;
  /** The command's process group is killed after this long (server default 60 s, max 1 h). */
  timeout_ms?: number;
}

/** The wire form of an exec answer. */
export interface ExecResponse {
  exit_code: number;
  stdout: string;
  stderr: string;
  duration_ms: number;
  timed_out: boolean;
}

export interface Shape {
  name: string;
  vcpus: number;
  memory_mb: number;
  pids_limit: number;
}

export interface Image {
  /** `NAME:TAG` */
  reference: string;
  size_bytes: number;
  created_at: string;
  /** How it was made: `busybox-static`, `debootstrap bookworm +pkgs`, `import file.tar`. */
  source: string;
}

export interface Health {
  status: string;
  version: string;
}

/** `GET /v1/sandboxes/{id}/metrics` */
export interface SandboxMetrics {
  cpu_usage_ns: number | null;
  memory_bytes: number | null;
  memory_limit_bytes: number | null;
  pids: number | null;
  disk_bytes: number;
  interfaces: { ifname: string; network_id: string; rx_bytes: number; tx_bytes: number; rx_packets: number; tx_packets: number }[];
}

/** A pseudo-terminal's size. */
export interface PtySize {
  rows: number;
  cols: number;
}

/** The wire form of a streaming exec request (`POST /v1/sandboxes/{id}/exec/stream`). */
export interface ExecStreamRequest {
  cmd: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Text written to stdin first. */
  stdin?: string;
  /** Bytes (base64) written to stdin first. Not together with `stdin`. */
  stdin_base64?: string;
  /** Keep stdin open for `POST …/processes/{pid}/stdin` until that closes it. */
  keep_stdin_open?: boolean;
  /** Kill the process group after this long; no timeout when absent. */
  timeout_ms?: number;
  /** Keep running when the client disconnects (output kept in a 1 MiB ring buffer). */
  background?: boolean;
  /** Run on a pseudo-terminal of this size. */
  pty?: PtySize;
}

/** One line of an exec or attach stream as it is on the wire (output in base64). */
export type ExecEventWire =
  | { type: "started"; pid: number }
  | { type: "stdout" | "stderr" | "pty"; data: string; offset?: number }
  | { type: "heartbeat" }
  | { type: "exit"; exit_code: number; signal: number | null; timed_out: boolean; duration_ms: number }
  | { type: "error"; code: string; message: string };

/** A background process (`GET /v1/sandboxes/{id}/processes`). */
export interface ProcessInfo {
  pid: number;
  cmd: string;
  args: string[];
  /** RFC 3339 timestamp. */
  started_at: string;
  running: boolean;
  /** Set once the process has exited (128+N when killed by signal N). */
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  /** Runs on a pseudo-terminal. */
  pty: boolean;
  /** Bytes printed so far; the last 1 MiB of them can be replayed with `attach(pid, { fromStart: true })`. */
  output_bytes: number;
}

/** A file, directory or symlink in a sandbox (`GET …/files`, `GET …/files/stat`). */
export interface FileInfo {
  name: string;
  /** `file`, `dir`, `symlink` or `other`. */
  kind: "file" | "dir" | "symlink" | "other" | (string & {});
  size: number;
  /** Permission bits, e.g. 420 (0644). */
  mode: number;
  /** RFC 3339 timestamp. */
  modified_at: string;
}
