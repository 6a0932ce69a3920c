//! Streaming exec, background processes and files: the agent's streaming protocol bridged to
//! HTTP. Agent connections are blocking sockets, so each stream is pumped by its own thread
//! into a bounded channel that feeds the HTTP body (backpressure end to end; a client that
//! goes away closes the agent connection, which kills a foreground process).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use shoal_agent_proto::{OutputStream, Request, Response};
use shoal_api::{validate, ExecEvent, ExecStreamRequest, FileInfo, ProcessInfo, StdinWrite};
use shoal_node::agent_client::{AgentConn, AgentError};
use shoal_node::NodeError;
use tokio::sync::mpsc;

use crate::error::{agent_refusal, ApiError};
use crate::App;

/// Chunks in flight between an agent stream and its HTTP body.
const CHANNEL_DEPTH: usize = 16;

fn node_err(e: NodeError) -> ApiError {
    ApiError::from(e)
}

/// The id of a running sandbox, or 404/409.
fn running_sandbox(app: &App, key: &str) -> Result<String, ApiError> {
    let s = app.store.lock().unwrap();
    let sb = s.sandbox(key)?.ok_or_else(|| ApiError::not_found(format!("sandbox `{key}` not found: `shoal sandbox list` shows the sandboxes that exist")))?;
    if sb.state != "running" {
        return Err(ApiError::conflict(format!("sandbox `{}` is {}: start it first (`shoal sandbox start {}`)", sb.name, sb.state, sb.name)));
    }
    Ok(sb.id)
}

fn decode_b64(field: &str, v: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(v).map_err(|e| ApiError::unprocessable(format!("`{field}` is not valid base64: {e}")))
}

/// An agent frame as one NDJSON line of the HTTP stream (None: not for the client).
pub fn event_line(frame: Response) -> Option<Vec<u8>> {
    let event = match frame {
        Response::Started { pid } => ExecEvent::Started { pid },
        Response::Output { stream, data, offset } => {
            let data = B64.encode(data);
            match stream {
                OutputStream::Stdout => ExecEvent::Stdout { data, offset },
                OutputStream::Stderr => ExecEvent::Stderr { data, offset },
                OutputStream::Pty => ExecEvent::Pty { data, offset },
            }
        }
        Response::Heartbeat => ExecEvent::Heartbeat,
        Response::Exited { exit_code, signal, timed_out, duration_ms } => ExecEvent::Exit { exit_code, signal, timed_out, duration_ms },
        Response::Error { message, error_kind } => {
            let e = agent_refusal(error_kind, message);
            ExecEvent::Error { code: e.code.to_string(), message: e.message }
        }
        _ => return None,
    };
    let mut line = serde_json::to_vec(&event).expect("json");
    line.push(b'\n');
    Some(line)
}

/// Pumps an event stream from the agent into a channel, starting with `first`. Runs on its own
/// thread; `on_end` runs when the stream is over (unregistering it).
fn pump_events(mut conn: AgentConn, first: Response, on_end: impl FnOnce() + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    std::thread::spawn(move || {
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            let last = matches!(frame, Response::Exited { .. });
            if let Some(line) = event_line(frame) {
                if tx.blocking_send(line).is_err() {
                    break; // the client went away: dropping `conn` ends the agent stream
                }
            }
            if last {
                break;
            }
            next = match conn.recv() {
                Ok(f) => f,
                Err(e) => {
                    let ev = ExecEvent::Error { code: "internal".into(), message: format!("lost the sandbox agent: {e}") };
                    let mut line = serde_json::to_vec(&ev).expect("json");
                    line.push(b'\n');
                    let _ = tx.blocking_send(line);
                    None
                }
            };
        }
        on_end();
    });
    rx
}

/// Opens a stream to the sandbox's agent and reads its first frame: an `Error` there becomes
/// the HTTP answer; a dead agent marks the sandbox failed (409).
async fn open_stream(app: &Arc<App>, id: &str, key: &str, req: Request) -> Result<(AgentConn, Response), ApiError> {
    let node = app.node.clone();
    let id2 = id.to_string();
    let opened = tokio::task::spawn_blocking(move || -> Result<(AgentConn, Response), NodeError> {
        let mut conn = node.agent_stream(&id2, &req)?;
        let first = conn.recv()?.ok_or(NodeError::Agent(AgentError::NoAnswer))?;
        Ok((conn, first))
    })
    .await?;
    match opened {
        Ok((_, Response::Error { message, error_kind })) => Err(agent_refusal(error_kind, message)),
        Ok(x) => Ok(x),
        Err(e) => Err(crate::service::agent_failure(app, id, key, e).await),
    }
}

