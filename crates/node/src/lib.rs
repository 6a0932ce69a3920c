//! A Shoal node: realises sandboxes and networks on one host and reports what is there.
//!
//! Desired state flows one way: the control plane says what should exist (`SandboxSpec`s), the
//! node converges the host towards it. Every host object has a deterministic name (`naming`),
//! every operation is idempotent, and `converge` after a restart re-adopts what it finds and
//! removes what should not be there.

pub mod agent_client;
pub mod cmd;
pub mod dataplane;
pub mod dns;
pub mod images;
pub mod naming;
pub mod runtime;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_agent_proto::{ExecRequest, ExecResult};
use shoal_api::Shape;

use agent_client::AgentError;
use cmd::CmdError;
use dataplane::{nft, NicSpec};
use images::{ImageError, ImageStore};
use runtime::container::{self, OciRuntime, SandboxDirs};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Where images live (default `<data_dir>/images`; several data dirs may share one).
    pub images_dir: PathBuf,
    /// OCI runtime binary (runc by default; crun or runsc work where the host supports them).
    pub oci_runtime: String,
    /// The statically linked `shoal-agent`, bind-mounted into every sandbox as PID 1.
    pub agent_bin: PathBuf,
    /// MTU of sandbox interfaces (1450 fits VXLAN over a 1500-byte underlay).
    pub mtu: u32,
}

/// What should exist for one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub id: String,
    pub name: String,
    pub image: String,
    pub shape: &'static Shape,
    pub env: BTreeMap<String, String>,
    pub nics: Vec<NicSpec>,
    /// False for a stopped sandbox: its filesystem, netns and ports exist, its processes do not.
    pub running: bool,
}

/// Resource use of one sandbox, read from its cgroups, its upper layer and its ports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Metrics {
    pub cpu_usage_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// Bytes written to the sandbox's own filesystem layer.
    pub disk_bytes: u64,
    pub interfaces: Vec<InterfaceCounters>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InterfaceCounters {
    pub ifname: String,
    pub network_id: String,
    /// As seen from inside the sandbox.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Command(#[from] CmdError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("this host cannot run Shoal: {0}")]
    Probe(String),
    #[error("another Shoal node already uses data directory {0}: stop it first (only one node per data directory)")]
    Locked(String),
    #[error("sandbox {id} did not become ready within {secs} s; its console said:\n{console}")]
    NotReady { id: String, secs: u64, console: String },
    #[error("sandbox {0} is not running on this node")]
    NotRunning(String),
}

pub struct Node {
    cfg: NodeConfig,
    images: ImageStore,
    oci: OciRuntime,
    /// The port policies programmed into nftables, so a full rebuild is always possible.
    ports: Mutex<BTreeMap<String, nft::PortPolicy>>,
    resolver: dns::server::Resolver,
    /// Foreground exec streams by (sandbox, pid): stdin, signals and resizes for them travel on
    /// their own connection (background processes take pid-addressed requests instead).
    streams: Mutex<std::collections::HashMap<(String, u32), agent_client::AgentSender>>,
    _lock: File,
    _netns_lock: File,
}

const READY_TIMEOUT: Duration = Duration::from_secs(20);

impl Node {
    /// Checks the host, takes the data directory's lock and installs the base nftables table.
    pub fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        probe(&cfg)?;
        if let Some(w) = forward_drop_warning() {
            tracing::warn!("{w}");
        }
        std::fs::create_dir_all(cfg.data_dir.join("sandboxes"))?;
        let lock = lock_data_dir(&cfg.data_dir)?;
        let netns_lock = lock_netns()?;
        let oci = OciRuntime { binary: cfg.oci_runtime.clone(), state_root: cfg.data_dir.join("oci-state") };
        let node = Node { images: ImageStore::new(cfg.images_dir.clone()), cfg, oci, ports: Mutex::new(BTreeMap::new()), resolver: Default::default(), streams: Default::default(), _lock: lock, _netns_lock: netns_lock };
        Ok(node)
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    fn dirs(&self, id: &str) -> SandboxDirs {
        SandboxDirs::new(&self.cfg.data_dir.join("sandboxes"), id)
    }

