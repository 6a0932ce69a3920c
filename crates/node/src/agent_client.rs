//! The node's side of the agent protocol, over the sandbox's unix socket.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use shoal_agent_proto::{read_frame, write_frame, ExecRequest, ExecResult, Request, Response, PROTOCOL_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the sandbox agent is not reachable at {path}: {source}")]
    Unreachable { path: String, source: std::io::Error },
    #[error("the sandbox agent closed the connection without answering (did the sandbox stop?)")]
    NoAnswer,
    #[error("talking to the sandbox agent: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
    #[error("the sandbox agent speaks protocol {0}, this node speaks {PROTOCOL_VERSION}: rebuild shoal-agent")]
    Version(u32),
    #[error("the sandbox agent answered out of turn: {0:?}")]
    Unexpected(Box<Response>),
}

fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, AgentError> {
    let stream = UnixStream::connect(socket)
        .map_err(|source| AgentError::Unreachable { path: socket.display().to_string(), source })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut w = &stream;
    write_frame(&mut w, req)?;
    let mut r = BufReader::new(&stream);
    read_frame(&mut r)?.ok_or(AgentError::NoAnswer)
}

pub fn ping(socket: &Path) -> Result<(), AgentError> {
    match call(socket, &Request::Ping, Duration::from_secs(5))? {
        Response::Pong { version, .. } if version == PROTOCOL_VERSION => Ok(()),
        Response::Pong { version, .. } => Err(AgentError::Version(version)),
        other => Err(AgentError::Unexpected(Box::new(other))),
    }
}

pub fn exec(socket: &Path, req: ExecRequest) -> Result<ExecResult, AgentError> {
    // The agent enforces the command timeout itself; the socket waits a little longer.
    let wait = Duration::from_millis(req.timeout_ms.unwrap_or(3_600_000)) + Duration::from_secs(10);
    match call(socket, &Request::Exec(req), wait)? {
        Response::Exec(r) => Ok(r),
        Response::Error { message, .. } => Err(AgentError::Refused(message)),
        other => Err(AgentError::Unexpected(Box::new(other))),
    }
}
