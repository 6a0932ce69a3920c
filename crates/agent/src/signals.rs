//! Shutdown on SIGTERM/SIGINT, and SIGPIPE ignored.
//!
//! PID 1 only receives signals it has a handler for, so real handlers are required. The
//! handler only writes the signal number to a pipe (async-signal-safe); a normal thread
//! reads it and does the actual shutdown.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::reaper;

/// How long children get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Write end of the self-pipe, for the handler.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // Non-blocking pipe: if it is full a shutdown is already pending.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Install the handlers and start the thread that shuts down (removing `socket`) on a signal.
pub fn install(socket: PathBuf) -> io::Result<()> {
    // Writes to a closed client socket/pipe must be errors, not death.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };

    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The read end must block for the waiting thread.
    unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETFL, 0) };
    WAKE_FD.store(write_end.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(write_end); // lives as long as the process

    for sig in [libc::SIGTERM, libc::SIGINT] {
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }

    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut b = 0u8;
            loop {
                let n = unsafe { libc::read(read_end.as_raw_fd(), (&mut b as *mut u8).cast(), 1) };
                if n == 1 {
                    break;
                }
            }
            let name = if b as i32 == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            println!("shoal-agent: {name} received, stopping all processes");
            let _ = std::fs::remove_file(&socket);
            terminate_all();
            std::process::exit(0);
        })?;
    Ok(())
}

/// SIGTERM everything, wait up to GRACE for it to go, then SIGKILL what is left.
fn terminate_all() {
    // As PID 1 of the sandbox's pid namespace, kill(-1) reaches every other process in the
    // sandbox. Anywhere else (a developer running the agent on a host) kill(-1) would hit
    // the user's whole session, so there we only kill the process groups we started.
    let pid1 = unsafe { libc::getpid() } == 1;
    let send = |sig| {
        if pid1 {
            unsafe { libc::kill(-1, sig) };
        } else {
            for pid in reaper::get().registered_pids() {
                unsafe { libc::kill(-pid, sig) };
            }
        }
    };
    let any_left = || {
        if pid1 {
            unsafe { libc::kill(-1, 0) == 0 }
        } else {
            !reaper::get().registered_pids().is_empty()
        }
    };
    send(libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while any_left() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20)); // the reaper collects them meanwhile
    }
    send(libc::SIGKILL);
}
