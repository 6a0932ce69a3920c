//! HTTP API v1 routes. Handlers are thin: parse, call `service`, answer JSON.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use shoal_api::{ExecRequest, ImageList, NetworkCreate, NetworkList, SandboxCreate, SandboxList, ShapeList};

use crate::error::ApiError;
use crate::{auth, service, streams, App};

type AppState = State<Arc<App>>;
type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections are answered in the API's own error format.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::unprocessable(format!("invalid request body: {}", e.body_text()))),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_argument", format!("request body too large: {}", e.body_text())))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_argument", "send the body as JSON with `Content-Type: application/json`"))
            }
            Err(e) => Err(ApiError::bad_request(format!("invalid request body: {}", e.body_text()))),
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    let v1 = Router::new()
        .route("/networks", get(list_networks).post(create_network))
        .route("/networks/{key}", get(get_network).delete(delete_network))
        .route("/networks/{key}/members", get(members))
        .route("/sandboxes", get(list_sandboxes).post(create_sandbox))
        .route("/sandboxes/{key}", get(get_sandbox).delete(delete_sandbox))
        .route("/sandboxes/{key}/exec", post(exec))
        .route("/sandboxes/{key}/networks", post(attach))
        .route("/sandboxes/{key}/exec/stream", post(exec_stream))
        .route("/sandboxes/{key}/processes", get(processes))
        .route("/sandboxes/{key}/processes/{pid}", axum::routing::delete(kill))
        .route("/sandboxes/{key}/processes/{pid}/output", get(attach_output))
        .route("/sandboxes/{key}/processes/{pid}/stdin", post(stdin))
        .route("/sandboxes/{key}/processes/{pid}/signal", post(signal))
        .route("/sandboxes/{key}/processes/{pid}/resize", post(resize))
        .route("/sandboxes/{key}/files", get(list_files).delete(remove_file))
        .route("/sandboxes/{key}/files/stat", get(stat_file))
        .route("/sandboxes/{key}/files/content", get(read_file).put(write_file))
        .route("/sandboxes/{key}/files/mkdir", post(mkdir))
        .route("/sandboxes/{key}/files/rename", post(rename))
        .route("/sandboxes/{key}/files/tar", get(tar_download).put(tar_upload))
        .route("/sandboxes/{key}/stop", post(stop))
        .route("/sandboxes/{key}/start", post(start))
        .route("/sandboxes/{key}/timeout", post(set_timeout))
        .route("/sandboxes/{key}/logs", get(logs))
        .route("/sandboxes/{key}/metrics", get(metrics))
        .route("/sandboxes/{key}/networks/{net}", axum::routing::delete(detach))
        .route("/shapes", get(shapes))
        .route("/images", get(images))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), auth::require_key));
    Router::new()
        .route("/v1/openapi.json", get(openapi_json))
        .nest("/v1", v1)
        .route("/healthz", get(health))
        .fallback(not_found)
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: the API lives under /v1 (see docs/api.md)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method (see docs/api.md)")
}

#[utoipa::path(get, path = "/v1/health", tag = "meta", operation_id = "health", summary = "Liveness and version", responses((status = 200, description = "the server is up", body = shoal_api::Health)))]
async fn health() -> Json<shoal_api::Health> {
    Json(shoal_api::Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

#[utoipa::path(get, path = "/v1/networks", tag = "networks", operation_id = "list_networks", summary = "List networks with their members", responses((status = 200, description = "all networks", body = shoal_api::NetworkList), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn list_networks(State(app): AppState) -> ApiResult<Json<NetworkList>> {
    Ok(Json(NetworkList { networks: service::list_networks(&app)? }))
}

#[utoipa::path(post, path = "/v1/networks", tag = "networks", operation_id = "create_network", summary = "Create a private network (CIDR from the pool unless given)", request_body = shoal_api::NetworkCreate, responses((status = 201, description = "created", body = shoal_api::Network), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn create_network(State(app): AppState, Body(req): Body<NetworkCreate>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(service::create_network(&app, req).await?)))
}