    /// Creates the sandbox, or repairs whatever part of it is missing; returns once its agent
    /// answers. Safe to call again for a sandbox that already runs.
    pub fn ensure_sandbox(&self, spec: &SandboxSpec) -> Result<(), NodeError> {
        let lower = self.images.rootfs(&spec.image)?;
        let dirs = self.dirs(&spec.id);
        std::fs::create_dir_all(dirs.agent_dir())?;
        std::fs::create_dir_all(dirs.bundle())?;
        let netns = naming::netns_name(&spec.id);
        self.write_hosts(spec)?;
        std::fs::write(dirs.resolv_conf(), dns::resolv_conf())?;
        let config = runtime::oci::config(&runtime::oci::OciParams {
            sandbox_id: &spec.id,
            hostname: &spec.name,
            shape: spec.shape,
            env: &spec.env,
            netns_path: &container::netns_path(&netns).display().to_string(),
            agent_dir: &dirs.agent_dir().display().to_string(),
            agent_bin: &self.cfg.agent_bin.display().to_string(),
            hosts_file: &dirs.hosts_file().display().to_string(),
            resolv_conf: &dirs.resolv_conf().display().to_string(),
        });
        std::fs::write(dirs.bundle().join("config.json"), serde_json::to_vec_pretty(&config).expect("json"))?;
        container::mount_overlay(&lower, &dirs)?;
        container::ensure_netns(&netns)?;
        self.resolver.serve(&spec.id, &netns)?;
        for nic in &spec.nics {
            self.program_port(nic.policy(&spec.id))?;
            dataplane::ensure_port(&spec.id, &netns, nic, self.cfg.mtu)?;
        }
        if !spec.running {
            return self.stop_sandbox(&spec.id, &spec.nics, Duration::ZERO);
        }
        match self.oci.status(&spec.id).as_deref() {
            Some("running") => {}
            Some(_) => {
                // Stopped (e.g. the host rebooted): start it again on the same filesystem.
                self.oci.delete(&spec.id)?;
                self.oci.start(&spec.id, &dirs)?;
            }
            None => self.oci.start(&spec.id, &dirs)?,
        }
        self.wait_ready(&spec.id, &dirs)
    }

    fn wait_ready(&self, id: &str, dirs: &SandboxDirs) -> Result<(), NodeError> {
        let start = Instant::now();
        let socket = dirs.agent_socket();
        let mut delay = Duration::from_millis(1);
        loop {
            if socket.exists() && agent_client::ping(&socket).is_ok() {
                return Ok(());
            }
            // Asking the runtime costs a process spawn: only once the agent is late.
            let late = start.elapsed() > Duration::from_millis(200);
            let stopped = late && matches!(self.oci.status(id).as_deref(), Some("stopped") | None);
            if stopped || start.elapsed() > READY_TIMEOUT {
                let console = tail(&dirs.console_log(), 20);
                return Err(NodeError::NotReady { id: id.to_string(), secs: start.elapsed().as_secs(), console });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(20));
        }
    }

    fn program_port(&self, policy: nft::PortPolicy) -> Result<(), NodeError> {
        let mut ports = self.ports.lock().unwrap();
        let incremental = nft::apply(&nft::add_port(&policy));
        ports.insert(policy.port.clone(), policy);
        if incremental.is_err() {
            // The table is missing or damaged (someone flushed the ruleset?): rebuild it whole.
            nft::apply(&nft::full_ruleset(&ports.values().cloned().collect::<Vec<_>>()))?;
        }
        Ok(())
    }

    fn unprogram_port(&self, port: &str) -> Result<(), NodeError> {
        let mut ports = self.ports.lock().unwrap();
        ports.remove(port);
        if nft::apply(&nft::remove_port(port)).is_err() {
            // The rules were not (all) there: rebuild the table from what should exist.
            nft::apply(&nft::full_ruleset(&ports.values().cloned().collect::<Vec<_>>()))?;
        }
        Ok(())
    }

