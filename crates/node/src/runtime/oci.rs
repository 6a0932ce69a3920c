//! The OCI runtime-spec `config.json` of a container sandbox (pure; unit-tested).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shoal_api::Shape;

/// Capabilities of root inside a sandbox: Docker's default set plus NET_ADMIN, which only
/// reaches the sandbox's own network namespace. Enforcement lives on the host (nftables on the
/// bridge), so a guest that reconfigures its interfaces gains nothing.
const CAPS: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_ADMIN",
];

pub struct OciParams<'a> {
    pub sandbox_id: &'a str,
    pub hostname: &'a str,
    pub shape: &'a Shape,
    pub env: &'a BTreeMap<String, String>,
    pub netns_path: &'a str,
    /// Host directory holding the agent socket, mounted at /.shoal.
    pub agent_dir: &'a str,
    pub agent_bin: &'a str,
    pub hosts_file: &'a str,
    pub resolv_conf: &'a str,
}

pub const AGENT_PATH_IN_SANDBOX: &str = "/.shoal-agent";

pub fn config(p: &OciParams) -> Value {
    let mut env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(), "HOME=/root".to_string()];
    env.extend(p.env.iter().map(|(k, v)| format!("{k}={v}")));
    let caps: Vec<&str> = CAPS.to_vec();
    let cpu_period: u64 = 100_000;
    let memory = p.shape.memory_mb * 1024 * 1024;
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": [AGENT_PATH_IN_SANDBOX],
            "env": env,
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": p.hostname,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] },
            { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"] },
            { "destination": "/.shoal", "type": "bind", "source": p.agent_dir, "options": ["rbind", "rw", "nosuid", "nodev", "noexec"] },
            { "destination": AGENT_PATH_IN_SANDBOX, "type": "bind", "source": p.agent_bin, "options": ["bind", "ro", "nosuid", "nodev"] },
            { "destination": "/etc/hosts", "type": "bind", "source": p.hosts_file, "options": ["bind", "ro"] },
            { "destination": "/etc/resolv.conf", "type": "bind", "source": p.resolv_conf, "options": ["bind", "ro"] }
        ],
        "linux": {
            "cgroupsPath": format!("/shoal/{}", p.sandbox_id),
            "resources": {
                "devices": [{ "allow": false, "access": "rwm" }],
                "memory": { "limit": memory },
                "cpu": { "quota": p.shape.vcpus as u64 * cpu_period, "period": cpu_period },
                "pids": { "limit": p.shape.pids_limit }
            },
            "namespaces": [
                { "type": "pid" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" },
                { "type": "cgroup" },
                { "type": "network", "path": p.netns_path }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi", "/sys/devices/virtual/powercap"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_namespaces_follow_the_shape() {
        let shape = shoal_api::shapes::find("s-2vcpu-2gb").unwrap();
        let env = BTreeMap::from([("A".to_string(), "b".to_string())]);
        let c = config(&OciParams {
            sandbox_id: "sbx-0123456789",
            hostname: "api",
            shape,
            env: &env,
            netns_path: "/run/netns/shoal-sbx-0123456789",
            agent_dir: "/d/shoal",
            agent_bin: "/bin/agent",
            hosts_file: "/d/hosts",
            resolv_conf: "/d/resolv.conf",
        });
        let r = &c["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 2048u64 * 1024 * 1024);
        assert_eq!(r["cpu"]["quota"], 200_000);
        assert_eq!(r["pids"]["limit"], 2048);
        assert_eq!(c["linux"]["cgroupsPath"], "/shoal/sbx-0123456789");
        let ns: Vec<&str> = c["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "cgroup", "network"]);
        assert_eq!(c["linux"]["namespaces"][5]["path"], "/run/netns/shoal-sbx-0123456789");
        assert!(c["process"]["env"].as_array().unwrap().contains(&json!("A=b")));
        assert_eq!(c["process"]["args"][0], AGENT_PATH_IN_SANDBOX);
        assert!(!c["process"]["capabilities"]["bounding"].as_array().unwrap().contains(&json!("CAP_SYS_ADMIN")));
    }
}
