//! Reading a sandbox's resource use from its cgroups (runc puts them at `/shoal/<id>`), on
//! cgroup v1 (one hierarchy per controller) or v2 (one unified hierarchy).

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

pub struct SandboxCgroup {
    rel: String,
}

fn read_u64(p: PathBuf) -> Option<u64> {
    let s = std::fs::read_to_string(p).ok()?;
    s.trim().parse().ok()
}

impl SandboxCgroup {
    pub fn new(id: &str) -> Self {
        SandboxCgroup { rel: format!("shoal/{id}") }
    }
    fn v1(&self, controller: &str, file: &str) -> PathBuf {
        Path::new(ROOT).join(controller).join(&self.rel).join(file)
    }
    fn v2(&self, file: &str) -> PathBuf {
        Path::new(ROOT).join(&self.rel).join(file)
    }
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        read_u64(self.v1("cpuacct", "cpuacct.usage")).or_else(|| {
            let stat = std::fs::read_to_string(self.v2("cpu.stat")).ok()?;
            let usec: u64 = stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse().ok()?;
            Some(usec * 1000)
        })
    }
    pub fn memory_bytes(&self) -> Option<u64> {
        read_u64(self.v1("memory", "memory.usage_in_bytes")).or_else(|| read_u64(self.v2("memory.current")))
    }
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        read_u64(self.v1("memory", "memory.limit_in_bytes")).or_else(|| read_u64(self.v2("memory.max")))
    }
    pub fn pids(&self) -> Option<u64> {
        read_u64(self.v1("pids", "pids.current")).or_else(|| read_u64(self.v2("pids.current")))
    }
}

/// Bytes in the regular files below `dir` (symlinks not followed, hard links counted once each).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}
