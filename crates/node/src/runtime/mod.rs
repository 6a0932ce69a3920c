//! Sandbox runtimes. Today: `container` (an OCI runtime such as runc). The micro-VM runtime
//! will sit beside it, plugged into the same dataplane and speaking the same agent protocol.

pub mod cgroups;
pub mod container;
pub mod oci;
