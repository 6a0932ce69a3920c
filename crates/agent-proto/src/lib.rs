//! The wire protocol between a Shoal node and `shoal-agent` (PID 1 in every sandbox).
//!
//! Transport-free: any reliable byte stream works (a unix socket for containers today,
//! virtio-serial or vsock for micro-VMs later). Framing is one JSON object per line
//! (newline-delimited JSON). A connection carries exactly one request and one response,
//! which keeps the agent stateless and makes a stuck command unable to block others.
//!
//! Versioning: `PROTOCOL_VERSION` is bumped on any incompatible change; the node checks it in
//! the `Ping` reply before it sends anything else. Fields only ever get added with
//! `#[serde(default)]`, so an older peer ignores what it does not know.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;

/// Where the agent listens inside a container sandbox (the directory is a bind mount of a
/// per-sandbox host directory, so the node reaches the socket from outside).
pub const CONTAINER_SOCKET_DIR: &str = "/.shoal";
pub const SOCKET_NAME: &str = "agent.sock";

/// Output beyond this many bytes per stream is dropped and the result says `truncated`.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Exec(ExecRequest),
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Pong { version: u32, agent: String },
    Exec(ExecResult),
    Error { message: String },
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
pub fn read_frame<R: BufRead, T: for<'de> Deserialize<'de>>(r: &mut R) -> std::io::Result<Option<T>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
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

    /// Committed wire-format snapshots: a change here is a protocol change (bump the version).
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

    #[test]
    fn minimal_exec_request_parses_with_defaults() {
        let r: Request = serde_json::from_str(r#"{"op":"exec","cmd":"true"}"#).unwrap();
        assert_eq!(r, Request::Exec(ExecRequest { cmd: "true".into(), ..Default::default() }));
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Ping).unwrap();
        write_frame(&mut buf, &Response::Error { message: "x".into() }).unwrap();
        let mut r = std::io::BufReader::new(&buf[..]);
        assert_eq!(read_frame::<_, Request>(&mut r).unwrap(), Some(Request::Ping));
        assert_eq!(
            read_frame::<_, Response>(&mut r).unwrap(),
            Some(Response::Error { message: "x".into() })
        );
        assert_eq!(read_frame::<_, Response>(&mut r).unwrap(), None);
    }
}
