//! Container sandboxes: an OCI bundle run by an OCI runtime binary (runc by default), with an
//! overlayfs root (image read-only below, a per-sandbox upper layer above), its own network
//! namespace made by the node (so the dataplane is wired before the sandbox starts and survives
//! a node restart), and `shoal-agent` as PID 1.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cmd::{run, run_idempotent, CmdError};

/// Files of one sandbox under `<data-dir>/sandboxes/<id>/`.
#[derive(Debug, Clone)]
pub struct SandboxDirs {
    pub root: PathBuf,
}

impl SandboxDirs {
    pub fn new(sandboxes_dir: &Path, id: &str) -> Self {
        SandboxDirs { root: sandboxes_dir.join(id) }
    }
    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.root.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    /// Bind-mounted at /.shoal inside; holds the agent socket.
    pub fn agent_dir(&self) -> PathBuf {
        self.root.join("shoal")
    }
    pub fn agent_socket(&self) -> PathBuf {
        self.agent_dir().join(shoal_agent_proto::SOCKET_NAME)
    }
    pub fn hosts_file(&self) -> PathBuf {
        self.root.join("hosts")
    }
    /// Bind-mounted read-only at /etc/resolv.conf (the node's resolver inside the netns).
    pub fn resolv_conf(&self) -> PathBuf {
        self.root.join("resolv.conf")
    }
    /// PID 1's stdout and stderr.
    pub fn console_log(&self) -> PathBuf {
        self.root.join("console.log")
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

/// Number of mounted sandbox roots that use `lower` as their image layer.
pub fn overlays_using(lower: &Path) -> usize {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else { return 0 };
    let needle = format!("lowerdir={}", lower.display());
    mounts.lines().filter(|l| l.starts_with("overlay ") && l.split([' ', ',']).any(|opt| opt == needle)).count()
}

pub fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else { return false };
    let target = path.to_string_lossy();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&*target))
}

/// Mounts the overlay root unless it is already mounted (idempotent).
pub fn mount_overlay(lower: &Path, dirs: &SandboxDirs) -> std::io::Result<()> {
    let target = dirs.rootfs();
    if is_mounted(&target) {
        return Ok(());
    }
    for d in [dirs.upper(), dirs.work(), target.clone()] {
        std::fs::create_dir_all(&d)?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        dirs.upper().display(),
        dirs.work().display()
    );
    let opts = CString::new(opts).expect("no NUL");
    let fstype = CString::new("overlay").unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::mount(fstype.as_ptr(), cstr(&target).as_ptr(), fstype.as_ptr(), 0, opts.as_ptr().cast()) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("mounting overlay root at {}: {e}", target.display())));
    }
    Ok(())
}

pub fn unmount(path: &Path) -> std::io::Result<()> {
    if !is_mounted(path) {
        return Ok(());
    }
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::umount2(cstr(path).as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("unmounting {}: {e}", path.display())));
    }
    Ok(())
}

/// Drives the OCI runtime binary with its own state directory (so several Shoal data dirs on
/// one host never see each other's containers).
#[derive(Debug, Clone)]
pub struct OciRuntime {
    pub binary: String,
    pub state_root: PathBuf,
}

impl OciRuntime {
    fn base_args(&self) -> Vec<String> {
        vec!["--root".into(), self.state_root.display().to_string()]
    }

    fn run(&self, args: &[&str]) -> Result<String, CmdError> {
        let mut all: Vec<String> = self.base_args();
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        run(&self.binary, &refs)
    }

    /// `running`, `created`, `stopped`, … or None when the runtime does not know the container.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.run(&["state", id]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v["status"].as_str().map(str::to_string)
    }

    /// Starts the container detached. PID 1's output goes to the console log; the runtime runs
    /// in its own session so that a Ctrl-C aimed at `shoal up` never reaches sandboxes.
    pub fn start(&self, id: &str, dirs: &SandboxDirs) -> Result<(), CmdError> {
        let bundle = dirs.bundle().display().to_string();
        let describe = format!("{} run --detach --bundle {bundle} {id}", self.binary);
        let spawn_err = |source| CmdError::Spawn { cmd: describe.clone(), source };
        // The runtime's own stderr goes to the console log as well: a pipe would be inherited by
        // the container and never reach EOF.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dirs.console_log()).map_err(spawn_err)?;
        let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(&self.binary);
        cmd.args(self.base_args()).args(["run", "--detach", "--bundle", &bundle, id]);
        cmd.stdin(Stdio::null()).stdout(log.try_clone().map_err(spawn_err)?).stderr(log);
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let status = cmd.status().map_err(spawn_err)?;
        if !status.success() {
            let text = std::fs::read(dirs.console_log()).unwrap_or_default();
            let new = String::from_utf8_lossy(&text[(log_len as usize).min(text.len())..]).trim().to_string();
            return Err(CmdError::Failed { cmd: describe, status: status.to_string(), stderr: new });
        }
        Ok(())
    }

    /// Sends a signal to the container's PID 1.
    pub fn kill(&self, id: &str, signal: &str) -> Result<(), CmdError> {
        self.run(&["kill", id, signal]).map(|_| ())
    }

    /// Kills and removes the container; succeeds when it does not exist.
    pub fn delete(&self, id: &str) -> Result<(), CmdError> {
        let mut all = self.base_args();
        all.extend(["delete".into(), "--force".into(), id.into()]);
        let refs: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        run_idempotent(&self.binary, &refs)
    }

    /// Whether the container's init process is known to be gone, from runc's state file and
    /// /proc (no process spawn: this runs every few seconds for every sandbox). `None` when it
    /// cannot tell (no state file, e.g. another OCI runtime).
    pub fn init_gone(&self, id: &str) -> Option<bool> {
        let state: serde_json::Value = serde_json::from_slice(&std::fs::read(self.state_root.join(id).join("state.json")).ok()?).ok()?;
        let pid = state["init_process_pid"].as_u64()?;
        let start = state["init_process_start"].as_u64();
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Some(true) };
        // Fields after the command name (which may contain spaces) start at ") ".
        let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let zombie = fields.first() == Some(&"Z") || fields.first() == Some(&"X");
        // Field 22 (starttime) is index 19 here; a different start time means a reused pid.
        let reused = start.is_some_and(|s| fields.get(19).and_then(|f| f.parse::<u64>().ok()) != Some(s));
        Some(zombie || reused)
    }

    /// Ids of all containers in this runtime's state directory.
    pub fn list(&self) -> Vec<String> {
        let Ok(out) = self.run(&["list", "--format", "json"]) else { return vec![] };
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
        v.as_array().map(|a| a.iter().filter_map(|c| c["id"].as_str().map(str::to_string)).collect()).unwrap_or_default()
    }
}

pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

pub fn ensure_netns(name: &str) -> Result<(), CmdError> {
    if !netns_path(name).exists() {
        run("ip", &["netns", "add", name])?;
    }
    run("ip", &["-n", name, "link", "set", "dev", "lo", "up"])?;
    // Networks are IPv4 for now: no IPv6 addresses, router solicitations or MLD from sandboxes
    // (the port rules drop such frames anyway; this keeps the drop counters meaningful).
    crate::cmd::sysctls_in_netns(name, &[("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1")])
        .map_err(|source| CmdError::Spawn { cmd: format!("sysctl in netns {name}"), source })?;
    Ok(())
}

pub fn delete_netns(name: &str) -> Result<(), CmdError> {
    if !netns_path(name).exists() {
        return Ok(());
    }
    run_idempotent("ip", &["netns", "delete", name])
}
