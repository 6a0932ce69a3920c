//! Rust client for the Shoal HTTP API v1.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shoal_sdk::Error> {
//! let client = shoal_sdk::Client::from_env()?;
//! let net = client.create_network(&shoal_sdk::NetworkCreate { name: "team-eval".into(), cidr: None }).await?;
//! # Ok(()) }
//! ```

pub mod config;

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
pub use shoal_api::*;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error (`code` is stable, `message` says what to do).
    #[error("{message} ({status} {code})")]
    Api { status: u16, code: String, message: String },
    #[error("cannot reach the Shoal API at {url}; is `shoal up` running?")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Clone)]
pub struct Client {
    base: String,
    api_key: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Self {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().expect("HTTP client");
        Client { base: url.into().trim_end_matches('/').to_string(), api_key: api_key.into(), http }
    }

    /// URL and key from `SHOAL_URL` / `SHOAL_API_KEY`, else from the client config file that
    /// `shoal up` wrote (`SHOAL_CONFIG`, default `~/.config/shoal/config.json`).
    pub fn from_env() -> Result<Self> {
        let c = config::resolve(None, None)?;
        Ok(Client::new(c.url, c.api_key))
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call<B: Serialize, T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&B>) -> Result<T> {
        let resp = self.send(method, path, body).await?;
        Ok(resp.json::<T>().await?)
    }

    async fn send<B: Serialize>(&self, method: Method, path: &str, body: Option<&B>) -> Result<reqwest::Response> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.api_key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| if e.is_connect() { Error::Connect { url: self.base.clone(), source: e } } else { Error::Http(e) })?;
        Self::check(resp).await
    }

    /// Turns an error answer into `Error::Api` with the server's code and message.
    async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => Error::Api { status: status.as_u16(), code: b.error.code, message: b.error.message },
            Err(_) => Error::Api { status: status.as_u16(), code: "unknown".into(), message: text },
        })
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.send::<()>(Method::DELETE, path, None).await.map(|_| ())
    }

    pub async fn create_network(&self, req: &NetworkCreate) -> Result<Network> {
        self.call(Method::POST, "/v1/networks", Some(req)).await
    }
    pub async fn list_networks(&self) -> Result<Vec<Network>> {
        Ok(self.call::<(), NetworkList>(Method::GET, "/v1/networks", None).await?.networks)
    }
    pub async fn get_network(&self, id_or_name: &str) -> Result<Network> {
        self.call::<(), _>(Method::GET, &format!("/v1/networks/{}", enc(id_or_name)), None).await
    }
    pub async fn delete_network(&self, id_or_name: &str, force: bool) -> Result<()> {
        self.delete(&format!("/v1/networks/{}?force={force}", enc(id_or_name))).await
    }

    pub async fn members(&self, network: &str) -> Result<Vec<Member>> {
        Ok(self.call::<(), MemberList>(Method::GET, &format!("/v1/networks/{}/members", enc(network)), None).await?.members)
    }
    /// Plugs a running sandbox into a network (name or id); returns the updated sandbox.
    pub async fn attach_network(&self, sandbox: &str, network: &str) -> Result<Sandbox> {
        let r = NetworkRef { id: None, name: Some(network.to_string()) };
        self.call(Method::POST, &format!("/v1/sandboxes/{}/networks", enc(sandbox)), Some(&r)).await
    }
    pub async fn detach_network(&self, sandbox: &str, network: &str) -> Result<Sandbox> {
        self.call::<(), _>(Method::DELETE, &format!("/v1/sandboxes/{}/networks/{}", enc(sandbox), enc(network)), None).await
    }

    pub async fn create_sandbox(&self, req: &SandboxCreate) -> Result<Sandbox> {
        self.call(Method::POST, "/v1/sandboxes", Some(req)).await
    }
    /// Create that is safe to retry: the same `key` with the same request returns the sandbox
    /// the first attempt made instead of making another.
    pub async fn create_sandbox_idempotent(&self, req: &SandboxCreate, key: &str) -> Result<Sandbox> {
        let url = format!("{}/v1/sandboxes", self.base);
        let send = self.http.post(&url).bearer_auth(&self.api_key).header("Idempotency-Key", key).json(req).send();
        let resp = send.await.map_err(|e| if e.is_connect() { Error::Connect { url: self.base.clone(), source: e } } else { Error::Http(e) })?;
        Ok(Self::check(resp).await?.json().await?)
    }
    pub async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        Ok(self.call::<(), SandboxList>(Method::GET, "/v1/sandboxes", None).await?.sandboxes)
    }
    pub async fn get_sandbox(&self, id_or_name: &str) -> Result<Sandbox> {
        self.call::<(), _>(Method::GET, &format!("/v1/sandboxes/{}", enc(id_or_name)), None).await
    }
    pub async fn delete_sandbox(&self, id_or_name: &str) -> Result<()> {
        self.delete(&format!("/v1/sandboxes/{}", enc(id_or_name))).await
    }
    pub async fn exec(&self, id_or_name: &str, req: &ExecRequest) -> Result<ExecResponse> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/exec", enc(id_or_name)), Some(req)).await
    }
    /// Shorthand: run `cmd args…` and wait for it.
    pub async fn run(&self, id_or_name: &str, cmd: &str, args: &[&str]) -> Result<ExecResponse> {
        let req = ExecRequest { cmd: cmd.into(), args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        self.exec(id_or_name, &req).await
    }

    pub async fn stop_sandbox(&self, id_or_name: &str) -> Result<Sandbox> {
        self.call::<(), _>(Method::POST, &format!("/v1/sandboxes/{}/stop", enc(id_or_name)), None).await
    }
    pub async fn start_sandbox(&self, id_or_name: &str) -> Result<Sandbox> {
        self.call::<(), _>(Method::POST, &format!("/v1/sandboxes/{}/start", enc(id_or_name)), None).await
    }
    /// The sandbox now expires `secs` from now.
    pub async fn set_timeout(&self, id_or_name: &str, secs: u64) -> Result<Sandbox> {
        self.call(Method::POST, &format!("/v1/sandboxes/{}/timeout", enc(id_or_name)), Some(&TimeoutUpdate { timeout_secs: secs, on_timeout: None })).await
    }
    /// The last `tail` lines of the sandbox's PID-1 console.
    pub async fn logs(&self, id_or_name: &str, tail: usize) -> Result<String> {
        Ok(self.call::<(), Logs>(Method::GET, &format!("/v1/sandboxes/{}/logs?tail={tail}", enc(id_or_name)), None).await?.log)
    }
    pub async fn metrics(&self, id_or_name: &str) -> Result<SandboxMetrics> {
        self.call::<(), _>(Method::GET, &format!("/v1/sandboxes/{}/metrics", enc(id_or_name)), None).await
    }

    pub async fn shapes(&self) -> Result<Vec<ShapeInfo>> {
        Ok(self.call::<(), ShapeList>(Method::GET, "/v1/shapes", None).await?.shapes)
    }
    pub async fn images(&self) -> Result<Vec<Image>> {
        Ok(self.call::<(), ImageList>(Method::GET, "/v1/images", None).await?.images)
    }
    pub async fn health(&self) -> Result<Health> {
        self.call::<(), _>(Method::GET, "/v1/health", None).await
    }
}

