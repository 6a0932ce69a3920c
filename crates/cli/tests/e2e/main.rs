//! End-to-end tests: they drive the real `shoal` binary (CLI and raw HTTP) against a real
//! `shoal up` with runc, netlink, nftables and SQLite, each inside its own test namespace.
//! They need root and the packages `scripts/test.sh` installs, so plain `cargo test` skips
//! them; `scripts/test.sh` runs them with `--run-ignored all`.

mod harness;

mod bad_input;
mod example;
mod examples;
mod exec_files;
mod isolation;
mod lifecycle;
mod matrix;
mod attach;
