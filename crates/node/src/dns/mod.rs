//! The per-node resolver for `.internal` names.
//!
//! It listens *inside every sandbox's network namespace* on 127.0.0.53 (UDP and TCP), from
//! sockets the node opened there. So no host address has to be reachable from any sandbox, and
//! the resolver knows who asks from the socket that received the question — a guest cannot
//! forge that. Answers come from the membership view the control plane pushes on every change.
//!
//! - `<sandbox>.<network>.internal` → the member's address, only to members of that network;
//! - `<sandbox>` alone → its address when asker and target share exactly one network;
//! - anything else under `.internal` → NXDOMAIN; every other name → REFUSED (external names are
//!   the egress proxy's job; nothing is ever forwarded anywhere).

pub mod codec;
pub mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);
pub const SUFFIX: &str = "internal";

/// Who is on which network, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsView {
    /// network name → sandbox name → address on that network
    pub networks: BTreeMap<String, BTreeMap<String, Ipv4Addr>>,
    /// sandbox id → names of the networks it is on
    pub memberships: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Address(Ipv4Addr),
    /// The name exists but has no record of the asked type (e.g. AAAA).
    NoData,
    NxDomain,
    Refused,
}

impl DnsView {
    /// Answers a question from the sandbox `asker` (its id) for `qname` (any case, with or
    /// without the trailing dot). `want_a` is false for other record types.
    pub fn lookup(&self, asker: &str, qname: &str, want_a: bool) -> Lookup {
        let name = qname.trim_end_matches('.').to_ascii_lowercase();
        let empty = BTreeSet::new();
        let mine = self.memberships.get(asker).unwrap_or(&empty);
        let found = if let Some(rest) = name.strip_suffix(&format!(".{SUFFIX}")) {
            match rest.split_once('.') {
                Some((sandbox, network)) if !network.contains('.') && mine.contains(network) => {
                    self.networks.get(network).and_then(|m| m.get(sandbox)).copied()
                }
                _ => None,
            }
        } else if name == SUFFIX {
            None
        } else if !name.contains('.') && !name.is_empty() {
            let hits: Vec<Ipv4Addr> = mine.iter().filter_map(|n| self.networks.get(n)?.get(&name).copied()).collect();
            if hits.len() == 1 { Some(hits[0]) } else { None }
        } else {
            return Lookup::Refused;
        };
        match (found, want_a) {
            (Some(ip), true) => Lookup::Address(ip),
            (Some(_), false) => Lookup::NoData,
            (None, _) => Lookup::NxDomain,
        }
    }
}

/// The resolv.conf every sandbox gets.
pub fn resolv_conf() -> String {
    format!("# managed by Shoal: .internal names of your networks\nnameserver {RESOLVER_ADDR}\noptions ndots:1 timeout:2 attempts:2\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> DnsView {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let mut v = DnsView::default();
        v.networks.insert("n1".into(), BTreeMap::from([("a".into(), ip("10.0.1.2")), ("a2".into(), ip("10.0.1.3")), ("d".into(), ip("10.0.1.4"))]));
        v.networks.insert("n2".into(), BTreeMap::from([("c".into(), ip("10.0.2.2")), ("d".into(), ip("10.0.2.3"))]));
        v.memberships.insert("sbx-a".into(), BTreeSet::from(["n1".into()]));
        v.memberships.insert("sbx-c".into(), BTreeSet::from(["n2".into()]));
        v.memberships.insert("sbx-d".into(), BTreeSet::from(["n1".into(), "n2".into()]));
        v
    }

    #[test]
    fn scoped_to_shared_networks() {
        let v = view();
        let a = |s: &str| Lookup::Address(s.parse().unwrap());
        assert_eq!(v.lookup("sbx-a", "a2.n1.internal", true), a("10.0.1.3"));
        assert_eq!(v.lookup("sbx-a", "A2.N1.Internal.", true), a("10.0.1.3"));
        assert_eq!(v.lookup("sbx-c", "a2.n1.internal", true), Lookup::NxDomain, "c is not on n1");
        assert_eq!(v.lookup("sbx-d", "a.n1.internal", true), a("10.0.1.2"));
        assert_eq!(v.lookup("sbx-d", "c.n2.internal", true), a("10.0.2.2"));
        assert_eq!(v.lookup("sbx-a", "d.n1.internal", true), a("10.0.1.4"));
        assert_eq!(v.lookup("sbx-a", "ghost.n1.internal", true), Lookup::NxDomain);
        assert_eq!(v.lookup("sbx-a", "x.y.n1.internal", true), Lookup::NxDomain);
        assert_eq!(v.lookup("sbx-a", "internal", true), Lookup::NxDomain);
        assert_eq!(v.lookup("sbx-a", "a2.n1.internal", false), Lookup::NoData);
        assert_eq!(v.lookup("sbx-unknown", "a2.n1.internal", true), Lookup::NxDomain);
    }

    #[test]
    fn short_names_need_exactly_one_shared_network() {
        let v = view();
        assert_eq!(v.lookup("sbx-a", "a2", true), Lookup::Address("10.0.1.3".parse().unwrap()));
        assert_eq!(v.lookup("sbx-c", "d", true), Lookup::Address("10.0.2.3".parse().unwrap()));
        assert_eq!(v.lookup("sbx-a", "c", true), Lookup::NxDomain);
        // d is on both of d's own networks: "d" from d is ambiguous.
        assert_eq!(v.lookup("sbx-d", "d", true), Lookup::NxDomain);
    }

    #[test]
    fn external_names_are_refused() {
        let v = view();
        assert_eq!(v.lookup("sbx-a", "example.com", true), Lookup::Refused);
        assert_eq!(v.lookup("sbx-a", "a2.n1.internal.evil.test", true), Lookup::Refused);
    }
}
