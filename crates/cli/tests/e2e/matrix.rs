//! The isolation matrix (issue 3): topology N1 {a, a2}, N2 {c}, d on N1+N2, e on no network.
//! Every row is probed over TCP, UDP and ICMP, and the nft drop counters of the sender's port
//! must move exactly in the rows that expect a drop.

use std::time::{Duration, Instant};

use crate::harness::{ensure_image, eventually, Host};
use crate::isolation::{drops, drops_on, reaches, start_probe_server, Proto};

struct Topology {
    h: Host,
}

impl Topology {
    fn build() -> Topology {
        ensure_image("devbox:1");
        let h = Host::start();
        h.ok(&["network", "create", "n1"]);
        h.ok(&["network", "create", "n2"]);
        for (name, nets) in [("a", &["n1"][..]), ("a2", &["n1"]), ("c", &["n2"]), ("d", &["n1", "n2"]), ("e", &[])] {
            h.sandbox(name, "devbox:1", nets);
            start_probe_server(&h, name);
        }
        Topology { h }
    }
    fn ip(&self, net: &str, sb: &str) -> String {
        self.h.member_ip(net, sb)
    }
    fn mac(&self, net: &str, sb: &str) -> String {
        let n = self.h.json(&["network", "members", net]);
        n.as_array().unwrap().iter().find(|m| m["sandbox_name"] == sb).unwrap()["mac"].as_str().unwrap().to_string()
    }
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn isolation_matrix() {
    let t = Topology::build();
    let h = &t.h;
    let (a, a2, c) = (t.ip("n1", "a"), t.ip("n1", "a2"), t.ip("n2", "c"));
    let (d1, d2) = (t.ip("n1", "d"), t.ip("n2", "d"));
    // Root inside a sandbox routes the other network out of its own port and pins neighbour
    // entries, so that denied rows really put IP frames on the bridge for the host to stop.
    h.sh_ok("a", &format!("ip route add 10.210.1.0/24 dev eth0 && ip neigh replace {c} lladdr {} dev eth0 nud permanent", t.mac("n2", "c")));
    h.sh_ok("c", &format!("ip route add 10.210.0.0/24 dev eth0 && ip neigh replace {a} lladdr {} dev eth0 nud permanent && ip neigh replace {a2} lladdr {} dev eth0 nud permanent", t.mac("n1", "a"), t.mac("n1", "a2")));

    // (from, target, expected, sender has a port whose counters must tell)
    let rows: Vec<(&str, String, bool, bool)> = vec![
        ("a", a2.clone(), true, true),
        ("a", "a2.n1.internal".into(), true, true),
        ("a", "a2".into(), true, true),
        ("a2", a.clone(), true, true),
        ("a", c.clone(), false, true),
        ("c", a.clone(), false, true),
        ("c", a2.clone(), false, true),
        ("d", a.clone(), true, true),
        ("d", "a.n1.internal".into(), true, true),
        ("d", c.clone(), true, true),
        ("d", "c.n2.internal".into(), true, true),
        ("a", d1.clone(), true, true),
        ("c", d2.clone(), true, true),
        ("c", "d.n2.internal".into(), true, true),
        ("e", a.clone(), false, false),
        ("e", c.clone(), false, false),
    ];
    let mut failures = Vec::new();
    for (from, target, expected, counted) in &rows {
        for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            let before = if *counted { drops(h, from) } else { 0 };
            let got = reaches(h, from, target, proto);
            let after = if *counted { drops(h, from) } else { 0 };
            if got != *expected {
                failures.push(format!("{from} -> {target} over {proto:?}: reached={got}, expected {expected}"));
            }
            if *counted && *expected && after != before {
                failures.push(format!("{from} -> {target} over {proto:?}: succeeded but {} drops were counted", after - before));
            }
            if *counted && !*expected && after == before {
                failures.push(format!("{from} -> {target} over {proto:?}: failed but no drop was counted"));
            }
        }
    }
    assert!(failures.is_empty(), "isolation matrix:\n{}", failures.join("\n"));