/// Starts a streaming exec; the first frame decides between an HTTP error and a stream.
pub async fn exec_stream(app: &Arc<App>, key: &str, req: ExecStreamRequest) -> Result<mpsc::Receiver<Vec<u8>>, ApiError> {
    if req.cmd.is_empty() {
        return Err(ApiError::unprocessable("`cmd` must not be empty"));
    }
    validate::env(&req.env).map_err(ApiError::unprocessable)?;
    if req.stdin.is_some() && req.stdin_base64.is_some() {
        return Err(ApiError::unprocessable("give `stdin` or `stdin_base64`, not both"));
    }
    if req.timeout_ms == Some(0) {
        return Err(ApiError::unprocessable("`timeout_ms` must be positive"));
    }
    let stdin = match (&req.stdin, &req.stdin_base64) {
        (Some(t), _) => Some(t.clone().into_bytes()),
        (_, Some(b)) => Some(decode_b64("stdin_base64", b)?),
        _ => None,
    };
    let id = running_sandbox(app, key)?;
    let background = req.background;
    let areq = Request::ExecStream(shoal_agent_proto::ExecStreamRequest {
        cmd: req.cmd,
        args: req.args,
        env: req.env,
        cwd: req.cwd,
        stdin,
        keep_stdin_open: req.keep_stdin_open,
        timeout_ms: req.timeout_ms,
        background,
        pty: req.pty.map(|p| shoal_agent_proto::PtySize { rows: p.rows, cols: p.cols }),
    });
    let (conn, first) = open_stream(app, &id, key, areq).await?;
    // Foreground processes take stdin/signals on their own connection: remember it by pid.
    let registered = match (&first, background) {
        (Response::Started { pid }, false) => {
            app.node.register_stream(&id, *pid, conn.sender());
            Some(*pid)
        }
        _ => None,
    };
    let node = app.node.clone();
    Ok(pump_events(conn, first, move || {
        if let Some(pid) = registered {
            node.unregister_stream(&id, pid);
        }
    }))
}

/// Reattaches to a background process's output (replaying what the ring buffer kept).
pub async fn attach(app: &Arc<App>, key: &str, pid: u32, from_start: bool) -> Result<mpsc::Receiver<Vec<u8>>, ApiError> {
    let id = running_sandbox(app, key)?;
    let (conn, first) = open_stream(app, &id, key, Request::Attach { pid, from_start }).await?;
    Ok(pump_events(conn, first, || {}))
}

pub async fn processes(app: &Arc<App>, key: &str) -> Result<Vec<ProcessInfo>, ApiError> {
    let id = running_sandbox(app, key)?;
    let node = app.node.clone();
    let r = tokio::task::spawn_blocking(move || node.agent_request(&id, &Request::ListProcesses)).await?.map_err(node_err)?;
    let Response::Processes { list } = r else { return Err(ApiError::internal("the agent answered ListProcesses out of turn")) };
    Ok(list
        .into_iter()
        .map(|p| ProcessInfo {
            pid: p.pid,
            cmd: p.cmd,
            args: p.args,
            started_at: crate::time::rfc3339_ms(p.started_at_ms as i64),
            running: p.running,
            exit_code: p.exit_code,
            signal: p.signal,
            timed_out: p.timed_out,
            pty: p.pty,
            output_bytes: p.output_bytes,
        })
        .collect())
}

async fn control(app: &Arc<App>, key: &str, pid: u32, frames: Vec<Request>) -> Result<(), ApiError> {
    let id = running_sandbox(app, key)?;
    let node = app.node.clone();
    tokio::task::spawn_blocking(move || frames.into_iter().try_for_each(|f| node.control_process(&id, pid, f))).await?.map_err(node_err)
}

pub async fn write_stdin(app: &Arc<App>, key: &str, pid: u32, w: StdinWrite) -> Result<(), ApiError> {
    let data = match (&w.data, &w.data_base64) {
        (Some(_), Some(_)) => return Err(ApiError::unprocessable("give `data` or `data_base64`, not both")),
        (Some(t), None) => Some(t.clone().into_bytes()),
        (None, Some(b)) => Some(decode_b64("data_base64", b)?),
        (None, None) => None,
    };
    if data.is_none() && !w.close {
        return Err(ApiError::unprocessable("nothing to do: give `data`, `data_base64` or `close: true`"));
    }
    let mut frames = Vec::new();
    if let Some(data) = data {
        frames.push(Request::Stdin { pid: None, data });
    }
    if w.close {
        frames.push(Request::CloseStdin { pid: None });
    }
    control(app, key, pid, frames).await
}

