//! The wire protocol between a Shoal node and `shoal-agent` (PID 1 in every sandbox).
//!
//! Transport-free: any reliable byte stream works (a unix socket for containers today,
//! virtio-serial or vsock for micro-VMs later). Framing is one JSON object per line
//! (newline-delimited JSON); requests are tagged by `"op"`, responses by `"kind"`, byte
//! payloads are base64 strings (so binary data survives intact).
//!
//! # Connections
//!
//! Every connection starts with exactly one request frame from the client. Most requests are
//! answered by exactly one response frame, after which the agent closes the connection. A few
//! are *streams*: the client may send further frames on the same connection (uploads, stdin,
//! signals) and/or the agent answers with a sequence of frames. Which frames may follow is
//! fixed per request, listed below. A stuck stream never blocks other connections.
//!
//! | Request | Client frames after it | Agent frames |
//! |---|---|---|
//! | [`Request::Ping`] | - | [`Response::Pong`] |
//! | [`Request::Exec`] | - | [`Response::Exec`] or `Error` |
//! | [`Request::ExecStream`] | `Stdin`, `CloseStdin`, `Signal`, `Resize` (without `pid`) | `Started`, `Output`*, `Heartbeat`*, `Exited` (see below) |
//! | [`Request::Attach`] | `Stdin`, `CloseStdin`, `Signal`, `Resize` (without `pid`) | `Output`* (replay, then live), `Heartbeat`*, `Exited`; or `Error` (unknown pid) |
//! | [`Request::Stdin`] / `CloseStdin` / `Signal` / `Resize` with a `pid` | - | `Ok` or `Error` |
//! | [`Request::ListProcesses`] | - | [`Response::Processes`] |
//! | [`Request::Forget`] | - | `Ok` or `Error` |
//! | [`Request::ReadFile`] | - | `Data`* then `Done`, or `Error` (possibly after some `Data`) |
//! | [`Request::WriteFile`] | `Data`*, `End` | `Ok { bytes }` or `Error` |
//! | [`Request::Stat`] | - | [`Response::Stat`] or `Error` |
//! | [`Request::List`] | - | [`Response::Entries`] or `Error` |
//! | [`Request::Mkdir`], [`Request::Remove`], [`Request::Rename`] | - | `Ok` or `Error` |
//! | [`Request::TarDownload`] | - | `Data`* (tar bytes) then `Done`, or `Error` |
//! | [`Request::TarUpload`] | `Data`* (tar bytes), `End` | `Ok { bytes }` or `Error` |
//!
//! (`*` = zero or more.) [`Response::Error`] always carries an [`ErrorKind`] and a message
//! that names the path or process and says what went wrong.
//!
//! ## Streaming exec ([`Request::ExecStream`])
//!
//! Frames: `Started { pid }` once the process runs, then `Output { stream, data }` as soon as
//! each read returns (no buffering beyond one read of at most 128 KiB), `Heartbeat` whenever
//! nothing was sent for [`HEARTBEAT_INTERVAL_MS`], and finally `Exited { exit_code, signal,
//! timed_out, duration_ms }`, after which the agent closes the connection.
//! - Before `Started`, an `Error` ends the stream (bad cwd, bad env, no pty available, ...). A
//!   command that cannot be found or executed behaves like [`Request::Exec`]: no `Started`, one
//!   `Output` on stderr (`shoal-agent: command not found: ...`) and `Exited` with 127 (not
//!   found) or 126 (not executable).
//! - After `Started`, the stream always ends with `Exited` (unless the client goes away). An
//!   `Error` frame in between answers a control frame that could not be applied (malformed,
//!   not a control op, `Resize` without a pty, `Stdin` after `CloseStdin`, a signal number
//!   outside 1..=64, a signal after the exit) and does not end the stream.
//! - Stdin: `stdin` bytes are written first; then, if `keep_stdin_open`, the client's `Stdin`
//!   frames follow until `CloseStdin` (for a foreground process also when the client
//!   half-closes or closes its side); otherwise stdin is closed right after `stdin` (and is
//!   `/dev/null` when `stdin` is absent). A `Stdin` frame is written to the process before
//!   the next client frame is read (backpressure: a process that does not read its input
//!   holds up the client's later frames, never its output).
//! - With a pty, stdin is the terminal: "closing" it sends the terminal's EOF character (^D),
//!   which is what `CloseStdin` (and the end of `stdin` without `keep_stdin_open`) does;
//!   without `stdin` and `keep_stdin_open` the terminal simply gets no input. Input is echoed
//!   and `\n` is output as `\r\n`, as on any terminal.
//! - `Signal { signal }` sends the signal to the process group (with a pty also to the
//!   terminal's foreground process group, like ^C would). `Resize` sets the pty size
//!   (TIOCSWINSZ; the process gets SIGWINCH).
//! - `timeout_ms` kills the process group with SIGKILL; `Exited` then says `timed_out: true`.
//! - After the process exits its output is read until EOF (EIO on a pty), but for at most
//!   100 ms (then whatever is already buffered is taken without waiting): background children
//!   that keep the output open do not hold up `Exited`, and nothing the process itself wrote
//!   is lost.
//! - Foreground (`background: false`): the process belongs to the connection; if the client
//!   closes the connection, the process group is killed (SIGKILL).
//! - Background (`background: true`): the process is registered in the agent's process table
//!   under its pid and keeps running when the client disconnects; its output goes to a ring
//!   buffer of [`RING_BUFFER_BYTES`] (oldest bytes dropped). After `Started` the connection
//!   behaves exactly like an [`Request::Attach`] `from_start: true`, so the client may just
//!   disconnect. Its `Output` frames carry `offset`. Neither a disconnect nor another
//!   request's timeout affects it: only its own `timeout_ms` (if given), a `Signal`, or the
//!   sandbox stopping.
//!
//! ## Background processes
//!
//! - `Attach { pid, from_start }`: with `from_start` the ring buffer is replayed first (as
//!   `Output` frames), then live output streams, then `Exited` (at once, after the replay, if
//!   the process already ended). Every `Output` of a background process carries `offset`: the
//!   position of its first byte in everything the process ever printed (all streams counted
//!   together). A reader that sees an offset beyond what it has received missed that many
//!   bytes (dropped from the ring before it read them). Several clients may attach at once.
//! - `Stdin { pid: Some(..) }`, `CloseStdin`, `Signal`, `Resize` with a pid: standalone requests
//!   answered by `Ok` or `Error` (`not_found`: no such background process; `invalid`: stdin
//!   closed, process exited, no pty, ...). `Stdin` answers once the bytes are written to the
//!   process (it waits up to 30 s for the process to read them). A background process's
//!   stdin stays open (with `keep_stdin_open`) when its clients disconnect; only `CloseStdin`
//!   closes it.
//! - `ListProcesses`: every background process, running or finished, sorted by start time.
//!   Finished ones stay listed (with their exit code) until `Forget { pid }`, or until more
//!   than [`MAX_FINISHED_PROCESSES`] have finished (oldest dropped first). A new background
//!   process whose pid equals that of a finished one replaces it.
//!
//! ## Files
//!
//! Paths must be absolute; they are paths inside the sandbox (the agent serves them from
//! inside). Payloads stream in chunks of at most [`DATA_CHUNK_BYTES`]; neither side ever needs
//! a whole file in memory.
//! - `ReadFile { path, offset, len }`: `Data` chunks, then `Done { size }` (bytes sent). A
//!   read error after some `Data` ends the stream with `Error` instead of `Done`.
//! - `WriteFile { path, mode, append }`, then `Data`* and `End` from the client: the data goes
//!   to a temporary file in the same directory that is renamed over `path` at `End` (so readers
//!   never see a half-written file), or is appended to `path` (created if missing) with
//!   `append`. `mode` (permission bits) applies to the written file; without it a replaced file
//!   keeps its mode (and owner) and a new one gets 0644. If `path` is a symlink, its target is
//!   written. The directory must exist (`not_found` otherwise).
//!   Answer: `Ok { bytes: Some(n) }`. On failure the agent answers `Error` at once and discards
//!   the client's remaining frames up to `End`.
//! - `Stat { path }` (does not follow a final symlink) → `Stat`; `List { path }` → `Entries`
//!   sorted by name; `Mkdir { path, parents }` (like `mkdir -p` with `parents`: no error if it
//!   exists); `Remove { path, recursive }` (a directory needs `recursive` unless empty; symlinks
//!   are removed, never followed; `/` is refused); `Rename { from, to }` (same filesystem
//!   only) → `Ok`. Names that are not UTF-8 are listed lossily.
//! - `TarDownload { path }`: an uncompressed ustar archive as `Data` chunks, then `Done { size }`.
//!   For a directory the entries are its contents, relative to it (`a.txt`, `sub/`, `sub/b`);
//!   for anything else one entry named by its base name. Regular files, directories and
//!   symlinks are included (symlinks inside are not followed); other file types are skipped.
//!   Long names use GNU `L`/`K` records, readable by GNU tar and busybox.
//! - `TarUpload { path }`, then `Data`* (tar bytes) and `End`: extracts into the directory
//!   `path` (created if missing). Supports regular files, directories, symlinks, hard links,
//!   GNU long names and pax `path`/`linkpath`/`size`. Entries that are absolute or whose `..`
//!   components would leave `path`, or that would be written through a symlink, are refused
//!   (`Error` kind `invalid`; what was extracted before stays). An existing file or symlink
//!   at an entry's path is replaced (never written through). Modes and mtimes are restored,
//!   owners are not (everything belongs to the agent's user). Answer: `Ok { bytes }` with the
//!   number of tar bytes read.
//!
//! # Versioning
//!
//! [`PROTOCOL_VERSION`] is bumped only on an incompatible change; the node checks it in the
//! `Ping` reply before it sends anything else. Additive changes keep the version: new request
//! ops, new response kinds, and new fields that are optional on the wire (`#[serde(default)]`,
//! so a peer that predates them parses frames without them, and serde ignores fields it does
//! not know). A node learns which additions an agent supports from [`Response::Pong`]'s
//! `features` (see [`FEATURES`]) and must not send a newer op to an agent that lacks the
//! feature (an older agent answers an unknown op with `Error`). Renaming or removing a field,
//! op or kind, changing a type or a default, or changing what a frame means is incompatible.
//! The `wire_format_*` tests below hold committed snapshots of every frame. (Additive on the
//! wire is not always additive in Rust: match struct variants with `..`.)

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;

