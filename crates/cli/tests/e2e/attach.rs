//! Live attach and detach, network delete/recreate, and a full network.

use std::time::Duration;

use crate::harness::{ensure_image, eventually, Host};
use crate::isolation::start_probe_server;

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn attach_is_reachable_at_once_and_detach_cuts_streams() {
    ensure_image("devbox:1");
    let h = Host::start();
    h.ok(&["network", "create", "n1"]);
    h.ok(&["network", "create", "n2"]);
    h.sandbox("a", "devbox:1", &["n1"]);
    h.sandbox("b", "devbox:1", &["n2"]);
    start_probe_server(&h, "a");
    start_probe_server(&h, "b");

    // b joins n1 while running: eth1 appears configured, the member list and DNS follow, and a
    // reaches it right away.
    let sb = h.json(&["network", "attach", "n1", "b"]);
    let nic = sb["networks"].as_array().unwrap().iter().find(|n| n["network_name"] == "n1").unwrap().clone();
    assert_eq!(nic["ifname"], "eth1");
    let ip = nic["ip"].as_str().unwrap();
    let probe = format!(
        "python3 -c \"import socket,time; t=time.time()\nwhile True:\n  try: socket.create_connection(('{ip}',9000),timeout=0.05).recv(4); break\n  except OSError: time.sleep(0.005)\nprint(int((time.time()-t)*1000))\""
    );
    let ms: u64 = h.sh_ok("a", &probe).trim().parse().unwrap();
    assert!(ms < 100, "a reached b {ms} ms after attach returned (promise: 100 ms)");
    assert_eq!(h.sh_ok("b", "ip -4 -o addr show dev eth1 | awk '{print $4}'").trim(), format!("{ip}/24"));
    assert_eq!(h.sh_ok("a", "getent hosts b.n1.internal | cut -d' ' -f1").trim(), ip);
    let members = h.json(&["network", "members", "n1"]);
    let b = members.as_array().unwrap().iter().find(|m| m["sandbox_name"] == "b").unwrap();
    assert_eq!((b["ip"].as_str(), b["dns_name"].as_str(), b["state"].as_str()), (Some(ip), Some("b.n1.internal"), Some("running")));
    assert!(!b["joined_at"].as_str().unwrap().is_empty());
    let out = h.cli(&["network", "attach", "n1", "b"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already on network"));

    // A stream from a to b over n1; detach cuts it at once.
    let stream_server = "python3 - >/dev/null 2>&1 <<'EOF' &\n\
import socket, time\n\
s = socket.socket(); s.bind(('0.0.0.0', 9100)); s.listen(1)\n\
c, _ = s.accept()\n\
while True: c.sendall(b'x' * 1000); time.sleep(0.01)\n\
EOF";
    h.sh_ok("b", stream_server);
    eventually("stream server", Duration::from_secs(5), || h.sh("b", "ss -ltn | grep -q 9100").0 == 0);
    // (Raw strings: a `\` line continuation would eat the Python indentation.)
    let reader = r#"nohup python3 - >/dev/null 2>&1 <<'EOF' &
import socket
c = socket.create_connection(('IP', 9100)); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    n += len(d); open('/tmp/count', 'w').write(str(n))
EOF"#
        .replace("IP", ip);
    h.sh_ok("a", &reader);
    let count = || h.sh("a", "cat /tmp/count 2>/dev/null || echo 0").1.trim().parse::<u64>().unwrap_or(0);
    eventually("data flowing", Duration::from_secs(5), || count() > 10_000);
    h.json(&["network", "detach", "n1", "b"]);
    std::thread::sleep(Duration::from_millis(100));
    let after = count();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(count(), after, "data still flowed after detach");
    assert_ne!(h.sh("b", "ip link show eth1").0, 0, "eth1 is gone from b");
    let members = h.json(&["network", "members", "n1"]);
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(h.sh("a", "getent hosts b.n1.internal").0, 2, "the name is gone");

    // The address went back to the pool: the next member gets it.
    h.sandbox("c", "busybox:1", &["n1"]);
    assert_eq!(h.member_ip("n1", "c"), ip);
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn network_delete_and_recreate_leaves_no_stale_state() {
    let h = Host::start();
    h.ok(&["network", "create", "n1", "--cidr", "10.99.0.0/24"]);
    h.sandbox("a", "busybox:1", &["n1"]);
    h.sandbox("b", "busybox:1", &["n1"]);
    let out = h.cli(&["network", "rm", "n1"]);
    assert!(!out.status.success(), "refused with members");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    h.ok(&["network", "rm", "n1", "--force"]);
    assert_eq!(h.shoal_links(), Vec::<String>::new(), "ports and bridge are gone");
    let map = h.host_cmd(&["nft", "list", "map", "bridge", "shoal", "ports"]);
    assert!(!map.contains("shv"), "stale nft elements: {map}");
    let a = h.json(&["sandbox", "get", "a"]);
    assert_eq!(a["networks"], serde_json::json!([]));
    assert_eq!(h.sh_ok("a", "echo alive").trim(), "alive", "members keep running");

    // Same name, same block: a clean network; re-attached members get fresh, working ports.
    h.ok(&["network", "create", "n1", "--cidr", "10.99.0.0/24"]);
    h.ok(&["network", "attach", "n1", "a"]);
    h.ok(&["network", "attach", "n1", "b"]);
    let ip_b = h.member_ip("n1", "b");
    h.sh_ok("a", &format!("ping -c 1 -W 2 {ip_b}"));
    let id = h.json(&["network", "get", "n1"])["id"].as_str().unwrap().to_string();
    let bridge = format!("shb-{}", &id[4..]);
    let fdb = h.host_cmd(&["bridge", "fdb", "show", "br", &bridge]);
    let static_macs: Vec<&str> = fdb.lines().filter(|l| l.contains("static") && l.contains("shv")).collect();
    assert_eq!(static_macs.len(), 2, "exactly one static FDB entry per member:\n{fdb}");
    let map = h.host_cmd(&["nft", "list", "map", "bridge", "shoal", "ports"]);
    assert_eq!(map.matches("jump port-").count(), 2, "{map}");
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn a_network_holds_250_members() {
    let h = Host::start();
    h.ok(&["network", "create", "big"]);
    for i in 0..250 {
        let (st, r) = h.http("POST", "/v1/sandboxes", Some(&format!(r#"{{"name":"m{i}","rootfs":"busybox:1","shape":"s-1vcpu-256mb","networks":[{{"name":"big"}}]}}"#)));
        assert_eq!(st, 201, "member {i}: {r}");
    }
    let members = h.json(&["network", "members", "big"]);
    assert_eq!(members.as_array().unwrap().len(), 250);
    let last = h.member_ip("big", "m249");
    h.sh_ok("m0", &format!("ping -c 1 -W 2 {last}"));
    h.sh_ok("m249", "ping -c 1 -W 2 m0.big.internal || ping -c 1 -W 2 $(nslookup m0.big.internal 127.0.0.53 | awk '/Address/ {a=$2} END {print a}')");
    let (st, r) = h.http("POST", "/v1/sandboxes", Some(r#"{"name":"m250","rootfs":"busybox:1","networks":[{"name":"big"}]}"#));
    assert_eq!(st, 201, "a /24 holds 253: {r}");
}
