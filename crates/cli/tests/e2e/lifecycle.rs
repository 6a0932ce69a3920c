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
    // The node notices on its own (no request needed) ...
    eventually("the sandbox to be marked failed", Duration::from_secs(10), || h.json(&["sandbox", "get", "doomed"])["state"] == "failed");
    let (st, r) = h.http("POST", "/v1/sandboxes/doomed/exec", Some(r#"{"cmd":"true"}"#));
    assert_eq!((st, r["error"]["code"].as_str()), (409, Some("conflict")), "{r}");
    let s = h.json(&["sandbox", "get", "doomed"]);
    assert_eq!(s["state"], "failed");
    assert!(s["state_reason"].as_str().unwrap().contains("PID 1"), "{s}");
    // ... and `start` brings it back.
    assert_eq!(h.json(&["sandbox", "start", "doomed"])["state"], "running");
    assert_eq!(h.sh_ok("doomed", "echo back").trim(), "back");
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

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn stop_start_keeps_the_filesystem_and_exec_on_stopped_is_409() {
    let h = Host::start();
    h.ok(&["network", "create", "n1"]);
    h.sandbox("a", "busybox:1", &["n1"]);
    h.sandbox("b", "busybox:1", &["n1"]);
    let ip_a = h.member_ip("n1", "a");
    h.sh_ok("a", "echo kept > /root/file");
    let s = h.json(&["sandbox", "stop", "a"]);
    assert_eq!(s["state"], "stopped");
    let (st, r) = h.http("POST", "/v1/sandboxes/a/exec", Some(r#"{"cmd":"true"}"#));
    assert_eq!(st, 409, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("stopped"), "{r}");
    assert_ne!(h.sh("b", &format!("ping -c 1 -W 1 {ip_a}")).0, 0, "a stopped sandbox does not answer");
    // Its address stays reserved while stopped.
    assert_eq!(h.member_ip("n1", "a"), ip_a);
    let s = h.json(&["sandbox", "start", "a"]);
    assert_eq!(s["state"], "running");
    assert_eq!(h.sh_ok("a", "cat /root/file").trim(), "kept");
    h.sh_ok("b", &format!("ping -c 1 -W 2 {ip_a}"));
    // The console shows the agent's start-up lines of both runs.
    let log = h.json(&["logs", "a"]);
    assert!(log["log"].as_str().unwrap().matches("listening on").count() >= 2, "{log}");
    // Metrics from the cgroups and the port.
    h.sh_ok("a", "dd if=/dev/zero of=/root/blob bs=1M count=3 2>/dev/null");
    let m = h.json(&["sandbox", "metrics", "a"]);
    assert!(m["memory_bytes"].as_u64().unwrap() > 0, "{m}");
    assert!(m["pids"].as_u64().unwrap() >= 1, "{m}");
    assert!(m["disk_bytes"].as_u64().unwrap() >= 3 << 20, "{m}");
    assert_eq!(m["interfaces"][0]["ifname"], "eth0");
    assert!(m["interfaces"][0]["rx_bytes"].as_u64().unwrap() > 0, "{m}");
    // Stop survives a restart of shoal up: still stopped, not resurrected.
    h.json(&["sandbox", "stop", "a"]);
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn timeouts_delete_or_stop_and_can_be_extended() {
    let h = Host::start();
    let s = h.json(&["sandbox", "create", "--name", "short", "--rootfs", "busybox:1", "--timeout", "2"]);
    assert!(s["expires_at"].as_str().is_some(), "{s}");
    h.json(&["sandbox", "create", "--name", "pause", "--rootfs", "busybox:1", "--timeout", "2", "--on-timeout", "stop"]);
    h.json(&["sandbox", "create", "--name", "extended", "--rootfs", "busybox:1", "--timeout", "2"]);
    h.json(&["sandbox", "timeout", "extended", "600"]);
    eventually("short to be deleted", Duration::from_secs(10), || h.http("GET", "/v1/sandboxes/short", None).0 == 404);
    eventually("pause to be stopped", Duration::from_secs(10), || h.json(&["sandbox", "get", "pause"])["state"] == "stopped");
    assert_eq!(h.json(&["sandbox", "get", "extended"])["state"], "running");
    let (st, r) = h.http("POST", "/v1/sandboxes", Some(r#"{"rootfs":"busybox:1","timeout_secs":0}"#));
    assert_eq!(st, 422, "{r}");
    let (st, r) = h.http("POST", "/v1/sandboxes", Some(r#"{"rootfs":"busybox:1","timeout_secs":5,"on_timeout":"explode"}"#));
    assert_eq!(st, 422, "{r}");
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn a_fork_bomb_is_bounded_by_the_pids_limit() {
    let h = Host::start();
    h.json(&["sandbox", "create", "--name", "bomb", "--rootfs", "busybox:1", "--shape", "s-1vcpu-256mb"]);
    h.json(&["sandbox", "create", "--name", "bystander", "--rootfs", "busybox:1"]);
    // A classic bomb, cut off by the command timeout; the pids cgroup stops it at 512.
    h.sh("bomb", "timeout -s KILL 5 sh -c 'b() { b | b & }; b' ; echo done");
    let id = h.json(&["sandbox", "get", "bomb"])["id"].as_str().unwrap().to_string();
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/shoal/{id}/pids.max")).unwrap();
    assert_eq!(max.trim(), "512");
    // The limit was actually hit (forks were refused), not merely configured.
    let events = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/shoal/{id}/pids.events")).unwrap();
    let refused: u64 = events.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(refused > 0, "the fork bomb never reached the pids limit: {events}");
    assert_eq!(h.sh_ok("bystander", "echo fine").trim(), "fine", "other sandboxes keep working");
    h.ok(&["sandbox", "rm", "bomb"]);
}