    /// Removes every host object of a sandbox: the container, its ports and rules, its netns,
    /// its overlay mount and its files. Succeeds for parts that are already gone.
    pub fn delete_sandbox(&self, id: &str, nics: &[NicSpec]) -> Result<(), NodeError> {
        let dirs = self.dirs(id);
        self.oci.delete(id)?;
        for nic in nics {
            self.unprogram_port(&naming::port_name(id, nic.index))?;
            dataplane::remove_port(id, nic)?;
        }
        // Ports this node knows of but the caller did not name (e.g. a half-made create).
        let leftovers: Vec<String> = self.ports.lock().unwrap().keys().filter(|p| naming::port_owner(p).as_deref() == Some(id)).cloned().collect();
        for port in leftovers {
            self.unprogram_port(&port)?;
            dataplane::delete_link(&port)?;
        }
        self.resolver.stop(id);
        container::delete_netns(&naming::netns_name(id))?;
        container::unmount(&dirs.rootfs())?;
        if dirs.root.exists() {
            std::fs::remove_dir_all(&dirs.root)?;
        }
        Ok(())
    }

    /// Plugs a running sandbox into one more network; peers can reach it when this returns.
    pub fn attach(&self, sandbox_id: &str, nic: &NicSpec) -> Result<(), NodeError> {
        let netns = naming::netns_name(sandbox_id);
        if !container::netns_path(&netns).exists() {
            return Err(NodeError::NotRunning(sandbox_id.to_string()));
        }
        // Rules before the link comes up: the port never forwards a frame unchecked.
        self.program_port(nic.policy(sandbox_id))?;
        dataplane::ensure_port(sandbox_id, &netns, nic, self.cfg.mtu)?;
        Ok(())
    }

    /// (Re)writes the sandbox's /etc/hosts in place (it is a bind mount of this very file).
    pub fn write_hosts(&self, spec: &SandboxSpec) -> Result<(), NodeError> {
        let dirs = self.dirs(&spec.id);
        std::fs::create_dir_all(&dirs.root)?;
        std::fs::write(dirs.hosts_file(), hosts_file(spec))?;
        Ok(())
    }

