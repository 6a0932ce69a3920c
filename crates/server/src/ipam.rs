//! IP address management: network blocks from a pool, member addresses within a block.
//! Pure functions over what is already taken; the store's UNIQUE constraints back them up.

use std::net::Ipv4Addr;

use shoal_api::Cidr;

/// Networks get a /24 from this pool unless the user names a block.
pub const DEFAULT_POOL: &str = "10.210.0.0/16";
pub const DEFAULT_PREFIX: u8 = 24;

/// The first block of size `prefix` in `pool` that overlaps none of `taken`.
pub fn next_block(pool: Cidr, prefix: u8, taken: &[Cidr]) -> Option<Cidr> {
    let step = 1u64 << (32 - prefix as u32);
    (0..pool.size() / step)
        .map(|i| Cidr::new(Ipv4Addr::from(pool.network() + (i * step) as u32), prefix))
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

/// The lowest free member address. The network address, `.1` (kept for a future gateway or
/// resolver) and the broadcast address are never handed out.
pub fn next_address(block: Cidr, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    (2..block.size() - 1).filter_map(|i| block.nth(i)).find(|ip| !taken.contains(ip))
}

/// How many members a block can hold.
pub fn capacity(block: Cidr) -> u64 {
    block.size().saturating_sub(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_skip_taken_and_overlapping() {
        let pool = c(DEFAULT_POOL);
        assert_eq!(next_block(pool, 24, &[]), Some(c("10.210.0.0/24")));
        assert_eq!(next_block(pool, 24, &[c("10.210.0.0/24"), c("10.210.1.0/25")]), Some(c("10.210.2.0/24")));
        // A user-chosen /22 inside the pool blocks four /24s.
        assert_eq!(next_block(pool, 24, &[c("10.210.0.0/22")]), Some(c("10.210.4.0/24")));
        // A full pool.
        let all: Vec<Cidr> = vec![c("10.210.0.0/16")];
        assert_eq!(next_block(pool, 24, &all), None);
    }

    #[test]
    fn addresses_start_at_two_and_fill_holes() {
        let b = c("10.210.0.0/24");
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(next_address(b, &[]), Some(ip("10.210.0.2")));
        assert_eq!(next_address(b, &[ip("10.210.0.2"), ip("10.210.0.4")]), Some(ip("10.210.0.3")));
        let all: Vec<Ipv4Addr> = (2..255).map(|i| ip(&format!("10.210.0.{i}"))).collect();
        assert_eq!(next_address(b, &all), None);
        assert_eq!(capacity(b), 253);
        let small = c("10.9.0.0/29");
        let taken: Vec<Ipv4Addr> = (2..7).map(|i| ip(&format!("10.9.0.{i}"))).collect();
        assert_eq!(next_address(small, &taken), None, ".7 is the broadcast address");
    }
}