#[utoipa::path(get, path = "/v1/networks/{key}", tag = "networks", operation_id = "get_network", summary = "A network and its members", params(("key" = String, Path, description = "network id or name")), responses((status = 200, description = "the network", body = shoal_api::Network), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn get_network(State(app): AppState, Path(key): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::get_network(&app, &key)?))
}

fn flag(q: &HashMap<String, String>, name: &str) -> ApiResult<bool> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("`{name}` must be true or false, not `{other}`"))),
    }
}

#[utoipa::path(delete, path = "/v1/networks/{key}", tag = "networks", operation_id = "delete_network", summary = "Delete a network (refused with members unless force=true, which detaches them)", params(("key" = String, Path, description = "network id or name"), ("force" = Option<bool>, Query, description = "detach members first")), responses((status = 204, description = "deleted"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn delete_network(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<StatusCode> {
    service::delete_network(&app, &key, flag(&q, "force")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/networks/{key}/members", tag = "networks", operation_id = "members", summary = "Members of a network (address, MAC, DNS name, state)", params(("key" = String, Path, description = "network id or name")), responses((status = 200, description = "members", body = shoal_api::MemberList), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn members(State(app): AppState, Path(key): Path<String>) -> ApiResult<Json<shoal_api::MemberList>> {
    Ok(Json(shoal_api::MemberList { members: service::members(&app, &key)? }))
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/networks", tag = "sandboxes", operation_id = "attach", summary = "Attach a running sandbox to a network", params(("key" = String, Path, description = "sandbox id or name")), request_body = shoal_api::NetworkRef, responses((status = 200, description = "the sandbox with its new interface", body = shoal_api::Sandbox), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn attach(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::NetworkRef>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::attach(&app, &key, req).await?))
}

#[utoipa::path(delete, path = "/v1/sandboxes/{key}/networks/{net}", tag = "sandboxes", operation_id = "detach", summary = "Detach a sandbox from a network", params(("key" = String, Path, description = "sandbox id or name"), ("net" = String, Path, description = "network id or name")), responses((status = 200, description = "the sandbox without that interface", body = shoal_api::Sandbox), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn detach(State(app): AppState, Path((key, net)): Path<(String, String)>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::detach(&app, &key, &net).await?))
}

// ---------------------------------------------------------------- streams, processes, files

fn streamed(rx: tokio::sync::mpsc::Receiver<Vec<u8>>, content_type: &'static str) -> axum::response::Response {
    use tokio_stream::StreamExt;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    ([(axum::http::header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(stream)).into_response()
}

/// A download body; an error item aborts the transfer (the client sees it as broken).
fn streamed_fallible(rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>, content_type: &'static str) -> axum::response::Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    ([(axum::http::header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(stream)).into_response()
}

fn query_path(q: &HashMap<String, String>) -> ApiResult<String> {
    let p = q.get("path").ok_or_else(|| ApiError::bad_request("missing `?path=` (an absolute path inside the sandbox)"))?;
    streams::check_path(p)?;
    Ok(p.clone())
}

fn query_u64(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<u64>> {
    q.get(name).map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("`{name}` must be a non-negative number, not `{v}`")))).transpose()
}