/// `SIGINT`, `INT`, `2`, … → the signal number (only signals that make sense for a process).
pub fn parse_signal(s: &str) -> Result<i32, ApiError> {
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => libc_sig::HUP,
        "INT" => libc_sig::INT,
        "QUIT" => libc_sig::QUIT,
        "KILL" => libc_sig::KILL,
        "USR1" => libc_sig::USR1,
        "USR2" => libc_sig::USR2,
        "TERM" => libc_sig::TERM,
        "CONT" => libc_sig::CONT,
        "STOP" => libc_sig::STOP,
        "WINCH" => libc_sig::WINCH,
        n => n.parse::<i32>().ok().filter(|n| (1..=64).contains(n)).ok_or_else(|| {
            ApiError::unprocessable(format!("unknown signal `{s}`: use SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 or a number"))
        })?,
    };
    Ok(n)
}

/// Linux signal numbers (x86_64 and aarch64 agree on these).
mod libc_sig {
    pub const HUP: i32 = 1;
    pub const INT: i32 = 2;
    pub const QUIT: i32 = 3;
    pub const KILL: i32 = 9;
    pub const USR1: i32 = 10;
    pub const USR2: i32 = 12;
    pub const TERM: i32 = 15;
    pub const CONT: i32 = 18;
    pub const STOP: i32 = 19;
    pub const WINCH: i32 = 28;
}

pub async fn signal(app: &Arc<App>, key: &str, pid: u32, signal: &str) -> Result<(), ApiError> {
    let signal = parse_signal(signal)?;
    control(app, key, pid, vec![Request::Signal { pid: None, signal }]).await
}

pub async fn resize(app: &Arc<App>, key: &str, pid: u32, rows: u16, cols: u16) -> Result<(), ApiError> {
    if rows == 0 || cols == 0 {
        return Err(ApiError::unprocessable("`rows` and `cols` must be positive"));
    }
    control(app, key, pid, vec![Request::Resize { pid: None, rows, cols }]).await
}