/// Additive protocol features this version of the agent supports (sent in `Pong`).
/// `exec_stream`: `ExecStream` with `Started`/`Output`/`Heartbeat`/`Exited` and in-stream
/// `Stdin`/`CloseStdin`/`Signal`. `background`: `background: true`, `ListProcesses`,
/// `Attach`, `Forget`, pid-addressed `Stdin`/`CloseStdin`/`Signal`/`Resize`. `pty`: `pty` and
/// `Resize`. `files`: `ReadFile`, `WriteFile`, `Stat`, `List`, `Mkdir`, `Remove`, `Rename`.
/// `tar`: `TarDownload`, `TarUpload`. `error_kind`: `Error` carries `error_kind`.
pub const FEATURES: &[&str] = &["exec_stream", "background", "pty", "files", "tar", "error_kind"];

/// Where the agent listens inside a container sandbox (the directory is a bind mount of a
/// per-sandbox host directory, so the node reaches the socket from outside).
pub const CONTAINER_SOCKET_DIR: &str = "/.shoal";
pub const SOCKET_NAME: &str = "agent.sock";

/// Output beyond this many bytes per stream is dropped and the result says `truncated`.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// A stream sends `Heartbeat` after this long without any other frame.
pub const HEARTBEAT_INTERVAL_MS: u64 = 5_000;

