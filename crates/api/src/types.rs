//! Request and response bodies of HTTP API v1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `conflict`, `invalid_argument`, `unauthorized`, ...
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    /// IPv4 block (/16../29); taken from the server's pool when absent.
    #[serde(default)]
    pub cidr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub created_at: String,
    #[serde(default)]
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    pub sandbox_id: String,
    pub sandbox_name: String,
    pub ip: String,
    pub mac: String,
    /// `<sandbox-name>.<network-name>.internal`, resolvable by the network's members.
    pub dns_name: String,
    /// The sandbox's state (`running`, `failed`, …).
    pub state: String,
    pub joined_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberList {
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkList {
    pub networks: Vec<Network>,
}

/// A network named either by id or by name: `{"id": "net-…"}` or `{"name": "team-eval"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl NetworkRef {
    pub fn key(&self) -> Option<&str> {
        self.id.as_deref().or(self.name.as_deref())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxCreate {
    #[serde(default)]
    pub name: Option<String>,
    /// Defaults to `s-1vcpu-1gb`.
    #[serde(default)]
    pub shape: Option<String>,
    /// Image reference `NAME:TAG`, e.g. `devbox:1`.
    pub rootfs: String,
    #[serde(default)]
    pub networks: Vec<NetworkRef>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Lifetime in seconds; at expiry the sandbox is deleted (or stopped, see `on_timeout`).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// `delete` (default) or `stop`.
    #[serde(default)]
    pub on_timeout: Option<String>,
}

/// `POST /v1/sandboxes/{id}/timeout`: the sandbox now expires `timeout_secs` from now.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutUpdate {
    pub timeout_secs: u64,
    /// `delete` or `stop`; unchanged when absent.
    #[serde(default)]
    pub on_timeout: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Logs {
    /// The last lines of PID 1's output (the sandbox's console).
    pub log: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxMetrics {
    pub cpu_usage_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub disk_bytes: u64,
    pub interfaces: Vec<InterfaceMetrics>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InterfaceMetrics {
    pub ifname: String,
    pub network_id: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sandbox {
    pub id: String,
    pub name: String,
    pub shape: String,
    pub rootfs: String,
    /// `creating`, `running`, `stopping`, `stopped`, `failed`, `deleting`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub runtime: String,
    pub networks: Vec<Nic>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub created_at: String,
    /// When the sandbox expires (RFC 3339), if it has a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
}

/// One interface of a sandbox on one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Nic {
    pub network_id: String,
    pub network_name: String,
    /// Name inside the sandbox: `eth0`, `eth1`, … in join order.
    pub ifname: String,
    pub ip: String,
    pub mac: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxList {
    pub sandboxes: Vec<Sandbox>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// UTF-8 text written to the command's stdin, then stdin is closed.
    #[serde(default)]
    pub stdin: Option<String>,
    /// The command's process group is killed after this long (default 60 s, max 1 h).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecResponse {
    /// 128+N when killed by signal N (as a shell reports it).
    pub exit_code: i32,
    /// Output as UTF-8; invalid sequences are replaced (U+FFFD).
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    #[serde(default)]
    pub timed_out: bool,
    /// The signal that ended the command, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Output beyond 64 MiB per stream was cut.
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShapeInfo {
    pub name: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub pids_limit: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShapeList {
    pub shapes: Vec<ShapeInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Image {
    /// `NAME:TAG`
    pub reference: String,
    pub size_bytes: u64,
    pub created_at: String,
    /// How it was made: `busybox-static`, `debootstrap bookworm +pkgs`, `import file.tar`.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageList {
    pub images: Vec<Image>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// `POST /v1/sandboxes/{id}/exec/stream`: answered by NDJSON `ExecEvent` lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecStreamRequest {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Text written to stdin first.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Bytes (base64) written to stdin first; for binary input.
    #[serde(default)]
    pub stdin_base64: Option<String>,
    /// Keep stdin open for `POST …/processes/{pid}/stdin` until it is closed there.
    #[serde(default)]
    pub keep_stdin_open: bool,
    /// Kill the process group after this long (no limit when absent).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Keep running after the client disconnects; output kept in a ring buffer for reattach.
    #[serde(default)]
    pub background: bool,
    /// Run on a pseudo-terminal of this size.
    #[serde(default)]
    pub pty: Option<PtySize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PtySize {
    pub rows: u16,
    pub cols: u16,
}

/// One line of an exec or attach stream. Output is base64 so that any bytes survive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    Started { pid: u32 },
    Stdout { data: String, #[serde(default, skip_serializing_if = "Option::is_none")] offset: Option<u64> },
    Stderr { data: String, #[serde(default, skip_serializing_if = "Option::is_none")] offset: Option<u64> },
    /// Output of a process on a pty (stdout and stderr are one terminal).
    Pty { data: String, #[serde(default, skip_serializing_if = "Option::is_none")] offset: Option<u64> },
    /// Nothing was printed for a while; the stream is alive.
    Heartbeat,
    Exit { exit_code: i32, signal: Option<i32>, timed_out: bool, duration_ms: u64 },
    Error { code: String, message: String },
}

/// `POST /v1/sandboxes/{id}/processes/{pid}/stdin`
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StdinWrite {
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub data_base64: Option<String>,
    /// Close stdin after writing (EOF; ^D on a pty).
    #[serde(default)]
    pub close: bool,
}

/// `POST /v1/sandboxes/{id}/processes/{pid}/signal`: `SIGINT`, `SIGTERM`, `SIGKILL`, `SIGHUP`,
/// `SIGQUIT`, `SIGUSR1`, `SIGUSR2` (with or without the `SIG` prefix) or a number.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    pub signal: String,
}

/// `POST /v1/sandboxes/{id}/processes/{pid}/resize`
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    pub rows: u16,
    pub cols: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProcessInfo {
    pub pid: u32,
    pub cmd: String,
    pub args: Vec<String>,
    pub started_at: String,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub pty: bool,
    /// Bytes printed so far (the last 1 MiB of them can be replayed).
    pub output_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProcessList {
    pub processes: Vec<ProcessInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileInfo {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
    /// Permission bits, e.g. 420 (0644).
    pub mode: u32,
    pub modified_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileList {
    pub path: String,
    pub entries: Vec<FileInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    pub path: String,
    #[serde(default)]
    pub parents: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WriteResult {
    /// Bytes written (file upload) or tar bytes read (directory upload).
    pub bytes: u64,
}
