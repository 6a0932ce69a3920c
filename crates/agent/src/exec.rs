//! Running one command: fork/exec, feed stdin, capture output, enforce the timeout.
//!
//! We fork/exec by hand instead of using `std::process::Command` because std (and glibc's
//! posix_spawn) call `waitpid(pid)` themselves when exec fails, which races with our reaper
//! (reaper.rs) - the only thread allowed to wait. Doing it ourselves also lets us hold the
//! reaper's registry lock across the fork, so a child can never be reaped unregistered.
//!
//! `prepare` + `spawn` are shared with streamed processes (stream.rs), which may also run on
//! a pseudo-terminal: then the child starts a new session (`setsid`) and makes the pty slave
//! its controlling terminal (`TIOCSCTTY`) and its stdin/stdout/stderr.
//!
//! For `Exec`, after the fork a single thread drives everything with `poll()`: writing stdin,
//! reading stdout and stderr, the "child exited" pipe from the reaper and the timeout. One
//! thread means nothing can be left blocked (and leaked) when we give up on a stream.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shoal_agent_proto::{ExecRequest, ExecResult, PtySize, MAX_OUTPUT_BYTES};

use crate::error::{AgentError, AgentResult};
use crate::{pty, reaper};

/// Environment every command starts from (before the agent's own env and the request's).
const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("TERM", "xterm"),
];

/// Once the command itself has exited, how long we keep reading output. Background children
/// (`sleep 1000 &`) inherit stdout and may hold it open forever; we must not wait for them.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

pub const READ_CHUNK: usize = 128 * 1024;

pub type Env = BTreeMap<OsString, OsString>;

/// The base environment: defaults, overridden by the sandbox env the agent was started with
/// (the image's/sandbox's env from the OCI config), minus the agent's own settings.
pub fn base_env() -> Env {
    base_env_from(std::env::vars_os())
}

fn base_env_from(own: impl IntoIterator<Item = (OsString, OsString)>) -> Env {
    let mut env: Env = BASE_ENV.iter().map(|(k, v)| (k.into(), v.into())).collect();
    for (k, v) in own {
        if k != "SHOAL_AGENT_SOCKET" {
            env.insert(k, v);
        }
    }
    env
}

/// Run `req`. `Err` is a request-level failure (bad cwd, bad env, fork failed) that becomes a
/// `Response::Error`; anything the command itself does (including not existing) is an `Ok`.
pub fn run(req: &ExecRequest, base_env: &Env) -> AgentResult<ExecResult> {
    run_capped(req, base_env, MAX_OUTPUT_BYTES)
}

/// `run` with the per-stream output cap as a parameter (tests use a small one).
pub fn run_capped(req: &ExecRequest, base_env: &Env, cap: usize) -> AgentResult<ExecResult> {
    let cmd = match prepare(&req.cmd, &req.args, &req.env, req.cwd.as_deref(), base_env)? {
        Prepared::Ready(cmd) => cmd,
        Prepared::NotRunnable { exit_code, message } => {
            return Ok(failed(exit_code, message));
        }
    };
    let stdio = Stdio::Pipes {
        stdin: req.stdin.is_some(),
    };
    let child = match spawn(&cmd, stdio)? {
        Spawned::Running(child) => child,
        Spawned::NotRunnable { exit_code, message } => return Ok(failed(exit_code, message)),
    };
    Ok(child.supervise(
        req.stdin.as_deref().unwrap_or_default(),
        req.timeout_ms.map(Duration::from_millis),
        cap,
    ))
}

/// A command ready to be forked: everything as C strings, so the child never allocates.
pub struct Command {
    /// The name as requested (for messages).
    pub name: String,
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    cwd_str: Option<String>,
}

pub enum Prepared {
    Ready(Command),
    /// Shell convention: 127 = not found, 126 = found but cannot be executed. `message` is
    /// what a shell would print on stderr.
    NotRunnable {
        exit_code: i32,
        message: String,
    },
}

