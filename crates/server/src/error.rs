//! The one place where errors become HTTP answers: `{"error":{"code","message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use shoal_api::{ErrorBody, ErrorDetail};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", m)
    }
    pub fn unprocessable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message } };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl From<shoal_node::NodeError> for ApiError {
    fn from(e: shoal_node::NodeError) -> Self {
        use shoal_node::images::ImageError;
        use shoal_node::NodeError as N;
        match &e {
            N::Image(ImageError::NotFound(..)) => ApiError::unprocessable(e.to_string()),
            N::Image(ImageError::InvalidRef(..)) => ApiError::unprocessable(e.to_string()),
            N::NotRunning(_) => ApiError::conflict(e.to_string()),
            N::Agent(shoal_node::agent_client::AgentError::Refused(kind, m)) => agent_refusal(*kind, m.clone()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// The agent's error kinds as HTTP answers.
pub fn agent_refusal(kind: shoal_agent_proto::ErrorKind, message: String) -> ApiError {
    use shoal_agent_proto::ErrorKind as K;
    match kind {
        K::NotFound => ApiError::not_found(message),
        K::PermissionDenied => ApiError::new(StatusCode::FORBIDDEN, "permission_denied", message),
        K::Exists => ApiError::conflict(message),
        K::Invalid | K::Other => ApiError::unprocessable(message),
        // fork() failing with EAGAIN inside a sandbox means its pids limit is reached: that is
        // the sandbox being full, not a server fault.
        K::Io if message.contains("resource temporarily unavailable") => ApiError::unavailable(format!(
            "{message}: the sandbox is at its process limit (its shape's pids limit); wait for processes to end or use a larger shape"
        )),
        K::Io => ApiError::internal(message),
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("node task failed: {e}"))
    }
}