/// Path segments are names and ids (a safe alphabet), but escape anyway so that a stray
/// character becomes a 404 rather than a different route.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The events of a streaming exec or an attach, read line by line as they arrive.
pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next event; `None` once the server closed the stream (after `Exit`).
    pub async fn next(&mut self) -> Result<Option<ExecEvent>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let ev = serde_json::from_slice(&line).map_err(|e| Error::Config(format!("unreadable stream event: {e}")))?;
                return Ok(Some(ev));
            }
            match self.resp.chunk().await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}

impl Client {
    async fn send_raw(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.bearer_auth(&self.api_key).send().await.map_err(|e| if e.is_connect() { Error::Connect { url: self.base.clone(), source: e } } else { Error::Http(e) })?;
        Self::check(resp).await
    }

    fn sandbox_url(&self, sandbox: &str, rest: &str) -> String {
        format!("{}/v1/sandboxes/{}{rest}", self.base, enc(sandbox))
    }

    /// Starts a command and streams its output (`Started`, output events, `Exit`).
    pub async fn exec_stream(&self, sandbox: &str, req: &ExecStreamRequest) -> Result<EventStream> {
        let resp = self.send_raw(self.http.post(self.sandbox_url(sandbox, "/exec/stream")).json(req)).await?;
        Ok(EventStream { resp, buf: Vec::new() })
    }

    /// Streams a background process's output; `from_start` replays what its buffer kept.
    pub async fn attach(&self, sandbox: &str, pid: u32, from_start: bool) -> Result<EventStream> {
        let url = self.sandbox_url(sandbox, &format!("/processes/{pid}/output?from_start={from_start}"));
        let resp = self.send_raw(self.http.get(url)).await?;
        Ok(EventStream { resp, buf: Vec::new() })
    }

