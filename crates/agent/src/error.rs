//! Request-level failures: a kind the node can act on and a message for people.

use std::io;

use shoal_agent_proto::{ErrorKind, Response};

#[derive(Debug, Clone, PartialEq)]
pub struct AgentError {
    pub kind: ErrorKind,
    pub message: String,
}

pub type AgentResult<T> = Result<T, AgentError>;

impl AgentError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AgentError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// `"{context}: {what the system said}"`, with the kind derived from the error.
    pub fn io(context: impl std::fmt::Display, err: &io::Error) -> Self {
        Self::new(kind_of(err), format!("{context}: {}", describe(err)))
    }
}

impl From<AgentError> for Response {
    fn from(e: AgentError) -> Response {
        Response::error(e.kind, e.message)
    }
}

/// The protocol's error kind for a system error.
pub fn kind_of(err: &io::Error) -> ErrorKind {
    match err.raw_os_error() {
        Some(libc::ENOENT) => ErrorKind::NotFound,
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => ErrorKind::PermissionDenied,
        Some(libc::EEXIST) => ErrorKind::Exists,
        Some(
            libc::ENOTDIR
            | libc::EISDIR
            | libc::ENOTEMPTY
            | libc::EINVAL
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::EXDEV
            | libc::EBUSY,
        ) => ErrorKind::Invalid,
        Some(_) => ErrorKind::Io,
        None => match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::AlreadyExists => ErrorKind::Exists,
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => ErrorKind::Invalid,
            _ => ErrorKind::Io,
        },
    }
}

/// The system's description of an error without std's " (os error N)" suffix, lower-cased
/// first letter so it reads well after a colon ("cannot open /x: no such file or directory").
pub fn describe(err: &io::Error) -> String {
    let s = err.to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) if err.raw_os_error().is_some() => s[..i].to_string(),
        _ => s,
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if chars.clone().next().is_some_and(|n| n.is_lowercase()) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_kind_and_message() {
        let e = AgentError::io(
            "cannot open /x",
            &io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(e.message, "cannot open /x: no such file or directory");
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(kind_of(&e), ErrorKind::PermissionDenied);
        assert_eq!(
            kind_of(&io::Error::from_raw_os_error(libc::EEXIST)),
            ErrorKind::Exists
        );
        assert_eq!(
            kind_of(&io::Error::from_raw_os_error(libc::ENOTEMPTY)),
            ErrorKind::Invalid
        );
        assert_eq!(
            kind_of(&io::Error::from_raw_os_error(libc::ENOSPC)),
            ErrorKind::Io
        );
    }
}
