//! The unix-socket server: one thread per connection, one request each (answered by one
//! frame, or a stream of frames for exec streams, attach, downloads and uploads).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shoal_agent_proto::{
    write_frame, ErrorKind, Request, Response, FEATURES, HEARTBEAT_INTERVAL_MS, PROTOCOL_VERSION,
    RING_BUFFER_BYTES,
};

use crate::conn::FrameReader;
use crate::{background, exec, files, stream};

/// A client that connects but never sends a full request line gets dropped after this.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(60);

pub const AGENT_NAME: &str = concat!("shoal-agent ", env!("CARGO_PKG_VERSION"));

/// What every connection needs.
pub struct Agent {
    /// Environment commands start from (see `exec::base_env`).
    pub base_env: exec::Env,
    /// Streams send a heartbeat after this long without output.
    pub heartbeat: Duration,
    /// Output ring buffer size of each background process.
    pub ring_bytes: usize,
    pub procs: Arc<background::Table>,
}

impl Agent {
    pub fn new(base_env: exec::Env) -> Agent {
        Agent {
            base_env,
            heartbeat: Duration::from_millis(HEARTBEAT_INTERVAL_MS),
            ring_bytes: RING_BUFFER_BYTES,
            procs: Arc::default(),
        }
    }
}

/// Listen on `path`: replace a stale socket left by an earlier run, owner-only access.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        // Only remove sockets; anything else there is a mistake we should not paper over.
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        _ => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accept connections forever, each on its own thread (a long command never blocks others).
pub fn serve(listener: UnixListener, agent: Arc<Agent>) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let agent = agent.clone();
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || handle(stream, &agent));
                if let Err(e) = spawned {
                    eprintln!("shoal-agent: cannot start connection thread: {e}");
                }
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning, and keep serving.
                eprintln!("shoal-agent: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Serve one connection: read the request, answer it (one frame, or a stream), close.
pub fn handle(stream: UnixStream, agent: &Agent) {
    let _ = stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
    let mut reader = FrameReader::new(&stream);
    let req = match reader.next() {
        Ok(None) => return, // client hung up without asking anything
        Ok(Some(Ok(req))) => req,
        Ok(Some(Err(message))) => {
            return reply(&stream, Response::error(ErrorKind::Invalid, message))
        }
        Err(e) => {
            let kind = if e.kind() == io::ErrorKind::InvalidData {
                ErrorKind::Invalid
            } else {
                ErrorKind::Io
            };
            return reply(
                &stream,
                Response::error(kind, format!("cannot read request: {e}")),
            );
        }
    };
    let response = match req {
        Request::ExecStream(req) => return stream::exec_stream(&stream, reader, agent, req),
        Request::Attach { pid, from_start } => {
            return stream::attach(&stream, reader, agent, pid, from_start)
        }
        Request::ReadFile { path, offset, len } => {
            return files::read_file(&stream, &path, offset, len)
        }
        Request::TarDownload { path } => return files::tar_download(&stream, &path),
        Request::WriteFile { path, mode, append } => {
            return files::write_file(&stream, reader, &path, mode, append)
        }
        Request::TarUpload { path } => return files::tar_upload(&stream, reader, &path),
        Request::Ping => Response::Pong {
            version: PROTOCOL_VERSION,
            agent: AGENT_NAME.into(),
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
        },
        Request::Exec(req) => match exec::run(&req, &agent.base_env) {
            Ok(result) => Response::Exec(result),
            Err(e) => e.into(),
        },
        req @ (Request::Stdin { .. }
        | Request::CloseStdin { .. }
        | Request::Signal { .. }
        | Request::Resize { .. }) => stream::control(agent, req),
        Request::ListProcesses => Response::Processes {
            list: agent.procs.list(),
        },
        Request::Forget { pid } => match agent.procs.forget(pid) {
            Ok(()) => Response::Ok { bytes: None },
            Err(e) => e.into(),
        },
        Request::Stat { path } => files::stat(&path),
        Request::List { path } => files::list(&path),
        Request::Mkdir { path, parents } => files::mkdir(&path, parents),
        Request::Remove { path, recursive } => files::remove(&path, recursive),
        Request::Rename { from, to } => files::rename(&from, &to),
        req @ (Request::Data { .. } | Request::End) => Response::error(
            ErrorKind::Invalid,
            format!("{} only follows write_file or tar_upload", op_name(&req)),
        ),
    };
    reply(&stream, response)
}

/// Answer with one frame. If the client is gone there is no one to tell.
fn reply(stream: &UnixStream, response: Response) {
    let _ = write_frame(&mut &*stream, &response);
}

/// A request's `op` on the wire (for messages).
pub fn op_name(req: &Request) -> &'static str {
    match req {
        Request::Ping => "ping",
        Request::Exec(_) => "exec",
        Request::ExecStream(_) => "exec_stream",
        Request::Stdin { .. } => "stdin",
        Request::CloseStdin { .. } => "close_stdin",
        Request::Signal { .. } => "signal",
        Request::Resize { .. } => "resize",
        Request::ListProcesses => "list_processes",
        Request::Attach { .. } => "attach",
        Request::Forget { .. } => "forget",
        Request::ReadFile { .. } => "read_file",
        Request::WriteFile { .. } => "write_file",
        Request::Data { .. } => "data",
        Request::End => "end",
        Request::Stat { .. } => "stat",
        Request::List { .. } => "list",
        Request::Mkdir { .. } => "mkdir",
        Request::Remove { .. } => "remove",
        Request::Rename { .. } => "rename",
        Request::TarDownload { .. } => "tar_download",
        Request::TarUpload { .. } => "tar_upload",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_match_the_wire() {
        let reqs = [
            Request::Ping,
            Request::ExecStream(Default::default()),
            Request::CloseStdin { pid: None },
            Request::ListProcesses,
            Request::TarDownload { path: "/".into() },
            Request::End,
        ];
        for req in reqs {
            let wire = serde_json::to_value(&req).unwrap();
            assert_eq!(wire["op"], op_name(&req));
        }
    }
}