/// Check and convert a command. `Err` is a request-level failure (empty command, bad cwd, bad
/// env name, NUL bytes); a command that is not found is `Ok(NotRunnable)` like in a shell.
pub fn prepare(
    cmd: &str,
    args: &[String],
    req_env: &BTreeMap<String, String>,
    cwd: Option<&str>,
    base_env: &Env,
) -> AgentResult<Prepared> {
    if cmd.is_empty() {
        return Err(AgentError::invalid("empty command"));
    }
    // Checked up front so a typo'd cwd is a clear error, not an exit code.
    if let Some(cwd) = cwd {
        let p = Path::new(cwd);
        if !p.exists() {
            return Err(AgentError::invalid(format!("cwd {cwd} does not exist")));
        }
        if !p.is_dir() {
            return Err(AgentError::invalid(format!("cwd {cwd} is not a directory")));
        }
    }

    let mut env = base_env.clone();
    for (k, v) in req_env {
        if k.is_empty() || k.contains('=') {
            return Err(AgentError::invalid(format!(
                "invalid environment variable name {k:?}"
            )));
        }
        env.insert(k.into(), v.into());
    }

    // Like execvp, but with the command's PATH (request env included) rather than ours.
    // A command that is not found behaves like it does in a shell: exit code 127 and a
    // message on stderr, rather than an error response, so callers handle it like any
    // other failing command.
    let Some(program) = resolve(cmd, env.get(OsStr::new("PATH")), cwd) else {
        return Ok(Prepared::NotRunnable {
            exit_code: 127,
            message: format!("shoal-agent: command not found: {cmd}\n"),
        });
    };

    let cstr = |what: &str, b: &[u8]| {
        CString::new(b).map_err(|_| {
            AgentError::invalid(format!(
                "{what} contains a NUL byte: {:?}",
                String::from_utf8_lossy(b)
            ))
        })
    };
    let path = cstr("command", program.as_os_str().as_bytes())?;
    let mut argv = vec![cstr("command", cmd.as_bytes())?];
    for a in args {
        argv.push(cstr("argument", a.as_bytes())?);
    }
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in &env {
        let mut kv = k.clone().into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(cstr("environment", &kv)?);
    }
    let cwd_c = cwd.map(|c| cstr("cwd", c.as_bytes())).transpose()?;
    Ok(Prepared::Ready(Command {
        name: cmd.to_string(),
        path,
        argv,
        envp,
        cwd: cwd_c,
        cwd_str: cwd.map(str::to_string),
    }))
}

/// Result for a command that never ran.
fn failed(exit_code: i32, stderr: String) -> ExecResult {
    ExecResult {
        exit_code,
        stderr: stderr.into_bytes(),
        ..Default::default()
    }
}

/// Find `cmd` like execvp does: as given if it contains a '/', else the first executable
/// `dir/cmd` on PATH. Falls back to a non-executable match so exec reports "permission
/// denied" (126) instead of "not found". Relative candidates are checked against `cwd`.
fn resolve(cmd: &str, path: Option<&OsString>, cwd: Option<&str>) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd)); // exec reports whether it exists
    }
    let at = |p: &Path| match cwd {
        Some(cwd) if p.is_relative() => Path::new(cwd).join(p),
        _ => p.to_path_buf(),
    };
    let mut non_executable = None;
    for dir in path
        .map(|p| p.as_bytes())
        .unwrap_or(BASE_ENV[0].1.as_bytes())
        .split(|&b| b == b':')
    {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(cmd);
        if let Ok(meta) = std::fs::metadata(at(&candidate)) {
            if meta.is_file() {
                if meta.permissions().mode() & 0o111 != 0 {
                    return Some(candidate);
                }
                non_executable.get_or_insert(candidate);
            }
        }
    }
    non_executable
}

pub enum Spawned {
    Running(Child),
    /// The exec failed (127/126 and a shell-like message for stderr).
    NotRunnable {
        exit_code: i32,
        message: String,
    },
}

/// How the child's stdin/stdout/stderr are set up.
#[derive(Clone, Copy)]
pub enum Stdio {
    /// Pipes for stdout and stderr; stdin a pipe or /dev/null.
    Pipes { stdin: bool },
    /// A new pseudo-terminal as controlling terminal and stdin/stdout/stderr.
    Pty(PtySize),
}

/// A running child and the parent's ends of its stdio.
pub struct Child {
    pub pid: libc::pid_t,
    pub started: Instant,
    /// Write end of the stdin pipe, or a duplicate of the pty master (non-blocking).
    pub stdin: Option<OwnedFd>,
    /// Read ends (non-blocking); `None` with a pty.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The pty master (non-blocking), which is where the output of a pty process is read.
    pub pty: Option<OwnedFd>,
    /// Read end of the pipe the reaper writes the wait status to.
    pub status: OwnedFd,
}

// What the child reports through the CLOEXEC error pipe before `_exit`ing.
const STEP_CHDIR: i32 = 1;
const STEP_EXEC: i32 = 2;
const STEP_TTY: i32 = 3;

