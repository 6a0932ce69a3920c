//! Two sandboxes on a private network, with the Rust SDK: `worker` serves /health on 8080,
//! `api` on the same network reaches it by the address from the member list (200); `outsider`
//! on another network cannot. Needs a running `shoal up` with devbox:1; URL and key from
//! SHOAL_URL / SHOAL_API_KEY or the client config `shoal up` wrote.
//!
//!     cargo run --release -p shoal-example-two-sandboxes

use anyhow::{bail, Context};
use shoal_sdk::{Client, NetworkCreate, NetworkRef, SandboxCreate};

fn on(network: &str) -> Vec<NetworkRef> {
    vec![NetworkRef { id: None, name: Some(network.into()) }]
}

async fn http_status(c: &Client, from: &str, url: &str) -> anyhow::Result<String> {
    let r = c.run(from, "curl", &["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url]).await?;
    Ok(r.stdout.trim().to_string())
}

async fn run(c: &Client) -> anyhow::Result<()> {
    c.create_network(&NetworkCreate { name: "team-eval".into(), cidr: None }).await?;
    let devbox = |name: &str, net: &str| SandboxCreate { name: Some(name.into()), rootfs: "devbox:1".into(), networks: on(net), ..Default::default() };
    c.create_sandbox(&devbox("api", "team-eval")).await?;
    let worker = c.create_sandbox(&devbox("worker", "team-eval")).await?;
    c.run("worker", "sh", &["-c", "mkdir -p /srv && echo ok > /srv/health && cd /srv && nohup python3 -m http.server 8080 >/dev/null 2>&1 &"]).await?;

    let members = c.members("team-eval").await?;
    let worker_ip = &members.iter().find(|m| m.sandbox_id == worker.id).context("worker is not a member")?.ip;
    let url = format!("http://{worker_ip}:8080/health");
    let mut status = String::new();
    for _ in 0..30 {
        status = http_status(c, "api", &url).await?;
        if status == "200" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!("api -> worker ({worker_ip}): HTTP {status}");
    if status != "200" {
        bail!("api could not reach worker");
    }

    c.create_network(&NetworkCreate { name: "other".into(), cidr: None }).await?;
    c.create_sandbox(&devbox("outsider", "other")).await?;
    let status = http_status(c, "outsider", &url).await?;
    println!("outsider -> worker: HTTP {status} (000 = no connection)");
    if status != "000" {
        bail!("outsider reached worker");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let c = Client::from_env()?;
    let result = run(&c).await;
    // Clean up whatever was made, also after a failure.
    for s in ["api", "worker", "outsider"] {
        let _ = c.delete_sandbox(s).await;
    }
    for n in ["team-eval", "other"] {
        let _ = c.delete_network(n, true).await;
    }
    result
}
