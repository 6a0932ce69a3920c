//! The node's side of the agent protocol, over the sandbox's unix socket.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_agent_proto::{read_frame, write_frame, ErrorKind, ExecRequest, ExecResult, Request, Response, HEARTBEAT_INTERVAL_MS, PROTOCOL_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the sandbox agent is not reachable at {path}: {source}")]
    Unreachable { path: String, source: std::io::Error },
    #[error("the sandbox agent closed the connection without answering (did the sandbox stop?)")]
    NoAnswer,
    #[error("talking to the sandbox agent: {0}")]
    Io(#[from] std::io::Error),
    /// The agent answered `Error`: the request could not be done (kind says why).
    #[error("{1}")]
    Refused(ErrorKind, String),
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
        Response::Error { message, error_kind } => Err(AgentError::Refused(error_kind, message)),
        other => Err(AgentError::Unexpected(Box::new(other))),
    }
}

/// A one-request, one-answer call (stat, list, mkdir, stdin to a background process, ...);
/// an `Error` answer becomes `AgentError::Refused`.
pub fn request(socket: &Path, req: &Request) -> Result<Response, AgentError> {
    match call(socket, req, Duration::from_secs(60))? {
        Response::Error { message, error_kind } => Err(AgentError::Refused(error_kind, message)),
        other => Ok(other),
    }
}

/// A long-lived connection: one request, then frames both ways (streams, uploads).
pub struct AgentConn {
    read: BufReader<UnixStream>,
    write: AgentSender,
}

/// The sending half of an `AgentConn`, shareable with whoever controls the stream (stdin,
/// signals, resize arrive from other HTTP requests).
#[derive(Clone)]
pub struct AgentSender(Arc<Mutex<UnixStream>>);

impl AgentSender {
    pub fn send(&self, req: &Request) -> Result<(), AgentError> {
        let mut w = self.0.lock().unwrap();
        write_frame(&mut *w, req)?;
        Ok(())
    }
    /// Half-closes the connection (the agent sees the end of the client's frames).
    pub fn shutdown_write(&self) {
        let _ = self.0.lock().unwrap().shutdown(std::net::Shutdown::Write);
    }
}

impl AgentConn {
    pub fn open(socket: &Path, first: &Request) -> Result<AgentConn, AgentError> {
        let stream = UnixStream::connect(socket)
            .map_err(|source| AgentError::Unreachable { path: socket.display().to_string(), source })?;
        // Streams send a heartbeat every few seconds: silence far beyond that means trouble.
        stream.set_read_timeout(Some(Duration::from_millis(HEARTBEAT_INTERVAL_MS * 6)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let write = AgentSender(Arc::new(Mutex::new(stream.try_clone()?)));
        write.send(first)?;
        Ok(AgentConn { read: BufReader::new(stream), write })
    }

    /// The next frame from the agent; `None` when it closed the connection.
    pub fn recv(&mut self) -> Result<Option<Response>, AgentError> {
        Ok(read_frame(&mut self.read)?)
    }

    pub fn sender(&self) -> AgentSender {
        self.write.clone()
    }
}