/// Output kept per background process (the most recent bytes; older ones are dropped).
pub const RING_BUFFER_BYTES: usize = 1024 * 1024;

/// Finished background processes kept in the process table (oldest dropped beyond this).
pub const MAX_FINISHED_PROCESSES: usize = 64;

/// Largest payload of one `Data` frame the agent sends (file and tar downloads). Clients
/// should send chunks of this size too; the agent accepts frames up to [`MAX_FRAME_BYTES`].
pub const DATA_CHUNK_BYTES: usize = 64 * 1024;

/// Longest frame (JSON line) the agent accepts.
pub const MAX_FRAME_BYTES: usize = 128 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Answered by `Pong`.
    Ping,
    /// Run a command to completion and answer with everything it printed (`Exec`).
    Exec(ExecRequest),
    /// Run a command and stream its output (see the crate docs).
    ExecStream(ExecStreamRequest),
    /// Bytes for a process's stdin: within an `ExecStream`/`Attach` connection without `pid`,
    /// or as a standalone request to the background process `pid`.
    Stdin {
        #[serde(default)]
        pid: Option<u32>,
        #[serde(with = "b64")]
        data: Vec<u8>,
    },
    /// Close the process's stdin (EOF for it; with a pty: send ^D).
    CloseStdin {
        #[serde(default)]
        pid: Option<u32>,
    },
    /// Send `signal` (e.g. `libc::SIGINT` = 2, SIGTERM = 15, SIGKILL = 9) to the process group.
    Signal {
        #[serde(default)]
        pid: Option<u32>,
        signal: i32,
    },
    /// Set the pty's window size (processes started with `pty` only).
    Resize {
        #[serde(default)]
        pid: Option<u32>,
        rows: u16,
        cols: u16,
    },
    /// Answered by `Processes`.
    ListProcesses,
    /// Stream a background process's output (see the crate docs).
    Attach {
        pid: u32,
        /// Replay the ring buffer before the live output.
        #[serde(default)]
        from_start: bool,
    },
    /// Drop a finished background process from the table.
    Forget { pid: u32 },
    /// Answered by `Data`* then `Done`.
    ReadFile {
        path: String,
        /// Start reading here.
        #[serde(default)]
        offset: u64,
        /// Read at most this many bytes (default: to the end of the file).
        #[serde(default)]
        len: Option<u64>,
    },
    /// Followed by the client's `Data`* and `End`; answered by `Ok { bytes }`.
    WriteFile {
        path: String,
        /// Permission bits for the file (e.g. 0o755).
        #[serde(default)]
        mode: Option<u32>,
        #[serde(default)]
        append: bool,
    },
    /// A chunk of upload data (after `WriteFile` or `TarUpload`).
    Data {
        #[serde(with = "b64")]
        data: Vec<u8>,
    },
    /// The end of an upload.
    End,
    /// Answered by `Stat`.
    Stat { path: String },
    /// Answered by `Entries`.
    List { path: String },
    Mkdir {
        path: String,
        #[serde(default)]
        parents: bool,
    },
    Remove {
        path: String,
        #[serde(default)]
        recursive: bool,
    },
    Rename { from: String, to: String },
    /// Answered by `Data`* (tar bytes) then `Done`.
    TarDownload { path: String },
    /// Followed by the client's `Data`* (tar bytes) and `End`; answered by `Ok { bytes }`.
    TarUpload { path: String },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to (and overriding) the agent's base environment (PATH, HOME, ...).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Bytes written to the command's stdin, after which stdin is closed.
    #[serde(default, with = "b64_opt")]
    pub stdin: Option<Vec<u8>>,
    /// Kill the command's whole process group after this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecStreamRequest {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to (and overriding) the agent's base environment (PATH, HOME, ...).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Bytes written to stdin first.
    #[serde(default, with = "b64_opt")]
    pub stdin: Option<Vec<u8>>,
    /// Keep stdin open after `stdin` for `Stdin` frames, until `CloseStdin`.
    #[serde(default)]
    pub keep_stdin_open: bool,
    /// Kill the process group after this long (`Exited` says `timed_out`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Register in the process table and survive the client's disconnect.
    #[serde(default)]
    pub background: bool,
    /// Run on a new pseudo-terminal of this size (stdin/stdout/stderr all on it).
    #[serde(default)]
    pub pty: Option<PtySize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtySize {
    pub rows: u16,
    pub cols: u16,
}

