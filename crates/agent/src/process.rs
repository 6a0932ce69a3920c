//! A streamed process: what clients can do to it while it runs (`ProcCtl`: stdin, signals,
//! resize) and the loop that forwards its output as it is read (`drive`).
//!
//! One thread runs `drive` per process: it polls the output fds, the reaper's status pipe,
//! the timeout and (for a foreground stream) the client socket for a hang-up, and hands each
//! read to a `Sink` (the client socket, or a background process's ring buffer). Stdin, signals
//! and resizes come from other threads through `ProcCtl`, so a process that does not read its
//! stdin can never keep its output from being forwarded (no deadlock).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_agent_proto::{OutputStream, PtySize, Response};

use crate::error::{AgentError, AgentResult};
use crate::exec::{decode_status, is_retryable, read_full, Child, DRAIN_AFTER_EXIT, READ_CHUNK};
use crate::pty;

/// How often a blocked stdin write re-checks whether it should give up.
const STDIN_POLL: Duration = Duration::from_millis(100);

/// After the exit and the drain period, what is still readable without waiting is read, up
/// to this much per stream (more than a pipe holds, so nothing the process itself wrote
/// before exiting is lost even if the client was slow to take it).
const FINAL_SWEEP_BYTES: usize = 4 * 1024 * 1024;

/// Controls of a running process, shared by the threads that serve its clients.
pub struct ProcCtl {
    pub pid: libc::pid_t,
    /// A duplicate of the pty master (resize, foreground group, EOF character).
    pty: Option<OwnedFd>,
    /// Write end of the stdin pipe, or a duplicate of the pty master; `None` once closed.
    stdin: Mutex<Option<OwnedFd>>,
    exited: AtomicBool,
}

impl ProcCtl {
    /// Takes the child's stdin (and a duplicate of its pty master).
    pub fn new(child: &mut Child) -> io::Result<ProcCtl> {
        let pty = child.pty.as_ref().map(|m| m.try_clone()).transpose()?;
        Ok(ProcCtl {
            pid: child.pid,
            pty,
            stdin: Mutex::new(child.stdin.take()),
            exited: AtomicBool::new(false),
        })
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    fn mark_exited(&self) {
        self.exited.store(true, Ordering::SeqCst);
    }

    /// Write all of `data` to stdin, waiting for the process to read it; gives up (with an
    /// error) when the process exits or `give_up()` says so.
    pub fn write_stdin(&self, data: &[u8], give_up: &dyn Fn() -> bool) -> AgentResult<()> {
        let pid = self.pid;
        let guard = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fd) = guard.as_ref() else {
            return Err(AgentError::invalid(format!(
                "stdin of process {pid} is closed"
            )));
        };
        write_waiting(fd.as_raw_fd(), data, &|| self.has_exited() || give_up()).map_err(|e| {
            if e.raw_os_error() == Some(libc::EPIPE) {
                AgentError::invalid(format!("process {pid} closed its stdin"))
            } else if e.kind() == io::ErrorKind::TimedOut {
                let why = if self.has_exited() {
                    "has exited"
                } else {
                    "did not read it"
                };
                AgentError::invalid(format!(
                    "cannot write to the stdin of process {pid}: it {why}"
                ))
            } else {
                AgentError::io(format!("cannot write to the stdin of process {pid}"), &e)
            }
        })
    }

    /// EOF for the process: close the pipe, or on a pty type the EOF character (^D).
    /// Closing an already closed stdin is fine.
    pub fn close_stdin(&self) -> AgentResult<()> {
        let mut guard = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(fd), Some(master)) = (guard.as_ref(), &self.pty) {
            let eof = [pty::eof_char(master.as_raw_fd())];
            let deadline = Instant::now() + Duration::from_secs(5);
            let _ = write_waiting(fd.as_raw_fd(), &eof, &|| {
                self.has_exited() || Instant::now() > deadline
            });
        }
        *guard = None;
        Ok(())
    }

    /// Drop stdin without an EOF character (the process is gone).
    pub fn release_stdin(&self) {
        *self.stdin.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Send `sig` to the process group (see `kill_group`), if the process still runs.
    pub fn signal(&self, sig: i32) -> AgentResult<()> {
        if !(1..=64).contains(&sig) {
            return Err(AgentError::invalid(format!("invalid signal number {sig}")));
        }
        if self.has_exited() {
            return Err(AgentError::invalid(format!(
                "process {} has exited",
                self.pid
            )));
        }
        self.kill_group(sig);
        Ok(())
    }

    /// The process's group and, on a pty, the terminal's foreground group (the job a shell
    /// on the terminal is running), like a terminal's ^C would.
    pub fn kill_group(&self, sig: i32) {
        unsafe { libc::kill(-self.pid, sig) };
        if let Some(fg) = self
            .pty
            .as_ref()
            .and_then(|m| pty::foreground_group(m.as_raw_fd()))
        {
            if fg != self.pid {
                unsafe { libc::kill(-fg, sig) };
            }
        }
    }

    pub fn resize(&self, rows: u16, cols: u16) -> AgentResult<()> {
        let Some(master) = &self.pty else {
            return Err(AgentError::invalid(format!(
                "process {} has no pty to resize",
                self.pid
            )));
        };
        pty::resize(master.as_raw_fd(), PtySize { rows, cols }).map_err(|e| {
            AgentError::io(format!("cannot resize the pty of process {}", self.pid), &e)
        })
    }
}

