//! API keys: random 32-byte secrets shown once, stored only as SHA-256 hashes.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::App;

pub const KEY_PREFIX: &str = "shoal_";

pub fn generate_key() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{KEY_PREFIX}{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|x| format!("{x:02x}")).collect()
}

/// Accepts `Authorization: Bearer <key>` (or `X-Api-Key: <key>`).
pub async fn require_key(State(app): State<std::sync::Arc<App>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    // The scheme is case-insensitive (RFC 9110 11.1).
    let key = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, k)| k))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(key) = key else {
        return ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>` (the key `shoal up` printed; the CLI and SDKs read it from SHOAL_API_KEY or the client config file)").into_response();
    };
    let known = app.store.lock().unwrap().has_api_key(&hash_key(key.trim()));
    match known {
        Ok(true) => next.run(req).await,
        Ok(false) => ApiError::unauthorized("unknown API key: use the key `shoal up` printed on first start (the client config file it wrote holds it)").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
