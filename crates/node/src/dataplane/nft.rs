//! nftables rules for the per-host L2 dataplane (bridge family), generated as `nft -f` text.
//!
//! One table, `bridge shoal`, owned entirely by Shoal. Each sandbox port gets its own chain,
//! reached through the `ports` verdict map keyed by the port's interface name, in the
//! `prerouting` hook: every frame is judged as it enters the bridge, before any forwarding
//! decision, whether it is headed for a peer, for nowhere (unknown unicast) or for the host. Anything that
//! arrives on a Shoal port without a chain is dropped (fail closed), and nothing from a sandbox
//! port is ever delivered to the host itself (the `input` hook).
//!
//! Generation is pure (golden-file tested); `apply` hands the text to `nft -f -`, which runs
//! it as one atomic transaction.

use std::fmt::Write;
use std::net::Ipv4Addr;

use shoal_api::Cidr;

use crate::cmd::{self, CmdError};
use crate::naming::PORT_PREFIX;

pub const TABLE: &str = "shoal";

/// What one sandbox port may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPolicy {
    /// Host-side interface name (a bridge port).
    pub port: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    /// The network's block: the only unicast destinations allowed.
    pub cidr: Cidr,
}

fn chain_name(port: &str) -> String {
    format!("port-{port}")
}

/// Base table with its two hooks and an empty port map. Only valid right after the table was
/// deleted: a chain block with rules *appends* those rules to an existing chain.
fn base_declarations(out: &mut String, table: &str) {
    let p = PORT_PREFIX;
    let _ = write!(
        out,
        "table bridge {table} {{\n\
         \tmap ports {{ type ifname : verdict; }}\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority -200; policy accept;\n\
         \t\tiifname vmap @ports\n\
         \t\t# a Shoal port without its own chain sends nothing (fail closed)\n\
         \t\tiifname \"{p}*\" counter drop\n\
         \t}}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority -200; policy accept;\n\
         \t\t# sandboxes never talk to the host itself: bridges carry no address, and this\n\
         \t\t# also stops frames aimed at the bridge MAC with a host IP (weak host model)\n\
         \t\tiifname \"{p}*\" counter drop\n\
         \t}}\n\
         }}\n"
    );
}

/// The rules of one port's chain: an allow-list, most frequent case first, so that a normal
/// frame is accepted after one rule (each rule costs on every frame); anything not allowed is
/// dropped and counted by the last rule.
/// - IPv4 from the port's own MAC and address to its network (or the limited broadcast);
/// - ARP from its own MAC claiming its own address.
/// IPv6 (and so router advertisements), VLAN tags and any other ether type match nothing here.
fn port_rules(p: &PortPolicy) -> Vec<String> {
    vec![
        format!("ether saddr {} ip saddr {} ip daddr {} accept", p.mac, p.ip, p.cidr),
        format!("ether saddr {} arp saddr ether {} arp saddr ip {} accept", p.mac, p.mac, p.ip),
        format!("ether saddr {} ip saddr {} ip daddr 255.255.255.255 accept", p.mac, p.ip),
        "counter drop".to_string(),
    ]
}

fn write_port(out: &mut String, table: &str, p: &PortPolicy) {
    let chain = chain_name(&p.port);
    let _ = writeln!(out, "add chain bridge {table} {chain}");
    let _ = writeln!(out, "flush chain bridge {table} {chain}");
    for r in port_rules(p) {
        let _ = writeln!(out, "add rule bridge {table} {chain} {r}");
    }
    let _ = writeln!(out, "add element bridge {table} ports {{ \"{}\" : jump {chain} }}", p.port);
}

/// The whole table from scratch: used at node start and whenever incremental state is in doubt.
pub fn full_ruleset(ports: &[PortPolicy]) -> String {
    full_ruleset_in(TABLE, ports)
}