    // DNS scoping: c cannot resolve N1's names; d resolves both with the right addresses.
    let resolve = |from: &str, name: &str| h.sh(from, &format!("getent hosts {name} | cut -d' ' -f1")).1.trim().to_string();
    assert_eq!(resolve("c", "a.n1.internal"), "");
    assert_eq!(resolve("c", "a"), "");
    assert_eq!(resolve("d", "a.n1.internal"), a);
    assert_eq!(resolve("d", "c.n2.internal"), c);
    assert_eq!(resolve("a", "d.n1.internal"), d1);
    assert_eq!(resolve("c", "d.n2.internal"), d2);
    assert_eq!(resolve("e", "a.n1.internal"), "");
    // External names are refused, never forwarded (and over TCP too).
    let (_, out, _) = h.sh("a", "dig +short +tries=1 +time=2 example.com; dig +tcp +tries=1 +time=2 a2.n1.internal | grep -E 'status|^a2'");
    assert!(out.contains("status: NOERROR") && out.contains(&a2), "{out}");
    let (_, out, _) = h.sh("a", "dig +tries=1 +time=2 example.com | grep status");
    assert!(out.contains("REFUSED"), "{out}");
    let (_, out, _) = h.sh("a", "dig +tries=1 +time=2 ghost.n1.internal | grep status");
    assert!(out.contains("NXDOMAIN"), "{out}");

    // d is not a router: with forwarding on inside d, a still cannot reach c through it.
    h.sh_ok("d", "sysctl -w net.ipv4.ip_forward=1 >/dev/null 2>&1 || echo 1 > /proc/sys/net/ipv4/ip_forward || true");
    h.sh_ok("a", &format!("ip route replace 10.210.1.0/24 via {d1} dev eth0"));
    let before = drops(h, "a");
    for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        assert!(!reaches(h, "a", &c, proto), "a reached c through d over {proto:?}");
    }
    assert!(drops(h, "a") > before, "routing through d was not dropped at a's port");
    // d forwarding a packet with a's (spoofed) source out of its N2 port is dropped there too.
    let before = drops_on(h, "d", 1);
    h.sh_ok("d", &raw_ip_frame_script("eth1", &t.mac("n2", "c"), &a, &c));
    assert!(drops_on(h, "d", 1) > before, "a frame with a foreign source left d's N2 port");
}

