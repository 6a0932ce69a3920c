//! Deterministic names for every host object a node creates, so that a restarted node finds
//! them again and every object can be traced to its owner. Linux interface names are at most
//! 15 bytes, which is why ids carry exactly 10 hex digits.

pub const SANDBOX_ID_PREFIX: &str = "sbx-";
pub const NETWORK_ID_PREFIX: &str = "net-";
/// Host-side veth ends of sandbox ports: `shv` + 10 hex digits of the sandbox + 2 of the NIC index.
pub const PORT_PREFIX: &str = "shv";
/// Per-network bridges: `shb-` + 10 hex digits of the network.
pub const BRIDGE_PREFIX: &str = "shb-";
/// Network namespaces of sandboxes (under /run/netns).
pub const NETNS_PREFIX: &str = "shoal-";
pub const ID_HEX_LEN: usize = 10;

/// A new random id such as `sbx-3f9a0c11d2`.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; ID_HEX_LEN / 2];
    getrandom(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

fn getrandom(buf: &mut [u8]) {
    // SAFETY: buf is a valid writable buffer of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n as usize, buf.len(), "getrandom failed");
}

/// The hex part of an id, checked so that it can be used in interface and file names.
pub fn id_hex<'a>(id: &'a str, prefix: &str) -> Option<&'a str> {
    let hex = id.strip_prefix(prefix)?;
    (hex.len() == ID_HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())).then_some(hex)
}

pub fn is_sandbox_id(s: &str) -> bool {
    id_hex(s, SANDBOX_ID_PREFIX).is_some()
}

pub fn is_network_id(s: &str) -> bool {
    id_hex(s, NETWORK_ID_PREFIX).is_some()
}

pub fn bridge_name(network_id: &str) -> String {
    format!("{BRIDGE_PREFIX}{}", id_hex(network_id, NETWORK_ID_PREFIX).expect("valid network id"))
}

pub fn port_name(sandbox_id: &str, nic_index: u32) -> String {
    assert!(nic_index < 256, "at most 256 NICs per sandbox");
    format!("{PORT_PREFIX}{}{nic_index:02x}", id_hex(sandbox_id, SANDBOX_ID_PREFIX).expect("valid sandbox id"))
}

/// Interface name inside the sandbox, in join order.
pub fn guest_ifname(nic_index: u32) -> String {
    format!("eth{nic_index}")
}

pub fn netns_name(sandbox_id: &str) -> String {
    format!("{NETNS_PREFIX}{sandbox_id}")
}

/// Sandbox id that owns a port, if the name is one of ours.
pub fn port_owner(ifname: &str) -> Option<String> {
    let rest = ifname.strip_prefix(PORT_PREFIX)?;
    (rest.len() == ID_HEX_LEN + 2).then(|| format!("{SANDBOX_ID_PREFIX}{}", &rest[..ID_HEX_LEN]))
}

/// Locally administered unicast MAC derived from the member's IPv4 address: unique within a
/// network (addresses are) and stable across restarts and hosts.
pub fn mac_for_ip(ip: std::net::Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:5e:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits_and_round_trip() {
        let sb = new_id(SANDBOX_ID_PREFIX);
        let net = new_id(NETWORK_ID_PREFIX);
        assert!(is_sandbox_id(&sb) && is_network_id(&net), "{sb} {net}");
        let port = port_name(&sb, 3);
        assert_eq!(port.len(), 15);
        assert!(bridge_name(&net).len() <= 15);
        assert_eq!(port_owner(&port), Some(sb.clone()));
        assert_eq!(port_owner("eth0"), None);
        assert_eq!(port_name("sbx-0123456789", 17), "shv012345678911");
        assert_eq!(bridge_name("net-abcdef0123"), "shb-abcdef0123");
        assert_eq!(netns_name("sbx-0123456789"), "shoal-sbx-0123456789");
    }

    #[test]
    fn rejects_foreign_ids() {
        for bad in ["sbx-123", "sbx-0123456789a", "sbx-ABCDEF0123", "net-0123456789", "sbx-../../etc"] {
            assert!(!is_sandbox_id(bad), "{bad}");
        }
    }

    #[test]
    fn mac_is_local_unicast_and_stable() {
        let mac = mac_for_ip("10.210.0.2".parse().unwrap());
        assert_eq!(mac, "02:5e:0a:d2:00:02");
    }
}