fn pid_of(s: &str) -> ApiResult<u32> {
    s.parse().map_err(|_| ApiError::bad_request(format!("`{s}` is not a process id")))
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/exec/stream", tag = "exec", operation_id = "exec_stream", summary = "Run a command and stream its output as NDJSON ExecEvent lines", params(("key" = String, Path, description = "sandbox id or name")), request_body = shoal_api::ExecStreamRequest, responses((status = 200, description = "application/x-ndjson stream of ExecEvent lines", body = shoal_api::ExecEvent, content_type = "application/x-ndjson"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn exec_stream(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::ExecStreamRequest>) -> ApiResult<axum::response::Response> {
    Ok(streamed(streams::exec_stream(&app, &key, req).await?, "application/x-ndjson"))
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/processes", tag = "exec", operation_id = "processes", summary = "Background processes (running and finished)", params(("key" = String, Path, description = "sandbox id or name")), responses((status = 200, description = "processes", body = shoal_api::ProcessList), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn processes(State(app): AppState, Path(key): Path<String>) -> ApiResult<Json<shoal_api::ProcessList>> {
    Ok(Json(shoal_api::ProcessList { processes: streams::processes(&app, &key).await? }))
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/processes/{pid}/output", tag = "exec", operation_id = "attach_output", summary = "Follow a background process output (NDJSON), optionally replaying the ring buffer", params(("key" = String, Path, description = "sandbox id or name"), ("pid" = u32, Path, description = "process id inside the sandbox"), ("from_start" = Option<bool>, Query, description = "replay kept output first")), responses((status = 200, description = "application/x-ndjson stream of ExecEvent lines", body = shoal_api::ExecEvent, content_type = "application/x-ndjson"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn attach_output(State(app): AppState, Path((key, pid)): Path<(String, String)>, Query(q): Query<HashMap<String, String>>) -> ApiResult<axum::response::Response> {
    let from_start = flag(&q, "from_start")?;
    Ok(streamed(streams::attach(&app, &key, pid_of(&pid)?, from_start).await?, "application/x-ndjson"))
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/processes/{pid}/stdin", tag = "exec", operation_id = "stdin", summary = "Write to (or close) a process stdin", params(("key" = String, Path, description = "sandbox id or name"), ("pid" = u32, Path, description = "process id inside the sandbox")), request_body = shoal_api::StdinWrite, responses((status = 204, description = "written"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn stdin(State(app): AppState, Path((key, pid)): Path<(String, String)>, Body(req): Body<shoal_api::StdinWrite>) -> ApiResult<StatusCode> {
    streams::write_stdin(&app, &key, pid_of(&pid)?, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/processes/{pid}/signal", tag = "exec", operation_id = "signal", summary = "Send a signal to a process group", params(("key" = String, Path, description = "sandbox id or name"), ("pid" = u32, Path, description = "process id inside the sandbox")), request_body = shoal_api::SignalRequest, responses((status = 204, description = "sent"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn signal(State(app): AppState, Path((key, pid)): Path<(String, String)>, Body(req): Body<shoal_api::SignalRequest>) -> ApiResult<StatusCode> {
    streams::signal(&app, &key, pid_of(&pid)?, &req.signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/processes/{pid}/resize", tag = "exec", operation_id = "resize", summary = "Resize a process pty", params(("key" = String, Path, description = "sandbox id or name"), ("pid" = u32, Path, description = "process id inside the sandbox")), request_body = shoal_api::ResizeRequest, responses((status = 204, description = "resized"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn resize(State(app): AppState, Path((key, pid)): Path<(String, String)>, Body(req): Body<shoal_api::ResizeRequest>) -> ApiResult<StatusCode> {
    streams::resize(&app, &key, pid_of(&pid)?, req.rows, req.cols).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/sandboxes/{key}/processes/{pid}", tag = "exec", operation_id = "kill", summary = "Kill a process (SIGKILL to its group) and forget it", params(("key" = String, Path, description = "sandbox id or name"), ("pid" = u32, Path, description = "process id inside the sandbox")), responses((status = 204, description = "killed"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn kill(State(app): AppState, Path((key, pid)): Path<(String, String)>) -> ApiResult<StatusCode> {
    streams::kill(&app, &key, pid_of(&pid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/files", tag = "files", operation_id = "list_files", summary = "List a directory", params(("key" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox")), responses((status = 200, description = "entries", body = shoal_api::FileList), (status = 403, description = "permission denied", body = shoal_api::ErrorBody), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn list_files(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<shoal_api::FileList>> {
    let path = query_path(&q)?;
    let entries = streams::list(&app, &key, &path).await?;
    Ok(Json(shoal_api::FileList { path, entries }))
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/files/stat", tag = "files", operation_id = "stat_file", summary = "Kind, size, mode and modification time of a path", params(("key" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox")), responses((status = 200, description = "the path", body = shoal_api::FileInfo), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn stat_file(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<shoal_api::FileInfo>> {
    Ok(Json(streams::stat(&app, &key, &query_path(&q)?).await?))
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/files/content", tag = "files", operation_id = "read_file", summary = "Download a file (streamed)", params(("key" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox"), ("offset" = Option<u64>, Query, description = "start here"), ("len" = Option<u64>, Query, description = "at most this many bytes")), responses((status = 200, description = "the bytes", content_type = "application/octet-stream"), (status = 403, description = "permission denied", body = shoal_api::ErrorBody), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn read_file(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<axum::response::Response> {
    let req = shoal_agent_proto::Request::ReadFile { path: query_path(&q)?, offset: query_u64(&q, "offset")?.unwrap_or(0), len: query_u64(&q, "len")? };
    Ok(streamed_fallible(streams::download(&app, &key, req).await?, "application/octet-stream"))
}

#[utoipa::path(put, path = "/v1/sandboxes/{key}/files/content", tag = "files", operation_id = "write_file", summary = "Upload a file (streamed; replaced atomically unless append)", params(("key" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox"), ("mode" = Option<String>, Query, description = "octal permission bits, e.g. 755"), ("append" = Option<bool>, Query, description = "append instead of replace")), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, description = "written", body = shoal_api::WriteResult), (status = 403, description = "permission denied", body = shoal_api::ErrorBody), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn write_file(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>, body: axum::body::Body) -> ApiResult<Json<shoal_api::WriteResult>> {
    let mode = match q.get("mode") {
        None => None,
        Some(m) => Some(u32::from_str_radix(m.trim_start_matches("0o"), 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
            ApiError::bad_request(format!("`mode` must be octal permission bits like 644 or 0755, not `{m}`"))
        })?),
    };
    let req = shoal_agent_proto::Request::WriteFile { path: query_path(&q)?, mode, append: flag(&q, "append")? };
    Ok(Json(shoal_api::WriteResult { bytes: streams::upload(&app, &key, req, body).await? }))
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/files/mkdir", tag = "files", operation_id = "mkdir", summary = "Create a directory", params(("key" = String, Path, description = "sandbox id or name")), request_body = shoal_api::MkdirRequest, responses((status = 204, description = "created"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn mkdir(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::MkdirRequest>) -> ApiResult<StatusCode> {
    streams::check_path(&req.path)?;
    streams::simple(&app, &key, shoal_agent_proto::Request::Mkdir { path: req.path, parents: req.parents }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/sandboxes/{key}/files", tag = "files", operation_id = "remove_file", summary = "Remove a file or directory tree", params(("key" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox"), ("recursive" = Option<bool>, Query, description = "remove a non-empty directory")), responses((status = 204, description = "removed"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn remove_file(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<StatusCode> {
    let req = shoal_agent_proto::Request::Remove { path: query_path(&q)?, recursive: flag(&q, "recursive")? };
    streams::simple(&app, &key, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/files/rename", tag = "files", operation_id = "rename", summary = "Rename within the sandbox", params(("key" = String, Path, description = "sandbox id or name")), request_body = shoal_api::RenameRequest, responses((status = 204, description = "renamed"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn rename(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::RenameRequest>) -> ApiResult<StatusCode> {
    streams::check_path(&req.from)?;
    streams::check_path(&req.to)?;
    streams::simple(&app, &key, shoal_agent_proto::Request::Rename { from: req.from, to: req.to }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/files/tar", tag = "files", operation_id = "tar_download", summary = "Download a directory as a tar stream", params(("key" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox")), responses((status = 200, description = "ustar archive", content_type = "application/x-tar"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn tar_download(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<axum::response::Response> {
    let req = shoal_agent_proto::Request::TarDownload { path: query_path(&q)? };
    Ok(streamed_fallible(streams::download(&app, &key, req).await?, "application/x-tar"))
}

#[utoipa::path(put, path = "/v1/sandboxes/{key}/files/tar", tag = "files", operation_id = "tar_upload", summary = "Upload a tar stream and extract it into a directory", params(("key" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox")), request_body(content = Vec<u8>, content_type = "application/x-tar"), responses((status = 200, description = "extracted", body = shoal_api::WriteResult), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn tar_upload(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>, body: axum::body::Body) -> ApiResult<Json<shoal_api::WriteResult>> {
    let req = shoal_agent_proto::Request::TarUpload { path: query_path(&q)? };
    Ok(Json(shoal_api::WriteResult { bytes: streams::upload(&app, &key, req, body).await? }))
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/stop", tag = "sandboxes", operation_id = "stop", summary = "Stop a sandbox (filesystem and addresses kept)", params(("key" = String, Path, description = "sandbox id or name")), responses((status = 200, description = "stopped", body = shoal_api::Sandbox), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn stop(State(app): AppState, Path(key): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::stop_sandbox(&app, &key).await?))
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/start", tag = "sandboxes", operation_id = "start", summary = "Start a stopped sandbox", params(("key" = String, Path, description = "sandbox id or name")), responses((status = 200, description = "running", body = shoal_api::Sandbox), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn start(State(app): AppState, Path(key): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::start_sandbox(&app, &key).await?))
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/timeout", tag = "sandboxes", operation_id = "set_timeout", summary = "Set a sandbox to expire N seconds from now", params(("key" = String, Path, description = "sandbox id or name")), request_body = shoal_api::TimeoutUpdate, responses((status = 200, description = "the sandbox with its new expiry", body = shoal_api::Sandbox), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn set_timeout(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::TimeoutUpdate>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::set_timeout(&app, &key, req.timeout_secs, req.on_timeout.as_deref())?))
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/logs", tag = "sandboxes", operation_id = "logs", summary = "The sandbox console (PID 1 output)", params(("key" = String, Path, description = "sandbox id or name"), ("tail" = Option<usize>, Query, description = "last N lines (default 1000)")), responses((status = 200, description = "log text", body = shoal_api::Logs), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn logs(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<shoal_api::Logs>> {
    let lines = match q.get("tail") {
        None => 1000,
        Some(t) => t.parse::<usize>().map_err(|_| ApiError::bad_request(format!("`tail` must be a number of lines, not `{t}`")))?,
    };
    Ok(Json(shoal_api::Logs { log: service::logs(&app, &key, lines).await? }))
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}/metrics", tag = "sandboxes", operation_id = "metrics", summary = "CPU, memory, pids, disk and per-interface traffic", params(("key" = String, Path, description = "sandbox id or name")), responses((status = 200, description = "metrics", body = shoal_api::SandboxMetrics), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn metrics(State(app): AppState, Path(key): Path<String>) -> ApiResult<Json<shoal_api::SandboxMetrics>> {
    Ok(Json(service::metrics(&app, &key).await?))
}

#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes", operation_id = "list_sandboxes", summary = "List sandboxes", responses((status = 200, description = "all sandboxes", body = shoal_api::SandboxList), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn list_sandboxes(State(app): AppState) -> ApiResult<Json<SandboxList>> {
    Ok(Json(SandboxList { sandboxes: service::list_sandboxes(&app)? }))
}

#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", operation_id = "create_sandbox", summary = "Create a sandbox; returns when it is ready for commands", params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer (200)")), request_body = shoal_api::SandboxCreate, responses((status = 201, description = "created and running", body = shoal_api::Sandbox), (status = 200, description = "replay of an earlier create with the same Idempotency-Key", body = shoal_api::Sandbox), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn create_sandbox(State(app): AppState, headers: axum::http::HeaderMap, Body(req): Body<SandboxCreate>) -> ApiResult<impl IntoResponse> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("`Idempotency-Key` must be printable ASCII"))?.to_string()),
    };
    let (sandbox, replayed) = service::create_sandbox_idempotent(&app, req, key).await?;
    // A replay answers 200: the sandbox was made by the first request.
    Ok((if replayed { StatusCode::OK } else { StatusCode::CREATED }, Json(sandbox)))
}

#[utoipa::path(get, path = "/v1/sandboxes/{key}", tag = "sandboxes", operation_id = "get_sandbox", summary = "One sandbox", params(("key" = String, Path, description = "sandbox id or name")), responses((status = 200, description = "the sandbox", body = shoal_api::Sandbox), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn get_sandbox(State(app): AppState, Path(key): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::get_sandbox(&app, &key)?))
}

#[utoipa::path(delete, path = "/v1/sandboxes/{key}", tag = "sandboxes", operation_id = "delete_sandbox", summary = "Delete a sandbox and every host object it used", params(("key" = String, Path, description = "sandbox id or name")), responses((status = 204, description = "deleted"), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn delete_sandbox(State(app): AppState, Path(key): Path<String>) -> ApiResult<StatusCode> {
    service::delete_sandbox(&app, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/sandboxes/{key}/exec", tag = "exec", operation_id = "exec", summary = "Run a command to completion", params(("key" = String, Path, description = "sandbox id or name")), request_body = shoal_api::ExecRequest, responses((status = 200, description = "the result", body = shoal_api::ExecResponse), (status = 404, description = "no such sandbox, network or path", body = shoal_api::ErrorBody), (status = 409, description = "conflicts with the current state (e.g. the sandbox is not running)", body = shoal_api::ErrorBody), (status = 422, description = "invalid input", body = shoal_api::ErrorBody), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn exec(State(app): AppState, Path(key): Path<String>, Body(req): Body<ExecRequest>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::exec(&app, &key, req).await?))
}

#[utoipa::path(get, path = "/v1/shapes", tag = "meta", operation_id = "shapes", summary = "Sandbox shapes", responses((status = 200, description = "shapes", body = shoal_api::ShapeList), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn shapes() -> Json<ShapeList> {
    Json(ShapeList { shapes: service::shapes() })
}

#[utoipa::path(get, path = "/v1/images", tag = "meta", operation_id = "images", summary = "Images on this node", responses((status = 200, description = "images", body = shoal_api::ImageList), (status = 401, description = "missing or unknown API key", body = shoal_api::ErrorBody)))]
async fn images(State(app): AppState) -> ApiResult<Json<ImageList>> {
    let node = app.node.clone();
    let images = tokio::task::spawn_blocking(move || node.images().list()).await?;
    Ok(Json(ImageList { images: images.map_err(|e| ApiError::internal(e.to_string()))? }))
}

/// The OpenAPI 3.1 document of API v1, generated from the handlers and types above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Shoal API", description = "Isolated sandboxes on private overlay networks. Every /v1 endpoint except /v1/openapi.json needs `Authorization: Bearer <key>`; errors are `{\"error\":{\"code\",\"message\"}}`."),
    paths(health, list_networks, create_network, get_network, delete_network, members, attach, detach, exec_stream, processes, attach_output, stdin, signal, resize, kill, list_files, stat_file, read_file, write_file, mkdir, remove_file, rename, tar_download, tar_upload, stop, start, set_timeout, logs, metrics, list_sandboxes, create_sandbox, get_sandbox, delete_sandbox, exec, shapes, images),
    tags((name = "networks"), (name = "sandboxes"), (name = "exec"), (name = "files"), (name = "meta"))
)]
pub struct ApiDoc;

async fn openapi_json() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi_document())
}

/// The document as served and as committed in docs/openapi.json.
pub fn openapi_document() -> String {
    use utoipa::OpenApi;
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json().expect("OpenAPI serialises") + "\n"
}

#[cfg(test)]
mod tests {
    /// The committed copy must match what the code generates (rerun with UPDATE_OPENAPI=1).
    #[test]
    fn committed_openapi_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = super::openapi_document();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == generated, "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p shoal-server committed_openapi_is_current`");
    }

    #[test]
    fn every_response_has_a_description_and_every_operation_an_id() {
        let doc: serde_json::Value = serde_json::from_str(&super::openapi_document()).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
                for (code, r) in op["responses"].as_object().unwrap() {
                    assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {code} has no description");
                }
            }
        }
    }
}
