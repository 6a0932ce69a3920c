//! RFC 3339 timestamps without a date library.

pub fn now() -> String {
    shoal_node::images::rfc3339_now()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn rfc3339_ms(ms: i64) -> String {
    shoal_node::images::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}