    pub async fn processes(&self, sandbox: &str) -> Result<Vec<ProcessInfo>> {
        Ok(self.send_raw(self.http.get(self.sandbox_url(sandbox, "/processes"))).await?.json::<ProcessList>().await?.processes)
    }

    pub async fn write_stdin(&self, sandbox: &str, pid: u32, w: &StdinWrite) -> Result<()> {
        self.send_raw(self.http.post(self.sandbox_url(sandbox, &format!("/processes/{pid}/stdin"))).json(w)).await.map(|_| ())
    }

    pub async fn signal(&self, sandbox: &str, pid: u32, signal: &str) -> Result<()> {
        let body = SignalRequest { signal: signal.to_string() };
        self.send_raw(self.http.post(self.sandbox_url(sandbox, &format!("/processes/{pid}/signal"))).json(&body)).await.map(|_| ())
    }

    pub async fn resize(&self, sandbox: &str, pid: u32, rows: u16, cols: u16) -> Result<()> {
        let body = ResizeRequest { rows, cols };
        self.send_raw(self.http.post(self.sandbox_url(sandbox, &format!("/processes/{pid}/resize"))).json(&body)).await.map(|_| ())
    }

    pub async fn kill_process(&self, sandbox: &str, pid: u32) -> Result<()> {
        self.send_raw(self.http.delete(self.sandbox_url(sandbox, &format!("/processes/{pid}")))).await.map(|_| ())
    }

    fn path_query(path: &str) -> String {
        path.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_./~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
    }

    pub async fn stat(&self, sandbox: &str, path: &str) -> Result<FileInfo> {
        Ok(self.send_raw(self.http.get(self.sandbox_url(sandbox, &format!("/files/stat?path={}", Self::path_query(path))))).await?.json().await?)
    }

    pub async fn list_files(&self, sandbox: &str, path: &str) -> Result<Vec<FileInfo>> {
        let r: FileList = self.send_raw(self.http.get(self.sandbox_url(sandbox, &format!("/files?path={}", Self::path_query(path))))).await?.json().await?;
        Ok(r.entries)
    }

    pub async fn mkdir(&self, sandbox: &str, path: &str, parents: bool) -> Result<()> {
        let body = MkdirRequest { path: path.to_string(), parents };
        self.send_raw(self.http.post(self.sandbox_url(sandbox, "/files/mkdir")).json(&body)).await.map(|_| ())
    }

    pub async fn remove_file(&self, sandbox: &str, path: &str, recursive: bool) -> Result<()> {
        let url = self.sandbox_url(sandbox, &format!("/files?path={}&recursive={recursive}", Self::path_query(path)));
        self.send_raw(self.http.delete(url)).await.map(|_| ())
    }

    pub async fn rename_file(&self, sandbox: &str, from: &str, to: &str) -> Result<()> {
        let body = RenameRequest { from: from.to_string(), to: to.to_string() };
        self.send_raw(self.http.post(self.sandbox_url(sandbox, "/files/rename")).json(&body)).await.map(|_| ())
    }

    /// Streams a file (or, with `tar`, a directory as a tar archive) out of the sandbox into
    /// `out`, chunk by chunk; returns the number of bytes.
    pub async fn download<W: tokio::io::AsyncWrite + Unpin>(&self, sandbox: &str, path: &str, tar: bool, out: &mut W) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let what = if tar { "tar" } else { "content" };
        let mut resp = self.send_raw(self.http.get(self.sandbox_url(sandbox, &format!("/files/{what}?path={}", Self::path_query(path))))).await?;
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            out.write_all(&chunk).await.map_err(|e| Error::Config(format!("writing the download: {e}")))?;
            n += chunk.len() as u64;
        }
        out.flush().await.map_err(|e| Error::Config(format!("writing the download: {e}")))?;
        Ok(n)
    }

    /// Streams `body` into a file of the sandbox (or, with `tar`, extracts it as a tar archive
    /// into the directory `path`); `mode` like 0o755.
    pub async fn upload(&self, sandbox: &str, path: &str, tar: bool, mode: Option<u32>, body: reqwest::Body) -> Result<u64> {
        let mut url = self.sandbox_url(sandbox, &format!("/files/{}?path={}", if tar { "tar" } else { "content" }, Self::path_query(path)));
        if let Some(m) = mode {
            url.push_str(&format!("&mode={m:o}"));
        }
        let r: WriteResult = self.send_raw(self.http.put(url).body(body)).await?.json().await?;
        Ok(r.bytes)
    }
}