    /// Stops a sandbox's processes and keeps everything else (filesystem, addresses, ports):
    /// SIGTERM to PID 1 (the agent stops its children), SIGKILL after `grace`.
    /// Its ports go down too: a stopped sandbox's network stack must not keep answering peers.
    pub fn stop_sandbox(&self, id: &str, nics: &[NicSpec], grace: Duration) -> Result<(), NodeError> {
        if self.oci.status(id).as_deref() == Some("running") {
            let _ = self.oci.kill(id, "TERM");
            let start = Instant::now();
            while self.oci.status(id).as_deref() == Some("running") && start.elapsed() < grace {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.oci.delete(id)?;
        let _ = std::fs::remove_file(self.dirs(id).agent_socket());
        for nic in nics {
            dataplane::set_link_down(&naming::port_name(id, nic.index))?;
        }
        Ok(())
    }

    /// Resource use of a sandbox (cgroup v1 or v2, whichever the host has).
    pub fn metrics(&self, id: &str, nics: &[NicSpec]) -> Metrics {
        let cg = runtime::cgroups::SandboxCgroup::new(id);
        let mut m = Metrics {
            cpu_usage_ns: cg.cpu_usage_ns(),
            memory_bytes: cg.memory_bytes(),
            memory_limit_bytes: cg.memory_limit_bytes(),
            pids: cg.pids(),
            disk_bytes: runtime::cgroups::dir_size(&self.dirs(id).upper()),
            interfaces: vec![],
        };
        for nic in nics {
            let port = naming::port_name(id, nic.index);
            if let Some(c) = dataplane::link_counters(&port) {
                // The host end's receive is the sandbox's transmit.
                m.interfaces.push(InterfaceCounters {
                    ifname: nic.guest_ifname(),
                    network_id: nic.network_id.clone(),
                    rx_bytes: c.tx_bytes,
                    tx_bytes: c.rx_bytes,
                    rx_packets: c.tx_packets,
                    tx_packets: c.rx_packets,
                });
            }
        }
        m
    }

    /// Of `ids`, the sandboxes whose PID 1 has died (cheap: reads files only).
    pub fn dead_sandboxes(&self, ids: &[String]) -> Vec<String> {
        ids.iter().filter(|id| self.oci.init_gone(id) == Some(true)).cloned().collect()
    }

    /// On shutdown: with no sandbox ports left, the (empty) nftables table goes too, so a
    /// stopped node leaves nothing behind on the host.
    pub fn tidy_if_idle(&self) {
        if self.ports.lock().unwrap().is_empty() {
            let _ = nft::apply(&nft::delete_table());
        }
    }

    /// Whether the sandbox's container is running (its PID 1 alive).
    pub fn is_running(&self, id: &str) -> bool {
        self.oci.status(id).as_deref() == Some("running")
    }

    /// Replaces the membership view the resolver answers from.
    pub fn set_dns_view(&self, view: dns::DnsView) {
        self.resolver.set_view(view);
    }

    /// Unplugs one NIC of a sandbox (rules first, so nothing slips through while the link goes).
    pub fn detach(&self, sandbox_id: &str, nic: &NicSpec) -> Result<(), NodeError> {
        self.unprogram_port(&naming::port_name(sandbox_id, nic.index))?;
        dataplane::remove_port(sandbox_id, nic)?;
        Ok(())
    }

    /// Removes a network's bridge from this host (its ports must be gone already).
    pub fn remove_network(&self, network_id: &str) -> Result<(), NodeError> {
        dataplane::delete_link(&naming::bridge_name(network_id))?;
        Ok(())
    }

    pub fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecResult, NodeError> {
        Ok(agent_client::exec(&self.agent_socket(id)?, req)?)
    }

    fn agent_socket(&self, id: &str) -> Result<PathBuf, NodeError> {
        let socket = self.dirs(id).agent_socket();
        if !socket.exists() {
            return Err(NodeError::NotRunning(id.to_string()));
        }
        Ok(socket)
    }

    /// Opens a stream to the sandbox's agent (exec streams, attach, file transfers).
    pub fn agent_stream(&self, id: &str, first: &shoal_agent_proto::Request) -> Result<agent_client::AgentConn, NodeError> {
        Ok(agent_client::AgentConn::open(&self.agent_socket(id)?, first)?)
    }

    /// One request, one answer (an `Error` answer becomes `AgentError::Refused`).
    pub fn agent_request(&self, id: &str, req: &shoal_agent_proto::Request) -> Result<shoal_agent_proto::Response, NodeError> {
        Ok(agent_client::request(&self.agent_socket(id)?, req)?)
    }

    pub fn register_stream(&self, id: &str, pid: u32, sender: agent_client::AgentSender) {
        self.streams.lock().unwrap().insert((id.to_string(), pid), sender);
    }

    pub fn unregister_stream(&self, id: &str, pid: u32) {
        self.streams.lock().unwrap().remove(&(id.to_string(), pid));
    }

    /// Delivers a control frame (`Stdin`, `CloseStdin`, `Signal`, `Resize`; its `pid` field is
    /// filled in here) to process `pid`: on its own stream when it is a foreground exec, else as
    /// a pid-addressed request to the agent (background processes).
    pub fn control_process(&self, id: &str, pid: u32, frame: shoal_agent_proto::Request) -> Result<(), NodeError> {
        use shoal_agent_proto::Request as R;
        let sender = self.streams.lock().unwrap().get(&(id.to_string(), pid)).cloned();
        if let Some(s) = sender {
            return Ok(s.send(&frame)?);
        }
        let addressed = match frame {
            R::Stdin { data, .. } => R::Stdin { pid: Some(pid), data },
            R::CloseStdin { .. } => R::CloseStdin { pid: Some(pid) },
            R::Signal { signal, .. } => R::Signal { pid: Some(pid), signal },
            R::Resize { rows, cols, .. } => R::Resize { pid: Some(pid), rows, cols },
            other => other,
        };
        self.agent_request(id, &addressed)?;
        Ok(())
    }

    /// After a (re)start: rebuilds the nftables table, re-adopts or repairs every sandbox that
    /// should exist, and removes every Shoal object of this data directory that should not.
    /// Returns one result per desired sandbox.
    pub fn converge(&self, desired: &[SandboxSpec], networks: &BTreeSet<String>) -> Vec<(String, Result<(), NodeError>)> {
        let wanted: BTreeSet<&str> = desired.iter().map(|s| s.id.as_str()).collect();
        {
            let mut ports = self.ports.lock().unwrap();
            ports.clear();
            for s in desired {
                for nic in &s.nics {
                    let p = nic.policy(&s.id);
                    ports.insert(p.port.clone(), p);
                }
            }
            if let Err(e) = nft::apply(&nft::full_ruleset(&ports.values().cloned().collect::<Vec<_>>())) {
                tracing::error!("rebuilding nftables table: {e}");
            }
        }
        // Stale: containers, sandbox directories and ports of sandboxes that should not exist.
        let mut stale: BTreeSet<String> = self.oci.list().into_iter().filter(|id| !wanted.contains(id.as_str())).collect();
        if let Ok(dir) = std::fs::read_dir(self.cfg.data_dir.join("sandboxes")) {
            stale.extend(dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|id| naming::is_sandbox_id(id) && !wanted.contains(id.as_str())));
        }
        for id in &stale {
            tracing::info!(sandbox = %id, "removing leftover sandbox");
            if let Err(e) = self.delete_sandbox(id, &[]) {
                tracing::warn!(sandbox = %id, "removing leftover sandbox: {e}");
            }
        }
        for port in dataplane::links_with_prefix(naming::PORT_PREFIX) {
            if naming::port_owner(&port).is_some_and(|owner| !wanted.contains(owner.as_str())) {
                let _ = dataplane::delete_link(&port);
            }
        }
        let results = desired.iter().map(|s| (s.id.clone(), self.ensure_sandbox(s))).collect();
        let wanted_bridges: BTreeSet<String> = desired.iter().flat_map(|s| s.nics.iter().map(|n| n.bridge())).collect();
        for bridge in dataplane::links_with_prefix(naming::BRIDGE_PREFIX) {
            let known = networks.iter().any(|n| naming::bridge_name(n) == bridge);
            if !wanted_bridges.contains(&bridge) && (known || dataplane::bridge_ports(&bridge).is_empty()) {
                let _ = dataplane::delete_link(&bridge);
            }
        }
        results
    }

    /// Removes everything this data directory's node made on the host (all sandboxes, ports,
    /// bridges and the nftables table). Used by `shoal node purge` and by tests.
    pub fn purge(&self) -> Result<(), NodeError> {
        let results = self.converge(&[], &BTreeSet::new());
        debug_assert!(results.is_empty());
        for bridge in dataplane::links_with_prefix(naming::BRIDGE_PREFIX) {
            dataplane::delete_link(&bridge)?;
        }
        nft::apply(&nft::delete_table())?;
        Ok(())
    }

    /// PID-1 console output of a sandbox (its last `lines` lines).
    pub fn console(&self, id: &str, lines: usize) -> String {
        tail(&self.dirs(id).console_log(), lines)
    }
}

/// With br_netfilter's `bridge-nf-call-iptables=1`, bridged IPv4 between sandboxes also crosses
/// the host's iptables FORWARD chain; a DROP policy there would silently cut every network.
/// Shoal does not edit the host's firewall, so it says what to add.
pub fn forward_drop_warning() -> Option<String> {
    let calls = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").ok()?;
    if calls.trim() != "1" {
        return None;
    }
    let nft = cmd::run("nft", &["list", "chains", "ip"]).unwrap_or_default();
    let nft_drop = nft.split("chain ").any(|c| c.contains("hook forward") && c.contains("policy drop"));
    let legacy_drop = cmd::run("iptables-legacy", &["-S", "FORWARD"]).is_ok_and(|o| o.contains("-P FORWARD DROP"));
    (nft_drop || legacy_drop).then(|| {
        "the host's iptables FORWARD policy is DROP and bridge-nf-call-iptables=1, so traffic between sandboxes \
         will be dropped: allow it with `iptables -I FORWARD -i shb-+ -o shb-+ -j ACCEPT` \
         (Shoal's own nftables rules still enforce isolation)"
            .to_string()
    })
}

/// True for an ELF executable without a program interpreter (it needs nothing from the image).
pub fn is_static_executable(path: &Path) -> bool {
    std::fs::read(path).ok().and_then(|b| images::elf_is_static(&b)) == Some(true)
}

fn hosts_file(spec: &SandboxSpec) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n");
    if let Some(nic) = spec.nics.first() {
        s.push_str(&format!("{}\t{}\n", nic.ip, spec.name));
    } else {
        s.push_str(&format!("127.0.1.1\t{}\n", spec.name));
    }
    s
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn lock_data_dir(dir: &Path) -> Result<File, NodeError> {
    use std::os::fd::AsRawFd;
    let f = File::create(dir.join("node.lock"))?;
    // SAFETY: a valid open file descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(NodeError::Locked(dir.display().to_string()));
    }
    Ok(f)
}