/// Fork and exec `cmd`. `Err` is a request-level failure (no fork, no pty, bad cwd).
pub fn spawn(cmd: &Command, stdio: Stdio) -> AgentResult<Spawned> {
    let name = &cmd.name;
    let spawned =
        spawn_raw(cmd, stdio).map_err(|e| AgentError::io(format!("cannot start {name}"), &e))?;
    match spawned {
        RawSpawn::Running(child) => Ok(Spawned::Running(child)),
        RawSpawn::Failed(STEP_CHDIR, e) => Err(AgentError::io(
            format!("cannot chdir to {}", cmd.cwd_str.as_deref().unwrap_or("")),
            &e,
        )),
        RawSpawn::Failed(STEP_TTY, e) => Err(AgentError::io(
            format!("cannot make the pty the controlling terminal of {name}"),
            &e,
        )),
        // Shell convention: 127 = not found, 126 = found but cannot be executed.
        RawSpawn::Failed(_, e) => Ok(Spawned::NotRunnable {
            exit_code: if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            },
            message: format!("shoal-agent: {name}: {e}\n"),
        }),
    }
}

enum RawSpawn {
    Running(Child),
    /// The child reported (step, error) before exec.
    Failed(i32, io::Error),
}

fn spawn_raw(cmd: &Command, stdio: Stdio) -> io::Result<RawSpawn> {
    // Everything the child needs is prepared here: after fork it must not allocate.
    let mut argv_p: Vec<*const libc::c_char> = cmd.argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = cmd.envp.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let cwd = cmd.cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());

    // All fds are CLOEXEC so concurrently spawned children never keep our pipes open.
    // child_fds: what the child gets as 0, 1, 2; parent: what we keep.
    let (child_fds, stdin_w, stdout_r, stderr_r, master) = match stdio {
        Stdio::Pipes { stdin } => {
            let (stdin_r, stdin_w) = if stdin {
                let (r, w) = pipe()?;
                (r, Some(w))
            } else {
                (open_dev_null()?, None)
            };
            let (stdout_r, stdout_w) = pipe()?;
            let (stderr_r, stderr_w) = pipe()?;
            (
                [stdin_r, stdout_w, stderr_w],
                stdin_w,
                Some(stdout_r),
                Some(stderr_r),
                None,
            )
        }
        Stdio::Pty(size) => {
            let (master, slave) = pty::open(size)?;
            let writer = master.try_clone()?;
            let child_fds = [slave.try_clone()?, slave.try_clone()?, slave];
            (child_fds, Some(writer), None, None, Some(master))
        }
    };
    let use_pty = master.is_some();
    let (report_r, report_w) = pipe()?;
    let (status_r, status_w) = pipe()?;

    let registry = reaper::get().lock();
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // Child. Only async-signal-safe calls from here on.
        unsafe {
            exec_child(
                [
                    child_fds[0].as_raw_fd(),
                    child_fds[1].as_raw_fd(),
                    child_fds[2].as_raw_fd(),
                ],
                use_pty,
                report_w.as_raw_fd(),
                cwd,
                cmd.path.as_ptr(),
                argv_p.as_ptr(),
                envp_p.as_ptr(),
            )
        }
    }
    if !use_pty {
        // Also set the group from the parent, so a `kill(-pid)` right after this cannot miss
        // a child that has not run `setpgid` yet (fails harmlessly if the child already
        // exec'd). Not with a pty: the child must not be a group leader before its `setsid`.
        unsafe { libc::setpgid(pid, pid) };
    }
    registry.register(pid, status_w);
    let started = Instant::now();

    // Close the child's ends (with a pty: every slave fd, or we would never see EIO).
    drop((child_fds, report_w));

    // The report pipe closes on a successful exec (CLOEXEC) or carries (step, errno).
    let mut report = [0u8; 8];
    let n = read_full(report_r.as_raw_fd(), &mut report);
    if n == report.len() {
        // The child `_exit`s right away; nobody needs its status.
        reaper::get().unregister(pid);
        let step = i32::from_ne_bytes(report[..4].try_into().unwrap());
        let err = io::Error::from_raw_os_error(i32::from_ne_bytes(report[4..].try_into().unwrap()));
        return Ok(RawSpawn::Failed(step, err));
    }

    for fd in [&stdout_r, &stderr_r, &stdin_w, &master]
        .into_iter()
        .flatten()
    {
        set_nonblocking(fd.as_raw_fd())?;
    }
    Ok(RawSpawn::Running(Child {
        pid,
        started,
        stdin: stdin_w,
        stdout: stdout_r,
        stderr: stderr_r,
        pty: master,
        status: status_r,
    }))
}