/// A python one-liner that sends 3 UDP/IPv4 frames with an arbitrary source out of `dev`.
fn raw_ip_frame_script(dev: &str, dst_mac: &str, src_ip: &str, dst_ip: &str) -> String {
    format!(
        "python3 - <<'EOF'\n\
import socket, struct\n\
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('{dev}', 0))\n\
src = bytes.fromhex(open('/sys/class/net/{dev}/address').read().strip().replace(':', ''))\n\
dst = bytes.fromhex('{dst_mac}'.replace(':', ''))\n\
payload = struct.pack('!HHHH', 9000, 9000, 12, 0) + b'spof'\n\
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0, 64, 17, 0, socket.inet_aton('{src_ip}'), socket.inet_aton('{dst_ip}'))\n\
for _ in range(3): s.send(dst + src + b'\\x08\\x00' + ip + payload)\n\
EOF"
    )
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn l2_attacks_are_contained() {
    let t = Topology::build();
    let h = &t.h;
    let (a2, d1) = (t.ip("n1", "a2"), t.ip("n1", "d"));
    let a2_mac = t.mac("n1", "a2");

    // ARP spoof: a claims a2's address; d's neighbour entry for a2 stays a2's MAC.
    h.sh_ok("d", &format!("ping -c 1 -W 1 {a2} >/dev/null"));
    let before = drops(h, "a");
    let arp = format!(
        "python3 - <<'EOF'\n\
import socket\n\
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))\n\
me = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))\n\
ip = socket.inet_aton('{a2}')\n\
arp = bytes.fromhex('0001080006040002') + me + ip + b'\\xff'*6 + ip\n\
for _ in range(5): s.send(b'\\xff'*6 + me + b'\\x08\\x06' + arp)\n\
EOF"
    );
    h.sh_ok("a", &arp);
    assert!(drops(h, "a") >= before + 5, "spoofed ARP replies were not dropped");
    let neigh = h.sh_ok("d", &format!("ip neigh show {a2}"));
    assert!(neigh.contains(&a2_mac), "d's neighbour entry for a2 changed: {neigh}");

    // Non-IP ether types, IPv6 link-local and router advertisements never leave a port.
    let before = drops(h, "a");
    let raw = "python3 - <<'EOF'\n\
import socket\n\
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))\n\
me = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))\n\
ra = bytes.fromhex('6000000000103aff' + 'fe80' + '00'*13 + '01' + 'ff02' + '00'*13 + '01') + bytes.fromhex('8600000040000708' + '00'*8)\n\
for _ in range(3): s.send(b'\\xff'*6 + me + b'\\x88\\xb5' + b'local-experimental'*3)\n\
for _ in range(3): s.send(bytes.fromhex('333300000001') + me + b'\\x86\\xdd' + ra)\n\
EOF";
    h.sh_ok("a", raw);
    assert!(drops(h, "a") >= before + 6, "raw 0x88B5 frames or IPv6 RAs were not dropped");

    // Broadcast on N1 is not seen on N2; a promiscuous a2 sees no unicast between a and d.
    let sniff = |sb: &str, secs: f32, filter: &str| -> std::process::Child {
        // (A raw string: a `\` line continuation would eat the Python indentation.)
        let script = r#"python3 - <<'EOF'
import socket, time, subprocess
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.settimeout(0.2)
subprocess.run(['ip', 'link', 'set', 'eth0', 'promisc', 'on'])
me = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
n = 0; end = time.time() + SECS
while time.time() < end:
    try: f = s.recv(2048)
    except socket.timeout: continue
    FILTER
print(n)
EOF"#
            .replace("SECS", &secs.to_string())
            .replace("FILTER", filter);
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &h.ns]).arg(crate::harness::shoal_bin()).args(["exec", sb, "--", "sh", "-c", &script]);
        cmd.env("SHOAL_URL", "http://127.0.0.1:7070").env("SHOAL_API_KEY", crate::harness::API_KEY).env("SHOAL_CONFIG", "/nonexistent");
        cmd.stdout(std::process::Stdio::piped()).spawn().unwrap()
    };
    let a_mac = t.mac("n1", "a");
    let a_mac_hex = a_mac.replace(':', "");
    // c counts frames from a's MAC; a2 counts unicast frames not addressed to itself.
    let c_sniffer = sniff("c", 3.0, &format!("n += f[6:12] == bytes.fromhex('{a_mac_hex}')"));
    let a2_sniffer = sniff("a2", 3.0, "n += f[0:6] != me and f[0] & 1 == 0");
    std::thread::sleep(Duration::from_millis(800));
    h.sh_ok("a", &format!("ping -c 5 -i 0.2 -b 10.210.0.255 >/dev/null 2>&1; ping -c 5 -i 0.2 {d1} >/dev/null; python3 /probe.py tcp {d1} >/dev/null"));
    let c_seen: u64 = String::from_utf8(c_sniffer.wait_with_output().unwrap().stdout).unwrap().trim().parse().unwrap();
    let a2_seen: u64 = String::from_utf8(a2_sniffer.wait_with_output().unwrap().stdout).unwrap().trim().parse().unwrap();
    assert_eq!(c_seen, 0, "c on N2 saw {c_seen} frames from a on N1");
    assert_eq!(a2_seen, 0, "promiscuous a2 saw {a2_seen} unicast frames meant for others");

    // A flood of random source MACs: dropped at the port, the FDB stays as it was, peers fine.
    let bridge = format!("shb-{}", &h.json(&["network", "get", "n1"])["id"].as_str().unwrap()[4..]);
    let fdb = || h.host_cmd(&["bridge", "fdb", "show", "br", &bridge]).lines().count();
    let fdb_before = fdb();
    let flood = "python3 - <<'EOF'\n\
import socket, os\n\
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))\n\
for i in range(100000): s.send(b'\\xff'*6 + b'\\x02' + os.urandom(5) + b'\\x08\\x06' + b'\\x00'*28)\n\
EOF";
    let started = Instant::now();
    h.sh_ok("a", flood);
    eprintln!("100k-frame MAC flood took {:?}", started.elapsed());
    assert_eq!(fdb(), fdb_before, "the FDB grew under a MAC flood");
    let rtt = h.sh_ok("a2", &format!("ping -c 3 -i 0.2 {d1} | tail -1"));
    assert!(rtt.contains("0.") || rtt.contains("1."), "peers' latency after the flood: {rtt}");

    // Host exposure: link-local metadata, raw frames to 127.0.0.1 — dropped on entry.
    let before = drops(h, "a");
    h.sh_ok("a", &format!("ip route add 169.254.169.254/32 dev eth0 && ip neigh replace 169.254.169.254 lladdr {a2_mac} dev eth0 nud permanent"));
    assert!(!reaches(h, "a", "169.254.169.254", Proto::Tcp));
    h.sh_ok("a", &raw_ip_frame_script("eth0", &a2_mac, &t.ip("n1", "a"), "127.0.0.1"));
    assert!(drops(h, "a") >= before + 4, "metadata or loopback-addressed frames were not dropped");
    eventually("a2 still answers", Duration::from_secs(5), || reaches(h, "a", &a2, Proto::Tcp));
}
