//! IPv4 CIDR blocks (networks are IPv4 for now).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not a CIDR block: write it as a.b.c.d/len, e.g. 10.210.3.0/24")]
    Syntax(String),
    #[error("`{0}` has host bits set: did you mean {1}?")]
    HostBits(String, Cidr),
    #[error("prefix length /{0} is out of range: networks must be between /16 and /29")]
    PrefixRange(u8),
    #[error("{0} overlaps {1}, which cannot carry a sandbox network: use a private block such as 10.x.0.0/24")]
    Special(Cidr, &'static str),
}

impl Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Cidr { addr: Ipv4Addr::from(u32::from(addr) & Self::mask_bits(prefix)), prefix }
    }
    fn mask_bits(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) }
    }
    pub fn network(&self) -> u32 {
        u32::from(self.addr)
    }
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network() | !Self::mask_bits(self.prefix))
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_bits(self.prefix) == self.network()
    }
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let p = self.prefix.min(other.prefix);
        let m = Self::mask_bits(p);
        self.network() & m == other.network() & m
    }
    /// The `i`-th address of the block (0 = network address).
    pub fn nth(&self, i: u64) -> Option<Ipv4Addr> {
        (i < self.size()).then(|| Ipv4Addr::from(self.network() + i as u32))
    }
    /// Parses a user-supplied network block, refusing sizes Shoal cannot use.
    pub fn parse_network(s: &str) -> Result<Cidr, CidrError> {
        let c: Cidr = s.parse()?;
        if !(16..=29).contains(&c.prefix) {
            return Err(CidrError::PrefixRange(c.prefix));
        }
        const SPECIAL: &[(&str, &str)] = &[
            ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
            ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
            ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
            ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
            ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
        ];
        for (block, what) in SPECIAL {
            if c.overlaps(&block.parse().expect("valid")) {
                return Err(CidrError::Special(c, what));
            }
        }
        Ok(c)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || CidrError::Syntax(s.to_string());
        let (a, p) = s.trim().split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| syntax())?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = p.parse().map_err(|_| syntax())?;
        if prefix > 32 {
            return Err(syntax());
        }
        let c = Cidr::new(addr, prefix);
        if c.addr != addr {
            return Err(CidrError::HostBits(s.to_string(), c));
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let c: Cidr = "10.210.3.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.210.3.0/24");
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 210, 3, 255));
        assert_eq!(c.nth(2), Some(Ipv4Addr::new(10, 210, 3, 2)));
        assert_eq!(c.nth(256), None);
        assert!(c.contains(Ipv4Addr::new(10, 210, 3, 77)));
        assert!(!c.contains(Ipv4Addr::new(10, 210, 4, 1)));
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["", "10.0.0.0", "10.0.0/24", "10.0.0.0/33", "10.0.0.0/", "x/24", "10.0.0.0/2a", "10.0.0.0/+8", "::1/64"] {
            assert!(matches!(bad.parse::<Cidr>(), Err(CidrError::Syntax(_))), "{bad}");
        }
        assert!(matches!("10.0.0.1/24".parse::<Cidr>(), Err(CidrError::HostBits(_, _))));
        assert_eq!(Cidr::parse_network("10.0.0.0/8"), Err(CidrError::PrefixRange(8)));
        assert_eq!(Cidr::parse_network("10.0.0.0/30"), Err(CidrError::PrefixRange(30)));
        for special in ["127.0.0.0/24", "0.0.0.0/24", "169.254.0.0/24", "224.0.0.0/24", "250.0.0.0/24"] {
            assert!(matches!(Cidr::parse_network(special), Err(CidrError::Special(_, _))), "{special}");
        }
        assert!(Cidr::parse_network("100.64.0.0/24").is_ok());
    }

    #[test]
    fn overlap() {
        let a: Cidr = "10.210.0.0/16".parse().unwrap();
        let b: Cidr = "10.210.7.0/24".parse().unwrap();
        let c: Cidr = "10.211.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
