//! `shoal up`: the control plane and one local node in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use shoal_node::{Node, NodeConfig};
use shoal_sdk::config::{self as client_config, ClientConfig};
use shoal_server::{auth, service, store::Store, App};

use crate::paths;

#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    dir: crate::DataDirArg,
    /// Address of the HTTP API.
    #[arg(long, env = "SHOAL_LISTEN", default_value = paths::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// OCI runtime binary for container sandboxes.
    #[arg(long, env = "SHOAL_OCI_RUNTIME", default_value = "runc")]
    oci_runtime: String,
    /// The static shoal-agent binary (default: next to `shoal`, or in the cargo target dir).
    #[arg(long, env = "SHOAL_AGENT_BIN")]
    agent_bin: Option<PathBuf>,
    /// MTU of sandbox network interfaces (68-9000; keep 50 bytes below the underlay's for VXLAN).
    #[arg(long, env = "SHOAL_MTU", default_value_t = shoal_node::dataplane::DEFAULT_MTU, value_parser = clap::value_parser!(u32).range(68..=9000))]
    mtu: u32,
    /// Do not write the client config file (~/.config/shoal/config.json or SHOAL_CONFIG).
    #[arg(long)]
    no_client_config: bool,
}

pub async fn run(args: UpArgs, initial_key: Option<String>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // SAFETY: isatty has no preconditions.
        .with_ansi(unsafe { libc::isatty(2) } == 1)
        .init();
    let agent_bin = paths::find_agent(args.agent_bin.as_deref())?;
    let data_dir = args.dir.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let cfg = NodeConfig { data_dir: data_dir.clone(), images_dir: args.dir.images_dir(), oci_runtime: args.oci_runtime.clone(), agent_bin, mtu: args.mtu };
    let node = tokio::task::spawn_blocking(move || Node::start(cfg)).await??;
    let node = Arc::new(node);
    // Bind before anything is created that only this run would show (a new API key).
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {} (is another shoal up running? pass --listen)", args.listen))?;

    // busybox:1 takes well under a second to build, so every install has an image to start with.
    if node.images().get("busybox:1").is_err() {
        eprintln!("==> building image busybox:1 (from busybox-static)");
        let n = node.clone();
        tokio::task::spawn_blocking(move || n.images().build("busybox:1", &[], &mut |_| {})).await??;
    }

    let store = Store::open(&data_dir.join("state.db")).context("opening the state store")?;
    let now = shoal_server::time::now();
    let mut show_key = None;
    let initial_key = initial_key.filter(|k| !k.is_empty());
    if let Some(k) = &initial_key {
        store.add_api_key(&auth::hash_key(k), &now)?;
    } else if store.api_key_count()? == 0 {
        let k = auth::generate_key();
        store.add_api_key(&auth::hash_key(&k), &now)?;
        show_key = Some(k);
    }
    let app = App::new(store, node.clone());

    let count = app.store.lock().unwrap().sandboxes()?.len();
    if count > 0 {
        eprintln!("==> re-adopting {count} sandbox(es)");
    }
    service::converge_on_start(&app).await.map_err(|e| anyhow::anyhow!(e.message))?;

    let url = format!("http://{}", args.listen);
    if let Some(key) = initial_key.as_ref().or(show_key.as_ref()) {
        if !args.no_client_config {
            let path = client_config::save(&ClientConfig { url: url.clone(), api_key: key.clone() })?;
            eprintln!("==> client config written to {} (mode 0600)", path.display());
        }
    }
    if let Some(k) = &show_key {
        eprintln!("==> API key (shown once; the CLI and SDKs read it from the client config):\n\n    {k}\n");
    }
    if node.images().get("devbox:1").is_err() {
        eprintln!("==> image devbox:1 is not built yet; build it with `shoal image build devbox:1` (Debian 12, about a minute)");
    }
    eprintln!("==> Shoal is up: API {url}, data in {}. Ctrl-C stops the API; sandboxes keep running and are re-adopted on the next start.", data_dir.display());
    shoal_server::spawn_reaper(app.clone());
    shoal_server::serve(listener, app, shutdown_signal()).await?;
    node.tidy_if_idle();
    eprintln!("==> stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

pub async fn purge(dir: &crate::DataDirArg, images: bool, yes: bool) -> anyhow::Result<()> {
    let data_dir = dir.data_dir.as_path();
    let images_dir = dir.images_dir();
    if !yes {
        anyhow::bail!("this destroys every sandbox and network of {}: add --yes to confirm", data_dir.display());
    }
    let agent_bin = paths::find_agent(None).unwrap_or_else(|_| PathBuf::from("/bin/true"));
    let cfg = NodeConfig { data_dir: data_dir.to_path_buf(), images_dir: images_dir.clone(), oci_runtime: "runc".into(), agent_bin, mtu: shoal_node::dataplane::DEFAULT_MTU };
    let dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let node = Node::start(cfg)?;
        node.purge()?;
        drop(node);
        for f in ["state.db", "state.db-wal", "state.db-shm", "node.lock"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_dir_all(dir.join("sandboxes"));
        let _ = std::fs::remove_dir_all(dir.join("oci-state"));
        if images {
            let _ = std::fs::remove_dir_all(&images_dir);
        }
        Ok(())
    })
    .await??;
    println!("purged {}", data_dir.display());
    Ok(())
}
