//! `shoal-agent`: PID 1 inside every Shoal sandbox.
//!
//! It listens on a unix socket (bind-mounted to the host, so the node can reach it) and serves
//! the node, one request per connection (protocol: shoal-agent-proto): commands run to
//! completion (`Exec`) or streamed (`ExecStream`: live output, stdin, signals, optionally on a
//! pty, optionally in the background with a ring buffer to re-attach to), and files (read,
//! write, stat, list, mkdir, remove, rename, tar download/upload). As PID 1 it also reaps
//! orphaned processes and turns SIGTERM into an orderly stop of the sandbox.
//!
//! Modules: `server` (socket, connections, dispatch), `conn` (frames on a connection),
//! `exec` (preparing and forking a command; `Exec`), `process` (driving a streamed process),
//! `stream` (`ExecStream`, `Attach`, process controls), `background` (process table, ring
//! buffers), `pty`, `files` and `tar` (file requests), `error` (error kinds), `reaper` (the
//! only `waitpid` caller), `signals` (shutdown).

mod background;
mod conn;
mod error;
mod exec;
mod files;
mod process;
mod pty;
mod reaper;
mod server;
mod signals;
mod stream;
mod tar;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_files;
#[cfg(test)]
mod tests_stream;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use shoal_agent_proto::{CONTAINER_SOCKET_DIR, SOCKET_NAME};

const USAGE: &str = "usage: shoal-agent [--socket PATH]\n\
    Socket path: --socket, else $SHOAL_AGENT_SOCKET, else /.shoal/agent.sock";

fn main() {
    // Before anything opens a file: fds 0-2 must exist so that our pipes never land there
    // (exec.rs dup2s pipes onto 0-2 and relies on them being >= 3).
    ensure_std_fds();

    let socket = match socket_path(std::env::args_os().skip(1)) {
        Ok(p) => p,
        Err(msg) => fatal(&msg),
    };
    if let Err(e) = signals::install(socket.clone()) {
        fatal(&format!("cannot install signal handlers: {e}"));
    }
    if unsafe { libc::getpid() } != 1 {
        // Not PID 1 (e.g. run by hand): still become the reaper of our orphans.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    reaper::get(); // start reaping right away, not at the first exec

    let agent = Arc::new(server::Agent::new(exec::base_env()));
    let listener = match server::bind(&socket) {
        Ok(l) => l,
        Err(e) => fatal(&format!("cannot listen on {}: {e}", socket.display())),
    };
    // stdout is the sandbox's console log: this line says the agent is up.
    println!("{}: listening on {}", server::AGENT_NAME, socket.display());
    server::serve(listener, agent)
}

/// `--socket PATH` (or `--socket=PATH`), else $SHOAL_AGENT_SOCKET, else the container default.
fn socket_path(mut args: impl Iterator<Item = OsString>) -> Result<PathBuf, String> {
    let mut socket = None;
    while let Some(arg) = args.next() {
        let s = arg.to_string_lossy();
        if s == "--socket" {
            socket = Some(args.next().ok_or("--socket needs a path")?.into());
        } else if let Some(p) = s.strip_prefix("--socket=") {
            socket = Some(p.into());
        } else if s == "-h" || s == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        } else if s == "-V" || s == "--version" {
            println!("{}", server::AGENT_NAME);
            std::process::exit(0);
        } else {
            return Err(format!("unknown argument {s:?}\n{USAGE}"));
        }
    }
    Ok(socket
        .or_else(|| {
            std::env::var_os("SHOAL_AGENT_SOCKET")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(CONTAINER_SOCKET_DIR).join(SOCKET_NAME)))
}

fn ensure_std_fds() {
    for fd in 0..3 {
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // open() returns the lowest free fd, i.e. this one.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

fn fatal(msg: &str) -> ! {
    eprintln!("shoal-agent: {msg}");
    std::process::exit(1)
}
