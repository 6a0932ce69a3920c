//! The per-host network dataplane: one Linux bridge per network that has members here, one veth
//! pair per (sandbox, network), and the nftables port rules in `nft`.
//!
//! Kernel objects are made with iproute2 (`ip`, `bridge`), which speaks netlink for us; see
//! docs/architecture.md for why. Every operation is idempotent so that a restarted node can
//! re-run it to converge.

pub mod nft;

use std::net::Ipv4Addr;

use shoal_api::Cidr;

use crate::cmd::{self, run, run_idempotent, CmdError};
use crate::naming;

/// Default MTU inside sandboxes: leaves room for VXLAN encapsulation (50 bytes) on a 1500-byte
/// underlay, so the same value keeps working once networks span hosts.
pub const DEFAULT_MTU: u32 = 1450;

/// Hardening of a host-side interface (bridge or port): no IPv6 at all, strict reverse-path
/// filtering and no routing of 127/8 — the host never speaks or routes on sandbox networks.
fn harden_host_link(name: &str) {
    for (key, value) in [("ipv6.conf.{}.disable_ipv6", "1"), ("ipv4.conf.{}.rp_filter", "1"), ("ipv4.conf.{}.route_localnet", "0")] {
        let _ = cmd::sysctl(&format!("net.{}", key.replace("{}", name)), value);
    }
}

/// One interface of a sandbox on one network, as the node realises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub network_id: String,
    pub index: u32,
    pub ip: Ipv4Addr,
    pub cidr: Cidr,
    pub mac: String,
}

impl NicSpec {
    pub fn bridge(&self) -> String {
        naming::bridge_name(&self.network_id)
    }
    pub fn guest_ifname(&self) -> String {
        naming::guest_ifname(self.index)
    }
    pub fn policy(&self, sandbox_id: &str) -> nft::PortPolicy {
        nft::PortPolicy { port: naming::port_name(sandbox_id, self.index), mac: self.mac.clone(), ip: self.ip, cidr: self.cidr }
    }
}

// Links are looked up over netlink (`ip`), not in /sys/class/net: sysfs shows the namespace it
// was mounted in, which is not ours when the node runs in a namespace it entered (tests do).

pub fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).is_ok()
}

/// Names from `ip -o link show` output (`3: name@peer: <...`).
fn parse_link_names(out: &str) -> Vec<String> {
    out.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap_or(n).to_string()).collect()
}

/// Names of links in this namespace that start with `prefix`.
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    let out = run("ip", &["-o", "link", "show"]).unwrap_or_default();
    parse_link_names(&out).into_iter().filter(|n| n.starts_with(prefix)).collect()
}

/// A bridge with no address, no IPv6, no STP delay and no multicast snooping surprises.
pub fn ensure_bridge(bridge: &str) -> Result<(), CmdError> {
    if !link_exists(bridge) {
        // Two first members of one network may race here: losing to the other is success.
        match run("ip", &["link", "add", "name", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]) {
            Err(CmdError::Failed { stderr, .. }) if stderr.contains("File exists") => {}
            other => {
                other?;
            }
        }
    }
    harden_host_link(bridge);
    run("ip", &["link", "set", "dev", bridge, "up"])?;
    Ok(())
}

pub fn set_link_down(name: &str) -> Result<(), CmdError> {
    run_idempotent("ip", &["link", "set", "dev", name, "down"])
}

pub fn delete_link(name: &str) -> Result<(), CmdError> {
    run_idempotent("ip", &["link", "del", "dev", name])
}

/// Packet and byte counters of a host link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkCounters {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

pub fn link_counters(name: &str) -> Option<LinkCounters> {
    let out = run("ip", &["-s", "-j", "link", "show", "dev", name]).ok()?;
    parse_link_counters(&out)
}

fn parse_link_counters(json: &str) -> Option<LinkCounters> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let s = &v.get(0)?["stats64"];
    let n = |dir: &str, what: &str| s[dir][what].as_u64().unwrap_or(0);
    Some(LinkCounters { rx_bytes: n("rx", "bytes"), tx_bytes: n("tx", "bytes"), rx_packets: n("rx", "packets"), tx_packets: n("tx", "packets") })
}

/// Names of the ports currently enslaved to a bridge.
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    parse_link_names(&run("ip", &["-o", "link", "show", "master", bridge]).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_from_ip_json() {
        let out = r#"[{"ifname":"shv","stats64":{"rx":{"bytes":10,"packets":2},"tx":{"bytes":30,"packets":4}}}]"#;
        let c = super::parse_link_counters(out).unwrap();
        assert_eq!((c.rx_bytes, c.tx_bytes, c.rx_packets, c.tx_packets), (10, 30, 2, 4));
    }

    #[test]
    fn link_names_from_ip_output() {
        let out = "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\n7: shv0123456789a00@if6: <BROADCAST> mtu 1450 master shb-x\n";
        assert_eq!(super::parse_link_names(out), ["lo", "shv0123456789a00"]);
    }
}

/// Plugs a sandbox's netns into a network: veth pair, guest end named ethN with its MAC, address
/// and MTU; host end a bridge port with learning and unknown-unicast and multicast flooding off
/// and a static FDB entry for the guest MAC.
pub fn ensure_port(sandbox_id: &str, netns: &str, nic: &NicSpec, mtu: u32) -> Result<(), CmdError> {
    let port = naming::port_name(sandbox_id, nic.index);
    let guest = nic.guest_ifname();
    let bridge = nic.bridge();
    let mtu = mtu.to_string();
    ensure_bridge(&bridge)?;
    if !link_exists(&port) {
        run(
            "ip",
            &["link", "add", "name", &port, "mtu", &mtu, "type", "veth", "peer", "name", &guest, "address", &nic.mac, "mtu", &mtu, "netns", netns],
        )?;
    }
    harden_host_link(&port);
    run("ip", &["link", "set", "dev", &port, "master", &bridge])?;
    run("bridge", &["link", "set", "dev", &port, "learning", "off", "flood", "off", "mcast_flood", "off"])?;
    run("bridge", &["fdb", "replace", &nic.mac, "dev", &port, "master", "static"])?;
    run("ip", &["link", "set", "dev", &port, "up"])?;
    let addr = format!("{}/{}", nic.ip, nic.cidr.prefix);
    run("ip", &["-n", netns, "addr", "replace", &addr, "dev", &guest])?;
    run("ip", &["-n", netns, "link", "set", "dev", &guest, "up"])?;
    Ok(())
}

/// Unplugs a port; removes the bridge when it was the last port (bridges exist only where a
/// network has members).
pub fn remove_port(sandbox_id: &str, nic: &NicSpec) -> Result<(), CmdError> {
    delete_link(&naming::port_name(sandbox_id, nic.index))?;
    let bridge = nic.bridge();
    if link_exists(&bridge) && bridge_ports(&bridge).is_empty() {
        delete_link(&bridge)?;
    }
    Ok(())
}
