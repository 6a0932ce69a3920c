//! Default locations and finding the `shoal-agent` binary.

use std::path::{Path, PathBuf};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/shoal";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
const AGENT: &str = "shoal-agent";

/// The static agent: next to this binary (an install), or where `scripts/build.sh` puts it
/// relative to a cargo target directory. A dynamically linked build (e.g. the one a plain
/// `cargo build --workspace` leaves next to `shoal`) is skipped: it cannot run in a busybox image.
pub fn find_agent(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![dir.join(AGENT)];
    // target/{release,debug}/shoal -> target/x86_64-unknown-linux-gnu/release/shoal-agent
    if let Some(target) = dir.parent() {
        for profile in ["release", "debug"] {
            candidates.push(target.join("x86_64-unknown-linux-gnu").join(profile).join(AGENT));
        }
    }
    candidates.into_iter().find(|p| shoal_node::is_static_executable(p)).ok_or_else(|| {
        anyhow::anyhow!(
            "cannot find a statically linked {AGENT} next to {} or in the cargo target directory: build it with `scripts/build.sh`, or pass --agent-bin / SHOAL_AGENT_BIN",
            exe.display()
        )
    })
}
