//! Restart and removal: a restarted `shoal up` finds and re-adopts everything; `rm` leaves no
//! host object behind; shape limits are real cgroup limits.

use std::process::Command;
use std::time::Duration;

use crate::harness::{eventually, Host};

fn runc_ids(h: &Host) -> Vec<String> {
    let out = Command::new("runc").arg("--root").arg(h.data_dir().join("oci-state")).args(["list", "-q"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn mounts_under(h: &Host) -> usize {
    let dir = h.data_dir().display().to_string();
    std::fs::read_to_string("/proc/self/mounts").unwrap().lines().filter(|l| l.contains(&dir)).count()
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn restart_readopts_and_rm_removes_every_host_object() {
    let mut h = Host::start();
    h.ok(&["network", "create", "n1"]);
    let a = h.sandbox("a", "busybox:1", &["n1"]);
    let b = h.sandbox("b", "busybox:1", &["n1"]);
    let ip_b = h.member_ip("n1", "b");
    h.sh_ok("b", "mkdir -p /www && echo ok > /www/health && httpd -p 8080 -h /www && echo kept > /root/file");
    // (busybox-static's wget crashes in static glibc's resolver; nc speaks HTTP/1.0 just fine.)
    let fetch = format!("printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip_b} 8080 | tail -n 1");
    assert_eq!(h.sh_ok("a", &fetch).trim(), "ok");

    // Ctrl-C and start again: same sandboxes, same processes, still connected.
    h.stop();
    h.boot();
    let list = h.json(&["sandbox", "list"]);
    let states: Vec<(&str, &str)> = list.as_array().unwrap().iter().map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap())).collect();
    assert_eq!(states, [("a", "running"), ("b", "running")]);
    assert_eq!(h.sh_ok("a", &fetch).trim(), "ok", "the server in b survived the restart");

    // A sandbox that died while Shoal was down (e.g. a host reboot) comes back with its files.
    h.stop();
    let b_id = b["id"].as_str().unwrap();
    let out = Command::new("runc").arg("--root").arg(h.data_dir().join("oci-state")).args(["kill", b_id, "KILL"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("b to stop", Duration::from_secs(10), || {
        let o = Command::new("runc").arg("--root").arg(h.data_dir().join("oci-state")).args(["state", b_id]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).contains("\"stopped\"")
    });
    h.boot();
    assert_eq!(h.sh_ok("b", "cat /root/file").trim(), "kept");
    h.sh_ok("a", &format!("ping -c 1 -W 2 {ip_b}"));

    // rm removes links, rules, netns, mounts, containers and files.
    let ids = [a["id"].as_str().unwrap().to_string(), b_id.to_string()];
    assert!(!h.shoal_links().is_empty());
    h.ok(&["sandbox", "rm", "a", "b"]);
    assert_eq!(h.shoal_links(), Vec::<String>::new(), "ports and the now-empty bridge are gone");
    let rules = h.host_cmd(&["nft", "list", "table", "bridge", "shoal"]);
    for id in &ids {
        assert!(!rules.contains(&id[4..]), "nft still mentions {id}:\n{rules}");
        assert!(!std::path::Path::new(&format!("/run/netns/shoal-{id}")).exists(), "netns of {id} left");
        assert!(!h.data_dir().join("sandboxes").join(id).exists(), "files of {id} left");
    }
    assert_eq!(runc_ids(&h), Vec::<String>::new());
    assert_eq!(mounts_under(&h), 0);
    let (_, n) = h.http("GET", "/v1/networks/n1", None);
    assert_eq!(n["members"], serde_json::json!([]));
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn a_sandbox_whose_pid1_died_is_failed_not_an_error() {
    let h = Host::start();
    let sb = h.json(&["sandbox", "create", "--name", "doomed", "--rootfs", "busybox:1"]);
    let id = sb["id"].as_str().unwrap();
    let out = Command::new("runc").arg("--root").arg(h.data_dir().join("oci-state")).args(["kill", id, "KILL"]).output().unwrap();
    assert!(out.status.success());
    eventually("the container to stop", Duration::from_secs(10), || {
        let (st, _) = h.http("POST", "/v1/sandboxes/doomed/exec", Some(r#"{"cmd":"true"}"#));
        st == 409
    });
    let (st, r) = h.http("POST", "/v1/sandboxes/doomed/exec", Some(r#"{"cmd":"true"}"#));
    assert_eq!((st, r["error"]["code"].as_str()), (409, Some("conflict")), "{r}");
    let s = h.json(&["sandbox", "get", "doomed"]);
    assert_eq!(s["state"], "failed");
    assert!(s["state_reason"].as_str().unwrap().contains("PID 1"), "{s}");
    h.ok(&["sandbox", "rm", "doomed"]);
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn shape_limits_are_enforced() {
    let h = Host::start();
    let sb = h.json(&["sandbox", "create", "--name", "small", "--rootfs", "busybox:1", "--shape", "s-1vcpu-256mb"]);
    let id = sb["id"].as_str().unwrap();
    let cg = |ctrl: &str, file: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/shoal/{id}/{file}")).unwrap().trim().to_string();
    assert_eq!(cg("memory", "memory.limit_in_bytes"), (256u64 << 20).to_string());
    assert_eq!(cg("pids", "pids.max"), "512");
    assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "100000");
    assert_eq!(cg("cpu", "cpu.cfs_period_us"), "100000");
    // A memory hog is killed inside its sandbox; the sandbox itself keeps answering.
    let (code, _, _) = h.sh("small", "dd if=/dev/zero of=/dev/null bs=400M count=1");
    assert_eq!(code, 137, "a 400 MiB allocation in a 256 MiB sandbox must be OOM-killed");
    assert_eq!(h.sh_ok("small", "echo alive").trim(), "alive");
}