/// The forked child: set up and exec, or report why not. Never returns.
unsafe fn exec_child(
    stdio: [RawFd; 3],
    use_pty: bool,
    report: RawFd,
    cwd: *const libc::c_char,
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> ! {
    if use_pty {
        // New session (and process group), so the pty can become its controlling terminal.
        libc::setsid();
    } else {
        // Own process group, so a timeout can kill the command and everything it started.
        libc::setpgid(0, 0);
    }
    // Undo what the agent changed for itself: the signal mask and ignored SIGPIPE are
    // inherited across exec (handlers are reset by exec anyway).
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    for sig in [libc::SIGPIPE, libc::SIGTERM, libc::SIGINT] {
        libc::signal(sig, libc::SIG_DFL);
    }
    // fds 0-2 are always open in the agent (main ensures it), so our fds are >= 3 and these
    // dup2s cannot clobber each other. dup2 clears CLOEXEC on the new fd.
    for (target, fd) in stdio.into_iter().enumerate() {
        libc::dup2(fd, target as RawFd);
    }
    if use_pty && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
        child_fail(report, STEP_TTY);
    }
    if !cwd.is_null() && libc::chdir(cwd) != 0 {
        child_fail(report, STEP_CHDIR);
    }
    libc::execve(path, argv, envp);
    child_fail(report, STEP_EXEC)
}

unsafe fn child_fail(report: RawFd, step: i32) -> ! {
    let errno = *libc::__errno_location();
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&step.to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    libc::write(report, msg.as_ptr().cast(), msg.len());
    libc::_exit(127)
}

/// One captured output stream.
struct Capture {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
    truncated: bool,
}

impl Capture {
    fn new(fd: Option<OwnedFd>) -> Self {
        Capture {
            fd,
            buf: Vec::new(),
            truncated: false,
        }
    }

    /// One read (not "until EAGAIN", so a chatty command cannot starve the timeout check).
    fn read_some(&mut self, chunk: &mut [u8], cap: usize) {
        let Some(fd) = &self.fd else { return };
        let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if n > 0 {
            let n = n as usize;
            let room = cap.saturating_sub(self.buf.len());
            // Past the cap we keep reading (so the writer does not block) but drop the bytes.
            self.buf.extend_from_slice(&chunk[..n.min(room)]);
            self.truncated |= n > room;
        } else if n == 0 || !is_retryable(io::Error::last_os_error()) {
            self.fd = None; // EOF (or a broken pipe): done with this stream
        }
    }
}

