//! The shape catalogue: named vCPU and memory limits. The node turns them into cgroup
//! limits (CPU quota, memory, pids) for containers.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shape {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// Upper bound on processes and threads inside the sandbox (fork bombs stop here).
    pub pids_limit: u64,
}

pub const SHAPES: &[Shape] = &[
    Shape { name: "s-1vcpu-256mb", vcpus: 1, memory_mb: 256, pids_limit: 512 },
    Shape { name: "s-1vcpu-512mb", vcpus: 1, memory_mb: 512, pids_limit: 1024 },
    Shape { name: "s-1vcpu-1gb", vcpus: 1, memory_mb: 1024, pids_limit: 1024 },
    Shape { name: "s-2vcpu-2gb", vcpus: 2, memory_mb: 2048, pids_limit: 2048 },
    Shape { name: "s-2vcpu-4gb", vcpus: 2, memory_mb: 4096, pids_limit: 4096 },
    Shape { name: "s-4vcpu-8gb", vcpus: 4, memory_mb: 8192, pids_limit: 4096 },
];

pub const DEFAULT_SHAPE: &str = "s-1vcpu-1gb";

pub fn find(name: &str) -> Option<&'static Shape> {
    SHAPES.iter().find(|s| s.name == name)
}

pub fn names() -> String {
    SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}
