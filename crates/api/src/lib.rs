//! Shoal HTTP API v1: the JSON types every part shares (server, CLI, Rust SDK), the shape
//! catalogue and input validation. Pure: no I/O, so everything here is unit-tested.

pub mod cidr;
pub mod shapes;
pub mod types;
pub mod validate;

pub use cidr::Cidr;
pub use shapes::{Shape, SHAPES};
pub use types::*;