impl Child {
    fn supervise(self, stdin_data: &[u8], timeout: Option<Duration>, cap: usize) -> ExecResult {
        let Child {
            pid,
            started,
            stdin,
            stdout,
            stderr,
            pty: _,
            status,
        } = self;
        let deadline = timeout.map(|t| started + t);
        let mut stdin = stdin;
        let mut stdin_data = stdin_data;
        let mut out = Capture::new(stdout);
        let mut err = Capture::new(stderr);
        let mut status = Some(status);
        let mut exit: Option<(libc::c_int, Instant)> = None;
        let mut timed_out = false;
        let mut chunk = vec![0u8; READ_CHUNK];

        if stdin_data.is_empty() {
            stdin = None; // empty stdin: just EOF
        }

        loop {
            if exit.is_some() && out.fd.is_none() && err.fd.is_none() {
                break;
            }
            let now = Instant::now();
            // What we wait for next: the kill deadline while it runs, the drain limit after.
            let wake_at = match exit {
                Some((_, exited)) => {
                    let drain_end = exited + DRAIN_AFTER_EXIT;
                    if now >= drain_end {
                        break; // background children still hold the pipes: stop reading
                    }
                    Some(drain_end)
                }
                None => match deadline {
                    Some(d) if !timed_out && now >= d => {
                        // Kill the whole group: the command and everything it started.
                        unsafe { libc::kill(-pid, libc::SIGKILL) };
                        timed_out = true;
                        None
                    }
                    Some(d) if !timed_out => Some(d),
                    _ => None,
                },
            };
            let poll_ms = wake_at.map_or(-1, |t| {
                let ms = t
                    .saturating_duration_since(now)
                    .as_nanos()
                    .div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as i32
            });

            let mut fds = Vec::with_capacity(4);
            let mut add = |fd: &Option<OwnedFd>, events| {
                fds.push(libc::pollfd {
                    fd: fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                    events,
                    revents: 0,
                });
            };
            // A negative fd is ignored by poll, keeping indexes fixed.
            add(&stdin, libc::POLLOUT);
            add(&out.fd, libc::POLLIN);
            add(&err.fd, libc::POLLIN);
            add(&status, libc::POLLIN);
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, poll_ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Cannot happen with valid fds; avoid spinning if it somehow does.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let ready = |i: usize| fds[i].revents != 0;

            if ready(0) {
                if let Some(fd) = &stdin {
                    let len = stdin_data.len().min(READ_CHUNK);
                    let n = unsafe { libc::write(fd.as_raw_fd(), stdin_data.as_ptr().cast(), len) };
                    if n > 0 {
                        stdin_data = &stdin_data[n as usize..];
                    }
                    // All written (close = EOF for the child), or the child closed its end.
                    if stdin_data.is_empty() || (n < 0 && !is_retryable(io::Error::last_os_error()))
                    {
                        stdin = None;
                    }
                }
            }
            if ready(1) {
                out.read_some(&mut chunk, cap);
            }
            if ready(2) {
                err.read_some(&mut chunk, cap);
            }
            if ready(3) {
                let mut buf = [0u8; 4];
                if let Some(fd) = status.take() {
                    if read_full(fd.as_raw_fd(), &mut buf) == buf.len() {
                        exit = Some((i32::from_ne_bytes(buf), Instant::now()));
                    } else {
                        // Cannot happen (the reaper holds the write end until it writes); treat
                        // as killed rather than hang.
                        exit = Some((libc::SIGKILL, Instant::now()));
                    }
                    // Nobody left to read the rest of stdin (background children aside).
                    stdin = None;
                }
            }
        }

        let (raw, exited) = exit.expect("loop only ends after exit");
        let (exit_code, signal) = decode_status(raw);
        ExecResult {
            exit_code,
            signal,
            timed_out,
            truncated: out.truncated || err.truncated,
            stdout: out.buf,
            stderr: err.buf,
            duration_ms: exited.duration_since(started).as_millis() as u64,
        }
    }
}

/// (exit code, signal) from a wait status; 128+signal when killed (shell convention).
pub fn decode_status(raw: libc::c_int) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(raw) {
        let sig = libc::WTERMSIG(raw);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(raw), None)
    }
}

pub fn is_retryable(e: io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn open_dev_null() -> io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into()) // std opens with O_CLOEXEC
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocking read until `buf` is full or EOF; returns the byte count.
pub fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_searches_path() {
        let path = OsString::from("/nonexistent:/bin:/usr/bin");
        assert!(resolve("sh", Some(&path), None).unwrap().ends_with("sh"));
        assert_eq!(
            resolve("definitely-not-a-command-xyz", Some(&path), None),
            None
        );
        assert_eq!(
            resolve("./x", Some(&path), None),
            Some(PathBuf::from("./x"))
        );
    }

    #[test]
    fn base_env_layers_defaults_own_env_and_drops_socket_setting() {
        let own = [
            ("PATH", "/opt/bin"),
            ("FOO", "bar"),
            ("SHOAL_AGENT_SOCKET", "/x"),
        ];
        let env = base_env_from(own.iter().map(|(k, v)| (k.into(), v.into())));
        let get = |k: &str| env.get(OsStr::new(k)).and_then(|v| v.to_str());
        assert_eq!(get("PATH"), Some("/opt/bin"));
        assert_eq!(get("HOME"), Some("/root"));
        assert_eq!(get("TERM"), Some("xterm"));
        assert_eq!(get("FOO"), Some("bar"));
        assert_eq!(get("SHOAL_AGENT_SOCKET"), None);
    }

    #[test]
    fn output_cap_truncates_but_drains() {
        let req = ExecRequest {
            cmd: "sh".into(),
            args: vec![
                "-c".into(),
                "head -c 100000 /dev/zero; echo done >&2".into(),
            ],
            ..Default::default()
        };
        let r = run_capped(&req, &base_env(), 1000).unwrap();
        assert_eq!(r.stdout.len(), 1000);
        assert!(r.truncated);
        assert_eq!(r.stderr, b"done\n");
        assert_eq!(r.exit_code, 0);
    }
}