/// Kills a process (SIGKILL to its group) and drops it from the process table.
pub async fn kill(app: &Arc<App>, key: &str, pid: u32) -> Result<(), ApiError> {
    let id = running_sandbox(app, key)?;
    let node = app.node.clone();
    tokio::task::spawn_blocking(move || -> Result<(), NodeError> {
        let known = matches!(node.agent_request(&id, &Request::ListProcesses)?, Response::Processes { list } if list.iter().any(|p| p.pid == pid));
        let signalled = node.control_process(&id, pid, Request::Signal { pid: None, signal: libc_sig::KILL });
        if !known {
            return signalled; // a foreground exec, or a pid that does not exist (the error says so)
        }
        // Wait briefly for it to end so that it can be forgotten.
        for _ in 0..50 {
            match node.agent_request(&id, &Request::Forget { pid }) {
                Ok(_) => return Ok(()),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        Ok(())
    })
    .await?
    .map_err(node_err)
}

// ---------------------------------------------------------------- files

fn file_kind(k: shoal_agent_proto::FileKind) -> String {
    match k {
        shoal_agent_proto::FileKind::File => "file",
        shoal_agent_proto::FileKind::Dir => "dir",
        shoal_agent_proto::FileKind::Symlink => "symlink",
        shoal_agent_proto::FileKind::Other => "other",
    }
    .to_string()
}

pub fn check_path(path: &str) -> Result<(), ApiError> {
    if !path.starts_with('/') {
        return Err(ApiError::unprocessable(format!("path `{path}` must be absolute (paths are inside the sandbox)")));
    }
    if path.contains('\0') {
        return Err(ApiError::unprocessable("path contains a NUL byte"));
    }
    Ok(())
}

async fn file_request(app: &Arc<App>, key: &str, req: Request) -> Result<Response, ApiError> {
    let id = running_sandbox(app, key)?;
    let node = app.node.clone();
    let id2 = id.clone();
    match tokio::task::spawn_blocking(move || node.agent_request(&id2, &req)).await? {
        Ok(r) => Ok(r),
        Err(e) => Err(crate::service::agent_failure(app, &id, key, e).await),
    }
}

pub async fn stat(app: &Arc<App>, key: &str, path: &str) -> Result<FileInfo, ApiError> {
    check_path(path)?;
    match file_request(app, key, Request::Stat { path: path.to_string() }).await? {
        Response::Stat { file_kind: k, size, mode, mtime_ms } => Ok(FileInfo {
            name: path.rsplit('/').next().unwrap_or(path).to_string(),
            kind: file_kind(k),
            size,
            mode,
            modified_at: crate::time::rfc3339_ms(mtime_ms),
        }),
        _ => Err(ApiError::internal("the agent answered Stat out of turn")),
    }
}

pub async fn list(app: &Arc<App>, key: &str, path: &str) -> Result<Vec<FileInfo>, ApiError> {
    check_path(path)?;
    match file_request(app, key, Request::List { path: path.to_string() }).await? {
        Response::Entries { entries } => Ok(entries
            .into_iter()
            .map(|e| FileInfo { name: e.name, kind: file_kind(e.kind), size: e.size, mode: e.mode, modified_at: crate::time::rfc3339_ms(e.mtime_ms) })
            .collect()),
        _ => Err(ApiError::internal("the agent answered List out of turn")),
    }
}

pub async fn simple(app: &Arc<App>, key: &str, req: Request) -> Result<(), ApiError> {
    file_request(app, key, req).await.map(|_| ())
}

/// A download (file or tar): the first frame decides between an HTTP error and a body.
pub async fn download(app: &Arc<App>, key: &str, req: Request) -> Result<mpsc::Receiver<std::io::Result<Vec<u8>>>, ApiError> {
    let id = running_sandbox(app, key)?;
    let (mut conn, first) = open_stream(app, &id, key, req).await?;
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(CHANNEL_DEPTH);
    std::thread::spawn(move || {
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            match frame {
                Response::Data { data } => {
                    if tx.blocking_send(Ok(data)).is_err() {
                        return;
                    }
                }
                Response::Done { .. } => return,
                // An error after some data: abort the body, so that the client sees a broken
                // transfer instead of a short file.
                other => {
                    let why = match other {
                        Response::Error { message, .. } => message,
                        _ => "the sandbox agent stopped sending".to_string(),
                    };
                    let _ = tx.blocking_send(Err(std::io::Error::other(why)));
                    return;
                }
            }
            next = match conn.recv() {
                Ok(Some(f)) => Some(f),
                Ok(None) => Some(Response::Error { message: "the sandbox agent closed the transfer early".into(), error_kind: Default::default() }),
                Err(e) => Some(Response::Error { message: e.to_string(), error_kind: Default::default() }),
            };
        }
    });
    Ok(rx)
}

/// An upload (file or tar): body chunks become `Data` frames, then `End`; answers the agent's
/// verdict.
pub async fn upload(app: &Arc<App>, key: &str, req: Request, body: axum::body::Body) -> Result<u64, ApiError> {
    use tokio_stream::StreamExt;
    let id = running_sandbox(app, key)?;
    let node = app.node.clone();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let writer = tokio::task::spawn_blocking(move || -> Result<Response, NodeError> {
        let mut conn = node.agent_stream(&id, &req)?;
        let sender = conn.sender();
        let mut failed = false;
        while let Some(chunk) = rx.blocking_recv() {
            for piece in chunk.chunks(shoal_agent_proto::DATA_CHUNK_BYTES) {
                // After an early `Error` the agent discards frames up to `End`; a write error
                // means it closed: stop sending and read its verdict.
                if !failed && sender.send(&Request::Data { data: piece.to_vec() }).is_err() {
                    failed = true;
                }
            }
        }
        if !failed {
            sender.send(&Request::End)?;
        }
        conn.recv()?.ok_or(NodeError::Agent(AgentError::NoAnswer))
    });
    let mut stream = body.into_data_stream();
    let mut body_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if tx.send(bytes.to_vec()).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let verdict = writer.await?.map_err(node_err)?;
    if let Some(e) = body_error {
        return Err(ApiError::bad_request(format!("reading the request body: {e}")));
    }
    match verdict {
        Response::Ok { bytes } => Ok(bytes.unwrap_or(0)),
        Response::Error { message, error_kind } => Err(agent_refusal(error_kind, message)),
        _ => Err(ApiError::internal("the agent answered an upload out of turn")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGINT").unwrap(), 2);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn agent_frames_become_events() {
        let line = event_line(Response::Output { stream: OutputStream::Stderr, data: vec![0xff, 0], offset: None }).unwrap();
        assert_eq!(String::from_utf8(line).unwrap(), "{\"type\":\"stderr\",\"data\":\"/wA=\"}\n");
        let line = event_line(Response::Exited { exit_code: 0, signal: None, timed_out: false, duration_ms: 5 }).unwrap();
        assert_eq!(String::from_utf8(line).unwrap(), "{\"type\":\"exit\",\"exit_code\":0,\"signal\":null,\"timed_out\":false,\"duration_ms\":5}\n");
        assert!(event_line(Response::Done { size: 1 }).is_none());
    }
}
