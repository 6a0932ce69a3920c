//! The unix-socket server: one thread per connection, one request and one response each.

use std::io::{self, BufReader};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shoal_agent_proto::{read_frame, write_frame, Request, Response, PROTOCOL_VERSION};

use crate::exec;

/// A client that connects but never sends a full request line gets dropped after this.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(60);

pub const AGENT_NAME: &str = concat!("shoal-agent ", env!("CARGO_PKG_VERSION"));

/// What every connection needs.
pub struct Agent {
    /// Environment commands start from (see `exec::base_env`).
    pub base_env: exec::Env,
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

/// Serve one connection: read one request, write one response, close.
pub fn handle(stream: UnixStream, agent: &Agent) {
    let _ = stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
    let request = read_frame::<_, Request>(&mut BufReader::new(&stream));
    let response = match request {
        Ok(None) => return, // client hung up without asking anything
        Ok(Some(req)) => respond(req, agent),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Response::Error {
            message: format!("malformed request: {e}"),
        },
        Err(e) => Response::Error {
            message: format!("cannot read request: {e}"),
        },
    };
    // If the client is gone there is no one to tell.
    let _ = write_frame(&mut &stream, &response);
}

fn respond(req: Request, agent: &Agent) -> Response {
    match req {
        Request::Ping => Response::Pong {
            version: PROTOCOL_VERSION,
            agent: AGENT_NAME.into(),
        },
        Request::Exec(req) => match exec::run(&req, &agent.base_env) {
            Ok(result) => Response::Exec(result),
            Err(message) => Response::Error { message },
        },
    }
}
