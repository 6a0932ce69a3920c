//! Running host tools (ip, bridge, nft, runc, mount helpers) with errors that name the command
//! and carry what it printed, so a failure is diagnosable from the API answer alone.

use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("`{cmd}` could not be started ({source}); is it installed and on PATH?")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed { cmd: String, status: String, stderr: String },
}

impl CmdError {
    /// True when the tool reported that the object does not exist (used for idempotent deletes).
    pub fn is_not_found(&self) -> bool {
        match self {
            CmdError::Failed { stderr, .. } => {
                let s = stderr.to_ascii_lowercase();
                s.contains("cannot find") || s.contains("does not exist") || s.contains("no such") || s.contains("not found")
            }
            CmdError::Spawn { .. } => false,
        }
    }
}

fn describe(program: &str, args: &[&str]) -> String {
    std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

/// Runs a command to completion; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> Result<String, CmdError> {
    run_with_stdin(program, args, None)
}

pub fn run_with_stdin(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, CmdError> {
    let cmd = describe(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CmdError::Spawn { cmd: cmd.clone(), source })?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        // A write error shows up as the command's own failure below.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| CmdError::Spawn { cmd: cmd.clone(), source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(CmdError::Failed { cmd, status: out.status.to_string(), stderr })
    }
}

/// Like `run`, but "no such object" counts as success (deletes are idempotent).
pub fn run_idempotent(program: &str, args: &[&str]) -> Result<(), CmdError> {
    match run(program, args) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes sysctls inside a named network namespace, from a short-lived thread that enters it
/// (setns affects only that thread, and /proc/sys/net follows the thread's namespace).
pub fn sysctls_in_netns(netns: &str, pairs: &[(&str, &str)]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{netns}");
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path)?;
        // SAFETY: a valid namespace fd; only this thread changes namespace, and it exits after.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        pairs.iter().try_for_each(|(k, v)| sysctl(k, v))
    })
    .join()
    .map_err(|_| std::io::Error::other("sysctl thread panicked"))?
}

/// Writes a sysctl under /proc/sys (of the calling thread's network namespace).
pub fn sysctl(key: &str, value: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| std::io::Error::new(e.kind(), format!("writing {path}: {e}")))
}
