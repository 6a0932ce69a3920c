//! Isolation on one host: different networks cannot reach each other over TCP, UDP or ICMP,
//! even when root inside a sandbox adds routes; spoofed IP or MAC cannot send; the host's own
//! services are out of reach. Drop counters move exactly where drops are expected.

use std::time::Duration;

use crate::harness::{ensure_image, eventually, Host};

/// A TCP+UDP echo server and client probes (python3 is in devbox:1).
pub const PROBE: &str = r#"
import socket, sys, threading
mode = sys.argv[1]
if mode == "serve":
    def tcp():
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 9000)); s.listen(64)
        while True:
            c, _ = s.accept(); c.sendall(b"pong"); c.close()
    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9000))
        while True:
            d, a = s.recvfrom(100); s.sendto(b"pong", a)
    threading.Thread(target=tcp, daemon=True).start(); udp()
else:
    ip, port = sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 9000
    try:
        if mode == "tcp":
            c = socket.create_connection((ip, port), timeout=1.5); print(c.recv(10).decode())
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
            s.sendto(b"ping", (ip, port)); print(s.recvfrom(10)[0].decode())
    except OSError as e:
        print("fail", e); sys.exit(1)
"#;

pub fn start_probe_server(h: &Host, sandbox: &str) {
    let out = h.cli_stdin(&["exec", "-i", sandbox, "--", "sh", "-c", "cat > /probe.py"], Some(PROBE));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    h.sh_ok(sandbox, "nohup python3 /probe.py serve >/dev/null 2>&1 &");
    eventually("probe server", Duration::from_secs(10), || h.sh(sandbox, "python3 /probe.py tcp 127.0.0.1").0 == 0);
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

pub fn reaches(h: &Host, from: &str, ip: &str, proto: Proto) -> bool {
    let script = match proto {
        Proto::Tcp => format!("python3 /probe.py tcp {ip}"),
        Proto::Udp => format!("python3 /probe.py udp {ip}"),
        Proto::Icmp => format!("ping -c 1 -W 1 {ip}"),
    };
    let (code, out, _) = h.sh(from, &script);
    let ok = code == 0;
    if proto != Proto::Icmp {
        assert_eq!(ok, out.trim() == "pong", "probe output: {out}");
    }
    ok
}

/// Packets dropped so far by the nft rules of a sandbox's first port.
pub fn drops(h: &Host, sandbox: &str) -> u64 {
    drops_on(h, sandbox, 0)
}

/// Packets dropped so far by the nft rules of a sandbox's port for NIC `idx` (ethN).
pub fn drops_on(h: &Host, sandbox: &str, idx: u32) -> u64 {
    let sb = h.json(&["sandbox", "get", sandbox]);
    let id = sb["id"].as_str().unwrap();
    let port = format!("shv{}{idx:02x}", &id[4..]);
    let listing = h.host_cmd(&["nft", "list", "chain", "bridge", "shoal", &format!("port-{port}")]);
    assert!(listing.contains("counter"), "no rules for {port}: {listing}");
    let mut total = 0;
    let mut words = listing.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            total += words.next().unwrap().parse::<u64>().unwrap();
        }
    }
    total
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn spoofed_ip_or_mac_cannot_send() {
    ensure_image("devbox:1");
    let h = Host::start();
    h.ok(&["network", "create", "n1"]);
    h.sandbox("a", "devbox:1", &["n1"]);
    h.sandbox("b", "devbox:1", &["n1"]);
    start_probe_server(&h, "a");
    start_probe_server(&h, "b");
    let ip_a = h.member_ip("n1", "a");
    let ip_b = h.member_ip("n1", "b");
    assert!(reaches(&h, "a", &ip_b, Proto::Tcp), "baseline: a must reach b");

    // Another address in the same network (root inside can do this).
    let spoof_ip = ip_a.rsplit_once('.').map(|(p, _)| format!("{p}.200")).unwrap();
    h.sh_ok("a", &format!("ip addr flush dev eth0 && ip addr add {spoof_ip}/24 dev eth0"));
    let before = drops(&h, "a");
    for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        assert!(!reaches(&h, "a", &ip_b, proto), "a with spoofed IP {spoof_ip} reached b over {proto:?}");
    }
    assert!(drops(&h, "a") > before, "spoofed-IP traffic was not counted as dropped");
    h.sh_ok("a", &format!("ip addr flush dev eth0 && ip addr add {ip_a}/24 dev eth0"));
    eventually("a reaches b again with its own IP", Duration::from_secs(5), || reaches(&h, "a", &ip_b, Proto::Tcp));

    // Another MAC.
    let mac = h.sh_ok("a", "cat /sys/class/net/eth0/address").trim().to_string();
    h.sh_ok("a", "ip link set dev eth0 address 02:66:66:66:66:66 && ip neigh flush dev eth0");
    let before = drops(&h, "a");
    for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        assert!(!reaches(&h, "a", &ip_b, proto), "a with spoofed MAC reached b over {proto:?}");
    }
    assert!(drops(&h, "a") > before, "spoofed-MAC traffic was not counted as dropped");
    h.sh_ok("a", &format!("ip link set dev eth0 address {mac}"));
    eventually("a reaches b again with its own MAC", Duration::from_secs(5), || reaches(&h, "a", &ip_b, Proto::Tcp));

    // IPv6 and other ether types never leave the port (a raw frame with an IPv6 ether type).
    let before = drops(&h, "a");
    let raw = "import socket; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0',0)); \
               src=bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':','')); \
               [s.send(b'\\xff'*6 + src + b'\\x86\\xdd' + b'\\x60' + b'\\x00'*47) for _ in range(3)]";
    h.sh_ok("a", &format!("python3 -c \"{raw}\""));
    assert!(drops(&h, "a") >= before + 3, "raw IPv6 frames were not dropped");
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn host_services_are_unreachable_from_sandboxes() {
    ensure_image("devbox:1");
    // The API listens on every address of the test host, including one on a test-made link.
    let h = Host::start_listening("0.0.0.0");
    h.host_cmd(&["ip", "link", "add", "shtv0", "type", "veth", "peer", "name", "shtv1"]);
    h.host_cmd(&["ip", "addr", "add", "198.51.100.1/32", "dev", "shtv0"]);
    h.host_cmd(&["ip", "link", "set", "shtv0", "up"]);
    let from_host = h.host_cmd(&["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://198.51.100.1:7070/healthz"]);
    assert_eq!(from_host, "200", "the API must answer on the host itself, or this test proves nothing");

    h.ok(&["network", "create", "n1"]);
    let sb = h.sandbox("a", "devbox:1", &["n1"]);
    let net_id = sb["networks"][0]["network_id"].as_str().unwrap();
    let bridge = format!("shb-{}", &net_id[4..]);
    let bridge_mac = h.host_cmd(&["cat", &format!("/sys/class/net/{bridge}/address")]).trim().to_string();
    // Dropped as they enter the bridge (destination outside the network) or, failing that, in
    // the input hook: count the whole table.
    let input_drops = || {
        let l = h.host_cmd(&["nft", "list", "table", "bridge", "shoal"]);
        l.split("packets ").skip(1).map(|s| s.split_whitespace().next().unwrap().parse::<u64>().unwrap()).sum::<u64>()
    };
    // Root in the sandbox points a route and a neighbour entry straight at the bridge.
    h.sh_ok("a", &format!("ip route add 198.51.100.1/32 dev eth0 && ip neigh replace 198.51.100.1 lladdr {bridge_mac} dev eth0 nud permanent"));
    let before = input_drops();
    let (code, out, _) = h.sh("a", "curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://198.51.100.1:7070/healthz");
    assert!(code != 0 && out.trim() == "000", "a sandbox reached the host's API: exit {code}, status {out}");
    assert!(input_drops() > before, "frames to the host were not counted as dropped");
    // And its own loopback is its own.
    let (code, _, _) = h.sh("a", "curl -s --max-time 2 http://127.0.0.1:7070/healthz");
    assert_ne!(code, 0);
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn mtu_leaves_room_for_vxlan_and_too_big_is_reported() {
    ensure_image("devbox:1");
    let h = Host::start();
    h.ok(&["network", "create", "n1"]);
    h.sandbox("a", "devbox:1", &["n1"]);
    h.sandbox("b", "devbox:1", &["n1"]);
    let ip_b = h.member_ip("n1", "b");
    assert_eq!(h.sh_ok("a", "cat /sys/class/net/eth0/mtu").trim(), "1450");
    // 1450 - 20 (IP) - 8 (ICMP) = 1422 bytes fit with DF set; one more is refused, not lost.
    h.sh_ok("a", &format!("ping -c 1 -W 2 -M do -s 1422 {ip_b}"));
    let (code, out, err) = h.sh("a", &format!("ping -c 1 -W 2 -M do -s 1423 {ip_b}"));
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("message too long") || format!("{out}{err}").contains("mtu = 1450"), "{out}{err}");
}