impl Default for PtySize {
    fn default() -> Self {
        PtySize { rows: 24, cols: 80 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Pong {
        version: u32,
        agent: String,
        /// Additive features this agent supports ([`FEATURES`]); empty from older agents.
        #[serde(default)]
        features: Vec<String>,
    },
    Exec(ExecResult),
    Error {
        message: String,
        /// What kind of failure (`other` from agents that predate it). Not called `kind`
        /// because that is the frame's tag.
        #[serde(default)]
        error_kind: ErrorKind,
    },
    /// The process of an `ExecStream` is running.
    Started { pid: u32 },
    /// Output as it was read.
    Output {
        stream: OutputStream,
        #[serde(with = "b64")]
        data: Vec<u8>,
        /// Background processes only: the position of `data`'s first byte in everything the
        /// process has printed (all streams together).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// Nothing else was sent for a while; the stream is alive.
    Heartbeat,
    /// The last frame of an exec stream or attach.
    Exited {
        /// Exit status; 128+signal when the process was killed by a signal (shell convention).
        exit_code: i32,
        signal: Option<i32>,
        timed_out: bool,
        duration_ms: u64,
    },
    Processes { list: Vec<ProcessInfo> },
    /// Success without data. `bytes`: bytes written (`WriteFile`) or tar bytes read
    /// (`TarUpload`), absent otherwise.
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
    },
    /// A chunk of a download.
    Data {
        #[serde(with = "b64")]
        data: Vec<u8>,
    },
    /// The end of a download; `size` is the number of bytes sent in `Data` frames.
    Done { size: u64 },
    Stat {
        /// Not called `kind` because that is the frame's tag.
        file_kind: FileKind,
        size: u64,
        /// Permission bits (`st_mode & 0o7777`).
        mode: u32,
        /// Modification time, milliseconds since the unix epoch.
        mtime_ms: i64,
    },
    Entries { entries: Vec<DirEntry> },
}

impl Response {
    pub fn error(error_kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            error_kind,
        }
    }
}

/// What kind of failure an `Error` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The path or process does not exist.
    NotFound,
    /// The filesystem said no (EACCES, EPERM, EROFS).
    PermissionDenied,
    /// Something is already there (e.g. `Mkdir` without `parents`).
    Exists,
    /// The request cannot be done as asked: malformed frame, bad argument, not a directory,
    /// directory not empty, path escape in a tar, process not running, ...
    Invalid,
    /// Any other system error (I/O error, fork failed, disk full, ...).
    Io,
    /// Not specified (older agents) or a kind this version does not know.
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
    /// Everything a process on a pty prints (stdout and stderr are the same terminal).
    Pty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// Sockets, fifos, devices (and kinds this version does not know).
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub mtime_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub cmd: String,
    pub args: Vec<String>,
    /// Milliseconds since the unix epoch.
    pub started_at_ms: u64,
    pub running: bool,
    /// Set once it ended; 128+signal when killed by a signal.
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default)]
    pub pty: bool,
    /// Bytes it printed so far (the ring buffer holds the last `RING_BUFFER_BYTES` of them).
    #[serde(default)]
    pub output_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit status; 128+signal when the process was killed by a signal (shell convention).
    pub exit_code: i32,
    #[serde(default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(with = "b64")]
    pub stdout: Vec<u8>,
    #[serde(with = "b64")]
    pub stderr: Vec<u8>,
    #[serde(default)]
    pub truncated: bool,
    pub duration_ms: u64,
}