/// Write all of `data` to a non-blocking fd, polling while it is full; `TimedOut` when
/// `give_up()` says so while waiting.
fn write_waiting(fd: RawFd, mut data: &[u8], give_up: &dyn Fn() -> bool) -> io::Result<()> {
    while !data.is_empty() {
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                if give_up() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                unsafe { libc::poll(&mut p, 1, STDIN_POLL.as_millis() as i32) };
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExitInfo {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl ExitInfo {
    pub fn frame(&self) -> Response {
        Response::Exited {
            exit_code: self.exit_code,
            signal: self.signal,
            timed_out: self.timed_out,
            duration_ms: self.duration_ms,
        }
    }
}

/// Where `drive` puts output. An `Err` means the client is gone.
pub trait Sink {
    /// `stall` must be called periodically while the sink waits for a slow client.
    fn output(
        &mut self,
        stream: OutputStream,
        data: &[u8],
        stall: &mut dyn FnMut(),
    ) -> io::Result<()>;
    fn heartbeat(&mut self, stall: &mut dyn FnMut()) -> io::Result<()>;
}

pub struct DriveOpts {
    pub timeout: Option<Duration>,
    /// Call `Sink::heartbeat` after this long without output.
    pub heartbeat: Option<Duration>,
    /// The client socket of a foreground stream: when it hangs up (or the sink fails) the
    /// process group is killed.
    pub hangup_fd: Option<RawFd>,
}

/// The output side of a spawned child, for `drive`.
pub struct ChildIo {
    started: Instant,
    outputs: Vec<(OutputStream, OwnedFd)>,
    status: OwnedFd,
}

impl ChildIo {
    /// Takes the child's output fds and status pipe.
    pub fn new(child: Child) -> ChildIo {
        let outputs = match child.pty {
            Some(master) => vec![(OutputStream::Pty, master)],
            None => [
                (OutputStream::Stdout, child.stdout),
                (OutputStream::Stderr, child.stderr),
            ]
            .into_iter()
            .filter_map(|(s, fd)| fd.map(|fd| (s, fd)))
            .collect(),
        };
        ChildIo {
            started: child.started,
            outputs,
            status: child.status,
        }
    }
}

impl ChildIo {
    pub fn is_pty(&self) -> bool {
        self.outputs.iter().any(|(s, _)| *s == OutputStream::Pty)
    }
}

struct Deadline<'a> {
    at: Option<Instant>,
    ctl: &'a ProcCtl,
    fired: bool,
}

impl Deadline<'_> {
    /// Kill the process group once the timeout has passed (and it still runs).
    fn check(&mut self) {
        if !self.fired && !self.ctl.has_exited() && self.at.is_some_and(|d| Instant::now() >= d) {
            self.ctl.kill_group(libc::SIGKILL);
            self.fired = true;
        }
    }
}

/// Forward the child's output to `sink` until it has exited and its output is drained.
pub fn drive(io: ChildIo, ctl: &ProcCtl, opts: DriveOpts, sink: &mut dyn Sink) -> ExitInfo {
    let ChildIo {
        started,
        outputs,
        status,
    } = io;
    let mut outs: Vec<(OutputStream, Option<OwnedFd>)> =
        outputs.into_iter().map(|(s, fd)| (s, Some(fd))).collect();
    let mut status = Some(status);
    let mut deadline = Deadline {
        at: opts.timeout.map(|t| started + t),
        ctl,
        fired: false,
    };
    let mut exit: Option<(libc::c_int, Instant)> = None;
    let mut client_gone = false;
    let mut last_sent = Instant::now();
    let mut chunk = vec![0u8; READ_CHUNK];

    // The client is gone: a foreground process goes with it.
    let hang_up = |client_gone: &mut bool, exited: bool| {
        if !*client_gone {
            *client_gone = true;
            if !exited {
                ctl.kill_group(libc::SIGKILL);
            }
        }
    };

    loop {
        if exit.is_some() && outs.iter().all(|(_, fd)| fd.is_none()) {
            break;
        }
        deadline.check();
        let now = Instant::now();
        let wake_at = match exit {
            Some((_, exited)) => {
                let drain_end = exited + DRAIN_AFTER_EXIT;
                if now >= drain_end {
                    // Background children may hold the output open forever: take what is
                    // there now and stop.
                    for (stream, fd) in &mut outs {
                        let mut budget = FINAL_SWEEP_BYTES;
                        while budget > 0 {
                            match read_some(fd, &mut chunk) {
                                Some(n) if n > 0 => {
                                    budget = budget.saturating_sub(n);
                                    if !client_gone
                                        && sink.output(*stream, &chunk[..n], &mut || {}).is_err()
                                    {
                                        client_gone = true;
                                    }
                                }
                                _ => break,
                            }
                        }
                    }
                    break;
                }
                Some(drain_end)
            }
            None => {
                let mut wake = deadline.at.filter(|_| !deadline.fired);
                if let (Some(hb), false) = (opts.heartbeat, client_gone) {
                    let due = last_sent + hb;
                    if now >= due {
                        if sink.heartbeat(&mut || deadline.check()).is_err() {
                            hang_up(&mut client_gone, ctl.has_exited());
                        }
                        last_sent = Instant::now();
                        continue;
                    }
                    wake = Some(wake.map_or(due, |w| w.min(due)));
                }
                wake
            }
        };
        let poll_ms = wake_at.map_or(-1, |t| {
            let ms = t
                .saturating_duration_since(now)
                .as_nanos()
                .div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as i32
        });

        let fd_of = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let mut fds: Vec<libc::pollfd> = outs
            .iter()
            .map(|(_, fd)| libc::pollfd {
                fd: fd_of(fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(libc::pollfd {
            fd: fd_of(&status),
            events: libc::POLLIN,
            revents: 0,
        });
        // Only POLLHUP/POLLERR are reported for an fd polled with no events (the client's
        // frames are read by another thread).
        let watch_client = !client_gone && exit.is_none();
        fds.push(libc::pollfd {
            fd: opts.hangup_fd.filter(|_| watch_client).unwrap_or(-1),
            events: 0,
            revents: 0,
        });
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, poll_ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // Cannot happen with valid fds; avoid spinning if it somehow does.
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let nouts = outs.len();
        if fds[nouts + 1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            hang_up(&mut client_gone, ctl.has_exited());
        }
        for (i, (stream, fd)) in outs.iter_mut().enumerate() {
            if fds[i].revents == 0 {
                continue;
            }
            // One read per wake-up (not "until EAGAIN"), so a chatty process cannot starve
            // the timeout, the heartbeat or the other stream.
            if let Some(n) = read_some(fd, &mut chunk).filter(|&n| n > 0) {
                if !client_gone {
                    let sent = sink.output(*stream, &chunk[..n], &mut || deadline.check());
                    if sent.is_err() {
                        hang_up(&mut client_gone, ctl.has_exited());
                    }
                    last_sent = Instant::now();
                }
            }
        }
        if fds[nouts].revents != 0 {
            if let Some(fd) = status.take() {
                let mut buf = [0u8; 4];
                let raw = if read_full(fd.as_raw_fd(), &mut buf) == buf.len() {
                    i32::from_ne_bytes(buf)
                } else {
                    // Cannot happen (the reaper holds the write end until it writes); treat
                    // as killed rather than hang.
                    libc::SIGKILL
                };
                exit = Some((raw, Instant::now()));
                ctl.mark_exited();
            }
        }
    }

    let (raw, exited) = exit.expect("loop only ends after exit");
    let (exit_code, signal) = decode_status(raw);
    ExitInfo {
        exit_code,
        signal,
        timed_out: deadline.fired,
        duration_ms: exited.duration_since(started).as_millis() as u64,
    }
}

/// One non-blocking read: `Some(n > 0)` data, `Some(0)` nothing right now, `None` once the
/// stream ended (EOF, or EIO from a pty master whose terminal is closed everywhere), after
/// which `fd` is closed.
fn read_some(fd: &mut Option<OwnedFd>, chunk: &mut [u8]) -> Option<usize> {
    let raw = fd.as_ref()?.as_raw_fd();
    let n = unsafe { libc::read(raw, chunk.as_mut_ptr().cast(), chunk.len()) };
    if n > 0 {
        return Some(n as usize);
    }
    if n < 0 && is_retryable(io::Error::last_os_error()) {
        return Some(0);
    }
    *fd = None;
    None
}