impl Drop for Node {
    fn drop(&mut self) {
        // The per-namespace lock file is only a rendezvous point: remove it while we hold it.
        if let Ok(ino) = std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m)) {
            let _ = std::fs::remove_file(format!("/run/shoal/netns-{ino}.lock"));
        }
    }
}

/// One node per network namespace: the nftables table and the bridges are per namespace, so a
/// second node (another data directory) would take over the first one's dataplane.
fn lock_netns() -> Result<File, NodeError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/self/ns/net")?.ino();
    std::fs::create_dir_all("/run/shoal")?;
    let path = format!("/run/shoal/netns-{ino}.lock");
    let f = File::create(&path)?;
    // SAFETY: a valid open file descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(NodeError::Probe(format!(
            "another Shoal node already runs in this network namespace (lock {path}): one node per host; stop it or run this one in its own namespace"
        )));
    }
    Ok(f)
}

/// Host features Shoal needs; a missing one stops the node with a message saying what to do,
/// never a silent fail-open.
pub fn probe(cfg: &NodeConfig) -> Result<(), NodeError> {
    let p = |m: String| NodeError::Probe(m);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(p("the node must run as root (it creates namespaces, bridges and nftables rules)".into()));
    }
    for (tool, pkg) in [("ip", "iproute2"), ("bridge", "iproute2"), ("nft", "nftables")] {
        if cmd::run(tool, &["-V"]).is_err() {
            return Err(p(format!("`{tool}` is missing: install it with `apt-get install {pkg}`")));
        }
    }
    if cmd::run(&cfg.oci_runtime, &["--version"]).is_err() {
        return Err(p(format!("OCI runtime `{}` not found: install runc (`apt-get install runc`) or pass --oci-runtime", cfg.oci_runtime)));
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.ends_with("overlay")) {
        let _ = cmd::run("modprobe", &["overlay"]);
        let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !fs.lines().any(|l| l.ends_with("overlay")) {
            return Err(p("the kernel has no overlayfs: load it with `modprobe overlay`".into()));
        }
    }
    if !cfg.agent_bin.is_file() {
        return Err(p(format!(
            "shoal-agent not found at {}: build it with `scripts/build.sh` or pass --agent-bin",
            cfg.agent_bin.display()
        )));
    }
    if !is_static_executable(&cfg.agent_bin) {
        return Err(p(format!(
            "{} is not a statically linked executable, so it cannot run inside arbitrary images: build it with `scripts/build.sh` (RUSTFLAGS=\"-C target-feature=+crt-static\")",
            cfg.agent_bin.display()
        )));
    }
    // The whole bridge-family ruleset with one sample port, in a throw-away table: fails here if
    // the kernel lacks nf_tables bridge support or any match the port rules use (ether, arp, ip,
    // verdict maps, counters), instead of failing open later.
    let sample = nft::PortPolicy {
        port: format!("{}probe0000000", naming::PORT_PREFIX),
        mac: "02:00:00:00:00:01".into(),
        ip: std::net::Ipv4Addr::new(10, 0, 0, 1),
        cidr: "10.0.0.0/24".parse().expect("valid"),
    };
    let mut probe_rules = nft::full_ruleset_in("shoal-probe", std::slice::from_ref(&sample));
    probe_rules.push_str("delete table bridge shoal-probe\n");
    nft::apply(&probe_rules).map_err(|e| p(format!("nftables bridge filtering does not work on this kernel ({e}); Shoal will not run without it")))?;
    Ok(())
}
