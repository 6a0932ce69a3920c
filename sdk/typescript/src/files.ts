/**
 * `sandbox.files`: the files of a running sandbox. Contents stream both ways, so their size
 * is not limited by memory.
 * @module
 */

import { ValidationError } from "./errors.js";
import type { Transport } from "./transport.js";
import type { FileInfo } from "./types.js";

/** What can be uploaded: text (as UTF-8), bytes, or a stream of bytes (e.g. `fs.createReadStream(…)`, `Readable.toWeb(…)`, a `Blob`'s `stream()`). */
export type UploadData = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export interface ReadOptions {
  /** Start at this byte. */
  offset?: number;
  /** Read at most this many bytes. */
  length?: number;
  signal?: AbortSignal;
}

export interface WriteOptions {
  /** Permission bits: a number (`0o755`) or octal digits (`"755"`). Without it a replaced file keeps its mode and a new one gets 0644. */
  mode?: number | string;
  /** Append instead of replacing (the file is created if missing). */
  append?: boolean;
  signal?: AbortSignal;
}

/** Size of the pieces bytes are uploaded in. */
const UPLOAD_CHUNK = 1 << 20;

/**
 * The files of one sandbox (`sandbox.files`). Paths are absolute paths inside the sandbox.
 * Errors: `NotFoundError` (no such file or directory), `PermissionDeniedError` (403:
 * `EACCES`, `EPERM`, a read-only filesystem), `ConflictError`
 * (already exists; the sandbox is not running), `ValidationError` (not a directory, directory
 * not empty, a relative path, …).
 */
export class SandboxFiles {
  readonly #t: Transport;
  readonly #base: () => string;

  /** @internal */
  constructor(transport: Transport, base: () => string) {
    this.#t = transport;
    this.#base = base;
  }

  #url(what: string, path: string, extra: Record<string, string | undefined> = {}): string {
    if (typeof path !== "string" || !path.startsWith("/")) {
      throw new ValidationError({ status: 0, code: "invalid_argument", message: `path must be absolute (inside the sandbox), not ${JSON.stringify(path)}` });
    }
    const q = new URLSearchParams({ path });
    for (const [k, v] of Object.entries(extra)) if (v !== undefined) q.set(k, v);
    return `${this.#base()}/files${what}?${q.toString()}`;
  }

  /** A directory's entries, sorted by name. */
  async list(path: string): Promise<FileInfo[]> {
    return (await this.#t.call<{ path: string; entries: FileInfo[] }>("GET", this.#url("", path))).entries;
  }

  /** One file, directory or symlink (a final symlink is not followed). */
  async stat(path: string): Promise<FileInfo> {
    return this.#t.call<FileInfo>("GET", this.#url("/stat", path));
  }

  /** Whether something exists at `path` (a `stat` that maps 404 to `false`). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (e) {
      if ((e as { status?: number }).status === 404) return false;
      throw e;
    }
  }

  /** A file's contents (or the part `offset`/`length` select) in memory. */
  async read(path: string, opts: ReadOptions = {}): Promise<Uint8Array> {
    return (await this.#download("/content", path, opts)).bytes();
  }

  /** A file's contents as text (UTF-8). */
  async readText(path: string, opts: ReadOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, opts));
  }

  /**
   * A file's contents as a stream, read as you consume it. Errors before the first byte (no such
   * file, …) reject this call; cancelling the stream closes the connection.
   */
  async readStream(path: string, opts: ReadOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return (await this.#download("/content", path, opts)).toStream();
  }

  /**
   * Writes a file: text, bytes, or a stream (streamed, never held in memory whole). The bytes
   * go to a temporary file that replaces `path` at the end, so readers never see half a file.
   * The directory must exist. Resolves with the number of bytes written.
   */
  async write(path: string, data: UploadData, opts: WriteOptions = {}): Promise<number> {
    const extra: Record<string, string | undefined> = { mode: modeParam(opts.mode) };
    if (opts.append) extra.append = "true";
    return this.#upload(this.#url("/content", path, extra), data, "application/octet-stream", opts.signal);
  }

  /** Creates a directory; with `parents` like `mkdir -p` (no error if it exists). */
  async mkdir(path: string, opts: { parents?: boolean } = {}): Promise<void> {
    this.#url("", path); // checks the path
    await this.#t.call<void>("POST", `${this.#base()}/files/mkdir`, { body: { path, parents: opts.parents ?? false } });
  }

  /** Removes a file, symlink (not followed) or directory; a non-empty directory needs `recursive`. */
  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await this.#t.call<void>("DELETE", this.#url("", path, { recursive: opts.recursive ? "true" : undefined }));
  }

  /** Renames (moves) within one filesystem. */
  async rename(from: string, to: string): Promise<void> {
    this.#url("", from);
    this.#url("", to);
    await this.#t.call<void>("POST", `${this.#base()}/files/rename`, { body: { from, to } });
  }

  /**
   * A directory as an uncompressed tar archive (its entries relative to it), streamed; for
   * anything else, one entry named by its base name.
   */
  async downloadTar(path: string, opts: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    return (await this.#download("/tar", path, opts)).toStream();
  }

  /** Extracts a tar archive into the directory `path` (created if missing). Resolves with the tar bytes read. */
  async uploadTar(path: string, tar: UploadData, opts: { signal?: AbortSignal } = {}): Promise<number> {
    return this.#upload(this.#url("/tar", path), tar, "application/x-tar", opts.signal);
  }

  async #download(what: string, path: string, opts: ReadOptions) {
    const extra = { offset: opts.offset?.toString(), len: opts.length?.toString() };
    const { body } = await this.#t.open("GET", this.#url(what, path, extra), { accept: "*/*", signal: opts.signal });
    return body;
  }

  async #upload(url: string, data: UploadData, contentType: string, signal: AbortSignal | undefined): Promise<number> {
    const { body } = await this.#t.open("PUT", url, { upload: toStream(data), contentType, signal });
    const answer = JSON.parse(new TextDecoder().decode(await body.bytes())) as { bytes: number };
    return answer.bytes;
  }
}

function modeParam(mode: number | string | undefined): string | undefined {
  if (mode === undefined) return undefined;
  if (typeof mode === "number") {
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new ValidationError({ status: 0, code: "invalid_argument", message: `mode must be permission bits (0 … 0o7777), not ${mode}` });
    return mode.toString(8);
  }
  return mode;
}

/** Any {@link UploadData} as a stream of byte chunks. */
export function toStream(data: UploadData): ReadableStream<Uint8Array> {
  if (typeof data === "string") data = new TextEncoder().encode(data);
  if (data instanceof ArrayBuffer) data = new Uint8Array(data);
  if (data instanceof Uint8Array) {
    const bytes = data;
    let at = 0;
    return new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= bytes.length) return c.close();
        const end = Math.min(at + UPLOAD_CHUNK, bytes.length);
        c.enqueue(bytes.subarray(at, end));
        at = end;
      },
    });
  }
  if (data instanceof ReadableStream) return data;
  if (data !== null && typeof data === "object" && Symbol.asyncIterator in data) {
    const it = (data as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    return new ReadableStream<Uint8Array>({
      async pull(c) {
        const r = await it.next();
        if (r.done) return c.close();
        const v = r.value as unknown;
        c.enqueue(typeof v === "string" ? new TextEncoder().encode(v) : (v as Uint8Array));
      },
      async cancel(reason) {
        await it.return?.(reason);
      },
    });
  }
  throw new ValidationError({ status: 0, code: "invalid_argument", message: "data must be a string, a Uint8Array, an ArrayBuffer, a ReadableStream or an async iterable of Uint8Array" });
}