/// Write one frame (a JSON object and a newline).
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Read one frame; `Ok(None)` at a clean end of stream.
/// The longest line `read_frame` accepts: an `Exec` answer can carry two full 64 MiB outputs as
/// base64 (~171 MiB), and nothing longer may make a peer allocate without bound.
pub const READ_FRAME_LIMIT: u64 = 256 * 1024 * 1024;

pub fn read_frame<R: BufRead, T: for<'de> Deserialize<'de>>(r: &mut R) -> std::io::Result<Option<T>> {
    use std::io::Read;
    let mut line = String::new();
    let n = r.by_ref().take(READ_FRAME_LIMIT).read_line(&mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n as u64 == READ_FRAME_LIMIT && !line.ends_with('\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame longer than {READ_FRAME_LIMIT} bytes")));
    }
    serde_json::from_str(line.trim_end())
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

mod b64 {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

mod b64_opt {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    /// Committed wire-format snapshots: a change here is a protocol change. Adding a new
    /// snapshot for a new op/kind/optional field is additive; changing an existing one is not
    /// (bump the version).
    #[test]
    fn wire_format_is_stable() {
        let req = Request::Exec(ExecRequest {
            cmd: "sh".into(),
            args: vec!["-c".into(), "cat".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            cwd: Some("/tmp".into()),
            stdin: Some(b"hi\xff".to_vec()),
            timeout_ms: Some(500),
        });
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"op":"exec","cmd":"sh","args":["-c","cat"],"env":{"A":"1"},"cwd":"/tmp","stdin":"aGn/","timeout_ms":500}"#
        );
        assert_eq!(serde_json::to_string(&Request::Ping).unwrap(), r#"{"op":"ping"}"#);
        let res = Response::Exec(ExecResult {
            exit_code: 3,
            signal: None,
            timed_out: false,
            stdout: b"out".to_vec(),
            stderr: vec![0, 255],
            truncated: false,
            duration_ms: 7,
        });
        assert_eq!(
            serde_json::to_string(&res).unwrap(),
            r#"{"kind":"exec","exit_code":3,"signal":null,"timed_out":false,"stdout":"b3V0","stderr":"AP8=","truncated":false,"duration_ms":7}"#
        );
    }

    /// Frames of protocol 1 as first shipped must still parse (additive changes only).
    #[test]
    fn original_frames_still_parse() {
        let pong: Response = serde_json::from_str(r#"{"kind":"pong","version":1,"agent":"a"}"#).unwrap();
        assert_eq!(
            pong,
            Response::Pong { version: 1, agent: "a".into(), features: vec![] }
        );
        let err: Response = serde_json::from_str(r#"{"kind":"error","message":"m"}"#).unwrap();
        assert_eq!(err, Response::error(ErrorKind::Other, "m"));
        let unknown: Response =
            serde_json::from_str(r#"{"kind":"error","message":"m","error_kind":"from_the_future"}"#).unwrap();
        assert_eq!(unknown, Response::error(ErrorKind::Other, "m"));
    }

    #[test]
    fn wire_format_exec_stream() {
        let req = Request::ExecStream(ExecStreamRequest {
            cmd: "sh".into(),
            args: vec!["-c".into(), "cat".into()],
            env: BTreeMap::from([("A".into(), "1".into())]),
            cwd: Some("/tmp".into()),
            stdin: Some(b"hi\xff".to_vec()),
            keep_stdin_open: true,
            timeout_ms: Some(500),
            background: true,
            pty: Some(PtySize { rows: 24, cols: 80 }),
        });
        assert_eq!(
            json(&req),
            r#"{"op":"exec_stream","cmd":"sh","args":["-c","cat"],"env":{"A":"1"},"cwd":"/tmp","stdin":"aGn/","keep_stdin_open":true,"timeout_ms":500,"background":true,"pty":{"rows":24,"cols":80}}"#
        );
        let minimal: Request = serde_json::from_str(r#"{"op":"exec_stream","cmd":"ls"}"#).unwrap();
        assert_eq!(
            minimal,
            Request::ExecStream(ExecStreamRequest { cmd: "ls".into(), ..Default::default() })
        );
        let cases: Vec<(Request, &str)> = vec![
            (Request::Stdin { pid: None, data: vec![0xff, 0] }, r#"{"op":"stdin","pid":null,"data":"/wA="}"#),
            (Request::Stdin { pid: Some(42), data: b"x".to_vec() }, r#"{"op":"stdin","pid":42,"data":"eA=="}"#),
            (Request::CloseStdin { pid: None }, r#"{"op":"close_stdin","pid":null}"#),
            (Request::Signal { pid: Some(7), signal: 15 }, r#"{"op":"signal","pid":7,"signal":15}"#),
            (Request::Resize { pid: None, rows: 50, cols: 132 }, r#"{"op":"resize","pid":null,"rows":50,"cols":132}"#),
            (Request::ListProcesses, r#"{"op":"list_processes"}"#),
            (Request::Attach { pid: 9, from_start: true }, r#"{"op":"attach","pid":9,"from_start":true}"#),
            (Request::Forget { pid: 9 }, r#"{"op":"forget","pid":9}"#),
        ];
        for (req, wire) in cases {
            assert_eq!(json(&req), wire);
            assert_eq!(serde_json::from_str::<Request>(wire).unwrap(), req);
        }
        // `pid` may be left out of in-stream control frames.
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"close_stdin"}"#).unwrap(),
            Request::CloseStdin { pid: None }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"signal","signal":2}"#).unwrap(),
            Request::Signal { pid: None, signal: 2 }
        );

        let cases: Vec<(Response, &str)> = vec![
            (
                Response::Pong { version: 1, agent: "a".into(), features: vec!["pty".into()] },
                r#"{"kind":"pong","version":1,"agent":"a","features":["pty"]}"#,
            ),
            (Response::Started { pid: 12 }, r#"{"kind":"started","pid":12}"#),
            (
                Response::Output { stream: OutputStream::Stdout, data: vec![0, 255], offset: None },
                r#"{"kind":"output","stream":"stdout","data":"AP8="}"#,
            ),
            (
                Response::Output { stream: OutputStream::Stderr, data: b"e".to_vec(), offset: None },
                r#"{"kind":"output","stream":"stderr","data":"ZQ=="}"#,
            ),
            (
                Response::Output { stream: OutputStream::Pty, data: b"p".to_vec(), offset: Some(100) },
                r#"{"kind":"output","stream":"pty","data":"cA==","offset":100}"#,
            ),
            (Response::Heartbeat, r#"{"kind":"heartbeat"}"#),
            (
                Response::Exited { exit_code: 137, signal: Some(9), timed_out: true, duration_ms: 500 },
                r#"{"kind":"exited","exit_code":137,"signal":9,"timed_out":true,"duration_ms":500}"#,
            ),
            (
                Response::Processes {
                    list: vec![ProcessInfo {
                        pid: 5,
                        cmd: "sleep".into(),
                        args: vec!["9".into()],
                        started_at_ms: 1700000000000,
                        running: false,
                        exit_code: Some(0),
                        signal: None,
                        timed_out: false,
                        pty: false,
                        output_bytes: 3,
                    }],
                },
                r#"{"kind":"processes","list":[{"pid":5,"cmd":"sleep","args":["9"],"started_at_ms":1700000000000,"running":false,"exit_code":0,"signal":null,"timed_out":false,"pty":false,"output_bytes":3}]}"#,
            ),
            (Response::Ok { bytes: None }, r#"{"kind":"ok"}"#),
            (
                Response::error(ErrorKind::NotFound, "no such file: /x"),
                r#"{"kind":"error","message":"no such file: /x","error_kind":"not_found"}"#,
            ),
        ];
        for (res, wire) in cases {
            assert_eq!(json(&res), wire);
            assert_eq!(serde_json::from_str::<Response>(wire).unwrap(), res);
        }
        for (kind, wire) in [
            (ErrorKind::NotFound, "not_found"),
            (ErrorKind::PermissionDenied, "permission_denied"),
            (ErrorKind::Exists, "exists"),
            (ErrorKind::Invalid, "invalid"),
            (ErrorKind::Io, "io"),
            (ErrorKind::Other, "other"),
        ] {
            assert_eq!(json(&kind), format!("\"{wire}\""));
        }
    }

    #[test]
    fn wire_format_files() {
        let cases: Vec<(Request, &str)> = vec![
            (
                Request::ReadFile { path: "/a".into(), offset: 10, len: Some(5) },
                r#"{"op":"read_file","path":"/a","offset":10,"len":5}"#,
            ),
            (
                Request::WriteFile { path: "/a".into(), mode: Some(0o755), append: false },
                r#"{"op":"write_file","path":"/a","mode":493,"append":false}"#,
            ),
            (Request::Data { data: vec![1, 2, 3] }, r#"{"op":"data","data":"AQID"}"#),
            (Request::End, r#"{"op":"end"}"#),
            (Request::Stat { path: "/a".into() }, r#"{"op":"stat","path":"/a"}"#),
            (Request::List { path: "/".into() }, r#"{"op":"list","path":"/"}"#),
            (Request::Mkdir { path: "/a/b".into(), parents: true }, r#"{"op":"mkdir","path":"/a/b","parents":true}"#),
            (Request::Remove { path: "/a".into(), recursive: true }, r#"{"op":"remove","path":"/a","recursive":true}"#),
            (Request::Rename { from: "/a".into(), to: "/b".into() }, r#"{"op":"rename","from":"/a","to":"/b"}"#),
            (Request::TarDownload { path: "/d".into() }, r#"{"op":"tar_download","path":"/d"}"#),
            (Request::TarUpload { path: "/d".into() }, r#"{"op":"tar_upload","path":"/d"}"#),
        ];
        for (req, wire) in cases {
            assert_eq!(json(&req), wire);
            assert_eq!(serde_json::from_str::<Request>(wire).unwrap(), req);
        }
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"read_file","path":"/a"}"#).unwrap(),
            Request::ReadFile { path: "/a".into(), offset: 0, len: None }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"write_file","path":"/a"}"#).unwrap(),
            Request::WriteFile { path: "/a".into(), mode: None, append: false }
        );

        let cases: Vec<(Response, &str)> = vec![
            (Response::Data { data: b"abc".to_vec() }, r#"{"kind":"data","data":"YWJj"}"#),
            (Response::Done { size: 3 }, r#"{"kind":"done","size":3}"#),
            (Response::Ok { bytes: Some(3) }, r#"{"kind":"ok","bytes":3}"#),
            (
                Response::Stat { file_kind: FileKind::Symlink, size: 4, mode: 0o777, mtime_ms: -5 },
                r#"{"kind":"stat","file_kind":"symlink","size":4,"mode":511,"mtime_ms":-5}"#,
            ),
            (
                Response::Entries {
                    entries: vec![
                        DirEntry { name: "d".into(), kind: FileKind::Dir, size: 0, mode: 0o755, mtime_ms: 1 },
                        DirEntry { name: "f".into(), kind: FileKind::File, size: 9, mode: 0o644, mtime_ms: 2 },
                        DirEntry { name: "s".into(), kind: FileKind::Other, size: 0, mode: 0o600, mtime_ms: 3 },
                    ],
                },
                r#"{"kind":"entries","entries":[{"name":"d","kind":"dir","size":0,"mode":493,"mtime_ms":1},{"name":"f","kind":"file","size":9,"mode":420,"mtime_ms":2},{"name":"s","kind":"other","size":0,"mode":384,"mtime_ms":3}]}"#,
            ),
        ];
        for (res, wire) in cases {
            assert_eq!(json(&res), wire);
            assert_eq!(serde_json::from_str::<Response>(wire).unwrap(), res);
        }
    }

    #[test]
    fn minimal_exec_request_parses_with_defaults() {
        let r: Request = serde_json::from_str(r#"{"op":"exec","cmd":"true"}"#).unwrap();
        assert_eq!(r, Request::Exec(ExecRequest { cmd: "true".into(), ..Default::default() }));
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Ping).unwrap();
        write_frame(&mut buf, &Response::error(ErrorKind::Io, "x")).unwrap();
        let mut r = std::io::BufReader::new(&buf[..]);
        assert_eq!(read_frame::<_, Request>(&mut r).unwrap(), Some(Request::Ping));
        assert_eq!(
            read_frame::<_, Response>(&mut r).unwrap(),
            Some(Response::error(ErrorKind::Io, "x"))
        );
        assert_eq!(read_frame::<_, Response>(&mut r).unwrap(), None);
    }
}
