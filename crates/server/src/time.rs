//! RFC 3339 timestamps without a date library.

pub fn now() -> String {
    shoal_node::images::rfc3339_now()
}