/// `full_ruleset` for another table name (the start-up probe uses a throw-away one).
pub fn full_ruleset_in(table: &str, ports: &[PortPolicy]) -> String {
    let mut out = String::new();
    // `add` + `delete` makes the delete succeed whether or not the table existed.
    let _ = writeln!(out, "add table bridge {table}");
    let _ = writeln!(out, "delete table bridge {table}");
    base_declarations(&mut out, table);
    for p in ports {
        write_port(&mut out, table, p);
    }
    out
}

/// Adds (or replaces) one port's rules; needs the table from `full_ruleset`.
pub fn add_port(p: &PortPolicy) -> String {
    let mut out = String::new();
    write_port(&mut out, TABLE, p);
    out
}

/// Removes one port's rules; fails (atomically, changing nothing) if they are not there.
pub fn remove_port(port: &str) -> String {
    let chain = chain_name(port);
    format!(
        "delete element bridge {TABLE} ports {{ \"{port}\" }}\n\
         delete chain bridge {TABLE} {chain}\n"
    )
}

pub fn delete_table() -> String {
    format!("add table bridge {TABLE}\ndelete table bridge {TABLE}\n")
}

pub fn apply(script: &str) -> Result<(), CmdError> {
    cmd::run_with_stdin("nft", &["-f", "-"], Some(script)).map(|_| ())
}

/// Total packets dropped by the rules of one port (for tests and diagnostics).
pub fn port_drop_packets(port: &str) -> Result<u64, CmdError> {
    let out = cmd::run("nft", &["list", "chain", "bridge", TABLE, &chain_name(port)])?;
    Ok(sum_counters(&out))
}

/// Sums `counter packets N` over an `nft list` output.
pub fn sum_counters(listing: &str) -> u64 {
    let mut total = 0;
    let mut words = listing.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            total += words.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(port: &str, ip: &str) -> PortPolicy {
        let ip: Ipv4Addr = ip.parse().unwrap();
        let cidr = Cidr::new(ip, 24);
        PortPolicy { port: port.into(), mac: crate::naming::mac_for_ip(ip), ip, cidr }
    }

    fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden file {}; run with UPDATE_GOLDEN=1", path.display()));
        assert_eq!(actual, expected, "golden file {} differs; if intended, rerun with UPDATE_GOLDEN=1", path.display());
    }

    /// The isolation matrix's topology: N1 {a, a2}, N2 {c}, d on N1 and N2.
    #[test]
    fn full_ruleset_golden() {
        let rules = full_ruleset(&[
            policy("shvaaaaaaaaaa00", "10.210.0.2"),
            policy("shva2a2a2a2a200", "10.210.0.3"),
            policy("shvcccccccccc00", "10.210.1.2"),
            policy("shvdddddddddd00", "10.210.0.4"),
            policy("shvdddddddddd01", "10.210.1.3"),
        ]);
        golden("full_ruleset.nft", &rules);
    }

    /// The generated text is what the real `nft` accepts (checked without committing, `-c`).
    #[test]
    fn real_nft_accepts_the_ruleset() {
        let root = unsafe { libc::geteuid() } == 0;
        if !root || cmd::run("nft", &["-v"]).is_err() {
            eprintln!("skipped: needs root and nft");
            return;
        }
        let rules = full_ruleset(&[policy("shvaaaaaaaaaa00", "10.210.0.2")]) + &add_port(&policy("shvbbbbbbbbbb00", "10.210.0.3"));
        cmd::run_with_stdin("nft", &["-c", "-f", "-"], Some(&rules)).expect("nft -c rejects the generated rules");
    }

    #[test]
    fn add_and_remove_port_golden() {
        golden("add_port.nft", &add_port(&policy("shv012345678900", "10.210.0.2")));
        golden("remove_port.nft", &remove_port("shv012345678900"));
    }

    #[test]
    fn counters_sum() {
        let listing = "chain x {\n ether saddr != 02:00 counter packets 3 bytes 180 drop\n ip saddr != 1.2.3.4 counter packets 4 bytes 1 drop\n}";
        assert_eq!(sum_counters(listing), 7);
    }
}
