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
    Router::new().nest("/v1", v1).route("/healthz", get(health)).fallback(not_found).with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: the API lives under /v1 (see docs/api.md)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method (see docs/api.md)")
}

async fn health() -> Json<shoal_api::Health> {
    Json(shoal_api::Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

async fn list_networks(State(app): AppState) -> ApiResult<Json<NetworkList>> {
    Ok(Json(NetworkList { networks: service::list_networks(&app)? }))
}

async fn create_network(State(app): AppState, Body(req): Body<NetworkCreate>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(service::create_network(&app, req).await?)))
}

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

async fn delete_network(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<StatusCode> {
    service::delete_network(&app, &key, flag(&q, "force")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(State(app): AppState, Path(key): Path<String>) -> ApiResult<Json<shoal_api::MemberList>> {
    Ok(Json(shoal_api::MemberList { members: service::members(&app, &key)? }))
}

async fn attach(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::NetworkRef>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::attach(&app, &key, req).await?))
}

async fn detach(State(app): AppState, Path((key, net)): Path<(String, String)>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::detach(&app, &key, &net).await?))
}

// ---------------------------------------------------------------- streams, processes, files

fn streamed(rx: tokio::sync::mpsc::Receiver<Vec<u8>>, content_type: &'static str) -> axum::response::Response {
    use tokio_stream::StreamExt;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
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

async fn exec_stream(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::ExecStreamRequest>) -> ApiResult<axum::response::Response> {
    Ok(streamed(streams::exec_stream(&app, &key, req).await?, "application/x-ndjson"))
}

async fn processes(State(app): AppState, Path(key): Path<String>) -> ApiResult<Json<shoal_api::ProcessList>> {
    Ok(Json(shoal_api::ProcessList { processes: streams::processes(&app, &key).await? }))
}

async fn attach_output(State(app): AppState, Path((key, pid)): Path<(String, String)>, Query(q): Query<HashMap<String, String>>) -> ApiResult<axum::response::Response> {
    let from_start = flag(&q, "from_start")?;
    Ok(streamed(streams::attach(&app, &key, pid_of(&pid)?, from_start).await?, "application/x-ndjson"))
}

async fn stdin(State(app): AppState, Path((key, pid)): Path<(String, String)>, Body(req): Body<shoal_api::StdinWrite>) -> ApiResult<StatusCode> {
    streams::write_stdin(&app, &key, pid_of(&pid)?, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn signal(State(app): AppState, Path((key, pid)): Path<(String, String)>, Body(req): Body<shoal_api::SignalRequest>) -> ApiResult<StatusCode> {
    streams::signal(&app, &key, pid_of(&pid)?, &req.signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resize(State(app): AppState, Path((key, pid)): Path<(String, String)>, Body(req): Body<shoal_api::ResizeRequest>) -> ApiResult<StatusCode> {
    streams::resize(&app, &key, pid_of(&pid)?, req.rows, req.cols).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(State(app): AppState, Path((key, pid)): Path<(String, String)>) -> ApiResult<StatusCode> {
    streams::kill(&app, &key, pid_of(&pid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_files(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<shoal_api::FileList>> {
    let path = query_path(&q)?;
    let entries = streams::list(&app, &key, &path).await?;
    Ok(Json(shoal_api::FileList { path, entries }))
}

async fn stat_file(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<shoal_api::FileInfo>> {
    Ok(Json(streams::stat(&app, &key, &query_path(&q)?).await?))
}

async fn read_file(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<axum::response::Response> {
    let req = shoal_agent_proto::Request::ReadFile { path: query_path(&q)?, offset: query_u64(&q, "offset")?.unwrap_or(0), len: query_u64(&q, "len")? };
    Ok(streamed(streams::download(&app, &key, req).await?, "application/octet-stream"))
}

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

async fn mkdir(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::MkdirRequest>) -> ApiResult<StatusCode> {
    streams::check_path(&req.path)?;
    streams::simple(&app, &key, shoal_agent_proto::Request::Mkdir { path: req.path, parents: req.parents }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_file(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<StatusCode> {
    let req = shoal_agent_proto::Request::Remove { path: query_path(&q)?, recursive: flag(&q, "recursive")? };
    streams::simple(&app, &key, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::RenameRequest>) -> ApiResult<StatusCode> {
    streams::check_path(&req.from)?;
    streams::check_path(&req.to)?;
    streams::simple(&app, &key, shoal_agent_proto::Request::Rename { from: req.from, to: req.to }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn tar_download(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<axum::response::Response> {
    let req = shoal_agent_proto::Request::TarDownload { path: query_path(&q)? };
    Ok(streamed(streams::download(&app, &key, req).await?, "application/x-tar"))
}

async fn tar_upload(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>, body: axum::body::Body) -> ApiResult<Json<shoal_api::WriteResult>> {
    let req = shoal_agent_proto::Request::TarUpload { path: query_path(&q)? };
    Ok(Json(shoal_api::WriteResult { bytes: streams::upload(&app, &key, req, body).await? }))
}

async fn stop(State(app): AppState, Path(key): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::stop_sandbox(&app, &key).await?))
}

async fn start(State(app): AppState, Path(key): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::start_sandbox(&app, &key).await?))
}

async fn set_timeout(State(app): AppState, Path(key): Path<String>, Body(req): Body<shoal_api::TimeoutUpdate>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::set_timeout(&app, &key, req.timeout_secs)?))
}

async fn logs(State(app): AppState, Path(key): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<shoal_api::Logs>> {
    let lines = match q.get("tail") {
        None => 1000,
        Some(t) => t.parse::<usize>().map_err(|_| ApiError::bad_request(format!("`tail` must be a number of lines, not `{t}`")))?,
    };
    Ok(Json(shoal_api::Logs { log: service::logs(&app, &key, lines).await? }))
}

async fn metrics(State(app): AppState, Path(key): Path<String>) -> ApiResult<Json<shoal_api::SandboxMetrics>> {
    Ok(Json(service::metrics(&app, &key).await?))
}

async fn list_sandboxes(State(app): AppState) -> ApiResult<Json<SandboxList>> {
    Ok(Json(SandboxList { sandboxes: service::list_sandboxes(&app)? }))
}

async fn create_sandbox(State(app): AppState, headers: axum::http::HeaderMap, Body(req): Body<SandboxCreate>) -> ApiResult<impl IntoResponse> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("`Idempotency-Key` must be printable ASCII"))?.to_string()),
    };
    let (sandbox, replayed) = service::create_sandbox_idempotent(&app, req, key).await?;
    // A replay answers 200: the sandbox was made by the first request.
    Ok((if replayed { StatusCode::OK } else { StatusCode::CREATED }, Json(sandbox)))
}

async fn get_sandbox(State(app): AppState, Path(key): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::get_sandbox(&app, &key)?))
}

async fn delete_sandbox(State(app): AppState, Path(key): Path<String>) -> ApiResult<StatusCode> {
    service::delete_sandbox(&app, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn exec(State(app): AppState, Path(key): Path<String>, Body(req): Body<ExecRequest>) -> ApiResult<impl IntoResponse> {
    Ok(Json(service::exec(&app, &key, req).await?))
}

async fn shapes() -> Json<ShapeList> {
    Json(ShapeList { shapes: service::shapes() })
}

async fn images(State(app): AppState) -> ApiResult<Json<ImageList>> {
    let node = app.node.clone();
    let images = tokio::task::spawn_blocking(move || node.images().list()).await?;
    Ok(Json(ImageList { images: images.map_err(|e| ApiError::internal(e.to_string()))? }))
}
