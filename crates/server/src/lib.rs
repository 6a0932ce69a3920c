//! The Shoal control plane: HTTP API v1, API keys, the state store and IPAM. It records what
//! should exist and asks the node to make it so.

pub mod auth;
pub mod error;
pub mod http;
pub mod ipam;
pub mod service;
pub mod store;
pub mod streams;
pub mod time;

use std::sync::{Arc, Mutex};

use shoal_api::Cidr;
use shoal_node::Node;

/// Shared state of the running server.
pub struct App {
    pub store: Mutex<store::Store>,
    pub node: Arc<Node>,
    /// Pool that network blocks come from when the user names none.
    pub pool: Cidr,
    /// Serialises the parts of create/delete that decide names and addresses, so two concurrent
    /// requests never pick the same one (the store's UNIQUE constraints are the backstop).
    pub alloc: tokio::sync::Mutex<()>,
}

impl App {
    pub fn new(store: store::Store, node: Arc<Node>) -> Arc<App> {
        Arc::new(App { store: Mutex::new(store), node, pool: ipam::DEFAULT_POOL.parse().unwrap(), alloc: tokio::sync::Mutex::new(()) })
    }
}

pub use http::router;

/// Acts on sandbox timeouts once a second and notices dead sandboxes every two, for as long as
/// the process lives.
pub fn spawn_reaper(app: Arc<App>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            if let Err(e) = service::reap_expired(&app).await {
                tracing::error!("checking sandbox timeouts: {}", e.message);
            }
            if n % 2 == 0 {
                if let Err(e) = service::mark_dead(&app).await {
                    tracing::error!("checking sandbox liveness: {}", e.message);
                }
            }
        }
    });
}

/// Serves the API until `shutdown` completes, then gives in-flight requests a grace period
/// (a long exec must not keep the process alive forever).
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signalled = async move {
        shutdown.await;
        let _ = tx.send(());
    };
    use axum::serve::ListenerExt;
    // No Nagle delay: streamed exec events and small answers go out at once (a reused
    // connection otherwise waits ~40 ms for the client's delayed ACK).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(signalled);
    tokio::select! {
        r = server => r,
        _ = async { let _ = rx.await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!("requests still running after {} s; stopping anyway", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    }
}

pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
