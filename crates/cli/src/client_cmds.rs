//! CLI commands that talk to the HTTP API through the Rust SDK.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use shoal_sdk::{Client, ExecRequest, NetworkCreate, NetworkRef, SandboxCreate};

use crate::output::{json, table};

pub struct Conn {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub json: bool,
}

impl Conn {
    pub fn client(&self) -> anyhow::Result<Client> {
        // clap hands over an empty SHOAL_URL/SHOAL_API_KEY as Some(""): treat it as unset.
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let c = shoal_sdk::config::resolve(non_empty(&self.url), non_empty(&self.api_key))?;
        Ok(Client::new(c.url, c.api_key))
    }
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a private network (its block comes from the pool unless --cidr is given).
    Create {
        name: String,
        /// IPv4 block between /16 and /29, e.g. 10.50.0.0/24.
        #[arg(long)]
        cidr: Option<String>,
    },
    /// List networks.
    #[command(alias = "ls")]
    List,
    /// Show a network and its members.
    #[command(alias = "show")]
    Get { network: String },
    /// List a network's members (name, address, MAC, DNS name, state).
    Members { network: String },
    /// Plug a running sandbox into a network (it gets the next free ethN).
    Attach { network: String, sandbox: String },
    /// Unplug a sandbox from a network (traffic through it stops at once).
    Detach { network: String, sandbox: String },
    /// Delete a network.
    #[command(alias = "delete")]
    Rm {
        network: String,
        /// Detach all members first instead of refusing.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum SandboxCmd {
    /// Create a sandbox and wait until it is ready for commands.
    Create {
        /// Also its DNS label: lower-case letters, digits, '-'.
        #[arg(long)]
        name: Option<String>,
        /// See `shoal shapes` (default s-1vcpu-1gb).
        #[arg(long)]
        shape: Option<String>,
        /// Image NAME:TAG (see `shoal image list`).
        #[arg(long, default_value = "busybox:1")]
        rootfs: String,
        /// Network to join (name or id); repeat for several (eth0, eth1, … in this order).
        #[arg(long = "net", alias = "network")]
        networks: Vec<String>,
        /// Environment variable KEY=VALUE; repeatable.
        #[arg(long = "env", short = 'e')]
        env: Vec<String>,
        /// Lifetime in seconds; then the sandbox is deleted (or stopped: --on-timeout stop).
        #[arg(long)]
        timeout: Option<u64>,
        /// What happens at the timeout: delete or stop.
        #[arg(long, value_parser = ["delete", "stop"])]
        on_timeout: Option<String>,
    },
    /// Stop a sandbox's processes, keeping its filesystem and addresses.
    Stop { sandbox: String },
    /// Start a stopped sandbox again.
    Start { sandbox: String },
    /// Make a sandbox expire SECS from now (extends or shortens its lifetime).
    Timeout { sandbox: String, secs: u64 },
    /// CPU, memory, processes, disk and per-interface traffic of a sandbox.
    Metrics { sandbox: String },
    /// List sandboxes.
    #[command(alias = "ls")]
    List,
    /// Show one sandbox.
    #[command(alias = "show")]
    Get { sandbox: String },
    /// Delete sandboxes (and every host object they used).
    #[command(alias = "delete")]
    Rm {
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
}

#[derive(Args)]
pub struct ExecArgs {
    /// Sandbox name or id.
    pub sandbox: String,
    /// Environment variable KEY=VALUE; repeatable.
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Working directory inside the sandbox.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Kill the command after this many seconds (0: no limit; background processes default to none).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Keep stdin open and stream this terminal's input to the command.
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Run on a pseudo-terminal (use with -i for a shell: `shoal exec -it api -- bash`).
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Start in the background and print its pid; reattach with `shoal attach`.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn parse_env(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("--env expects KEY=VALUE, got `{p}`"),
        })
        .collect()
}

pub async fn network(conn: Conn, cmd: NetworkCmd) -> anyhow::Result<()> {
    let c = conn.client()?;
    match cmd {
        NetworkCmd::Create { name, cidr } => {
            let n = c.create_network(&NetworkCreate { name, cidr }).await?;
            if conn.json { json(&n) } else { println!("created network {} ({}) {}", n.name, n.id, n.cidr) }
        }
        NetworkCmd::List => {
            let nets = c.list_networks().await?;
            if conn.json {
                json(&nets)
            } else {
                table(&["ID", "NAME", "CIDR", "MEMBERS", "CREATED"], nets.into_iter().map(|n| vec![n.id, n.name, n.cidr, n.members.len().to_string(), n.created_at]).collect());
            }
        }
        NetworkCmd::Get { network } => {
            let n = c.get_network(&network).await?;
            if conn.json {
                json(&n)
            } else {
                println!("network {} ({})  cidr {}  created {}", n.name, n.id, n.cidr, n.created_at);
                table(&["SANDBOX", "ID", "IP", "MAC", "DNS NAME"], n.members.into_iter().map(|m| vec![m.sandbox_name, m.sandbox_id, m.ip, m.mac, m.dns_name]).collect());
            }
        }
        NetworkCmd::Members { network } => {
            let members = c.members(&network).await?;
            if conn.json {
                json(&members)
            } else {
                table(
                    &["SANDBOX", "ID", "IP", "MAC", "DNS NAME", "STATE", "JOINED"],
                    members.into_iter().map(|m| vec![m.sandbox_name, m.sandbox_id, m.ip, m.mac, m.dns_name, m.state, m.joined_at]).collect(),
                );
            }
        }
        NetworkCmd::Attach { network, sandbox } => {
            let s = c.attach_network(&sandbox, &network).await?;
            if conn.json {
                json(&s)
            } else {
                let nic = s.networks.iter().find(|n| n.network_name == network || n.network_id == network);
                match nic {
                    Some(n) => println!("attached {} to {}: {} {}", s.name, n.network_name, n.ifname, n.ip),
                    None => println!("attached {} to {network}", s.name),
                }
            }
        }
        NetworkCmd::Detach { network, sandbox } => {
            let s = c.detach_network(&sandbox, &network).await?;
            if conn.json { json(&s) } else { println!("detached {} from {network}", s.name) }
        }
        NetworkCmd::Rm { network, force } => {
            c.delete_network(&network, force).await?;
            if !conn.json {
                println!("deleted network {network}");
            }
        }
    }
    Ok(())
}

pub async fn sandbox(conn: Conn, cmd: SandboxCmd) -> anyhow::Result<()> {
    let c = conn.client()?;
    match cmd {
        SandboxCmd::Create { name, shape, rootfs, networks, env, timeout, on_timeout } => {
            let req = SandboxCreate {
                name,
                shape,
                rootfs,
                networks: networks.into_iter().map(|n| NetworkRef { id: None, name: Some(n) }).collect(),
                env: parse_env(&env)?,
                timeout_secs: timeout,
                on_timeout,
            };
            let started = std::time::Instant::now();
            let s = c.create_sandbox(&req).await?;
            if conn.json {
                json(&s)
            } else {
                let addrs: Vec<String> = s.networks.iter().map(|n| format!("{} {} on {}", n.ifname, n.ip, n.network_name)).collect();
                println!("created sandbox {} ({}) in {} ms{}{}", s.name, s.id, started.elapsed().as_millis(), if addrs.is_empty() { "" } else { ": " }, addrs.join(", "));
            }
        }
        SandboxCmd::Stop { sandbox } => {
            let s = c.stop_sandbox(&sandbox).await?;
            if conn.json { json(&s) } else { println!("{} is {}", s.name, s.state) }
        }
        SandboxCmd::Start { sandbox } => {
            let s = c.start_sandbox(&sandbox).await?;
            if conn.json { json(&s) } else { println!("{} is {}", s.name, s.state) }
        }
        SandboxCmd::Timeout { sandbox, secs } => {
            let s = c.set_timeout(&sandbox, secs).await?;
            if conn.json {
                json(&s)
            } else {
                println!("{} expires at {} ({})", s.name, s.expires_at.unwrap_or_default(), s.on_timeout.unwrap_or_default())
            }
        }
        SandboxCmd::Metrics { sandbox } => {
            let m = c.metrics(&sandbox).await?;
            if conn.json {
                json(&m)
            } else {
                let opt = |v: Option<u64>, f: &dyn Fn(u64) -> String| v.map(f).unwrap_or_else(|| "-".into());
                let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
                println!("cpu      {}", opt(m.cpu_usage_ns, &|n| format!("{:.2} s", n as f64 / 1e9)));
                println!("memory   {} of {}", opt(m.memory_bytes, &mib), opt(m.memory_limit_bytes, &mib));
                println!("pids     {}", opt(m.pids, &|n| n.to_string()));
                println!("disk     {}", mib(m.disk_bytes));
                table(
                    &["IFACE", "RX BYTES", "TX BYTES", "RX PKTS", "TX PKTS"],
                    m.interfaces.into_iter().map(|i| vec![i.ifname, i.rx_bytes.to_string(), i.tx_bytes.to_string(), i.rx_packets.to_string(), i.tx_packets.to_string()]).collect(),
                );
            }
        }
        SandboxCmd::List => {
            let all = c.list_sandboxes().await?;
            if conn.json {
                json(&all)
            } else {
                let rows = all
                    .into_iter()
                    .map(|s| {
                        let nets: Vec<String> = s.networks.iter().map(|n| format!("{}={}", n.network_name, n.ip)).collect();
                        vec![s.id, s.name, s.state, s.shape, s.rootfs, nets.join(",")]
                    })
                    .collect();
                table(&["ID", "NAME", "STATE", "SHAPE", "ROOTFS", "NETWORKS"], rows);
            }
        }
        SandboxCmd::Get { sandbox } => {
            let s = c.get_sandbox(&sandbox).await?;
            if conn.json {
                json(&s)
            } else {
                println!("sandbox {} ({})", s.name, s.id);
                println!("  state    {}{}", s.state, s.state_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default());
                println!("  shape    {}\n  rootfs   {}\n  runtime  {}\n  created  {}", s.shape, s.rootfs, s.runtime, s.created_at);
                table(&["  IFACE", "NETWORK", "IP", "MAC"], s.networks.into_iter().map(|n| vec![format!("  {}", n.ifname), n.network_name, n.ip, n.mac]).collect());
            }
        }
        SandboxCmd::Rm { sandboxes } => {
            for s in sandboxes {
                c.delete_sandbox(&s).await.with_context(|| format!("deleting {s}"))?;
                if !conn.json {
                    println!("deleted sandbox {s}");
                }
            }
        }
    }
    Ok(())
}

pub async fn exec(conn: Conn, a: ExecArgs) -> anyhow::Result<()> {
    if !conn.json {
        return crate::stream_cmds::exec(conn.client()?, a).await;
    }
    use std::io::{Read, Write};
    let c = conn.client()?;
    let mut command = a.command.into_iter();
    let cmd = command.next().expect("clap requires a command");
    let stdin = if a.interactive {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading stdin (must be UTF-8 text)")?;
        Some(s)
    } else {
        None
    };
    // 0 means "no limit": the plain exec API's ceiling is one hour.
    let timeout = match a.timeout {
        Some(0) => 3600,
        t => t.unwrap_or(60),
    };
    let req = ExecRequest { cmd, args: command.collect(), env: parse_env(&a.env)?, cwd: a.cwd, stdin, timeout_ms: Some(timeout.saturating_mul(1000)) };
    let r = c.exec(&a.sandbox, &req).await?;
    if conn.json {
        json(&r);
        return Ok(());
    }
    std::io::stdout().write_all(r.stdout.as_bytes())?;
    std::io::stderr().write_all(r.stderr.as_bytes())?;
    if r.timed_out {
        eprintln!("shoal: the command ran longer than {timeout} s and was killed (raise --timeout)");
    }
    std::process::exit(r.exit_code);
}

pub async fn logs(conn: Conn, sandbox: String, tail: usize) -> anyhow::Result<()> {
    let log = conn.client()?.logs(&sandbox, tail).await?;
    if conn.json {
        json(&serde_json::json!({ "log": log }));
    } else if !log.is_empty() {
        println!("{log}");
    }
    Ok(())
}

pub async fn shapes(conn: Conn) -> anyhow::Result<()> {
    let shapes = conn.client()?.shapes().await?;
    if conn.json {
        json(&shapes)
    } else {
        table(&["NAME", "VCPUS", "MEMORY", "PIDS"], shapes.into_iter().map(|s| vec![s.name, s.vcpus.to_string(), format!("{} MiB", s.memory_mb), s.pids_limit.to_string()]).collect());
    }
    Ok(())
}
