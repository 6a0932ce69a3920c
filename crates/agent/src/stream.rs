//! Streamed processes on a connection: `ExecStream` (foreground or background), `Attach`,
//! and the pid-addressed controls of background processes.
//!
//! While a stream runs, two threads serve the connection: the main one sends output (from
//! `process::drive` for a foreground process, from the ring buffer for a background one), a
//! control thread reads the client's frames (stdin, close_stdin, signal, resize) and applies
//! them. Frames are written through one `Writer`, which is closed after the last frame.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shoal_agent_proto::{ExecStreamRequest, OutputStream, Request, Response};

use crate::background::{BgProc, Spec};
use crate::conn::{FrameReader, Writer, WRITE_POLL};
use crate::error::{AgentError, AgentResult};
use crate::exec::{self, Prepared, Spawned, Stdio};
use crate::process::{drive, ChildIo, DriveOpts, ProcCtl, Sink};
use crate::server::{op_name, Agent};

/// How long a standalone `Stdin` request waits for the process to take its bytes.
const STANDALONE_STDIN_WAIT: Duration = Duration::from_secs(30);

pub fn exec_stream(
    stream: &UnixStream,
    reader: FrameReader<'_>,
    agent: &Agent,
    req: ExecStreamRequest,
) {
    stream_socket(stream);
    let w = Writer::new(stream);
    let mut child = match start(&req, &agent.base_env) {
        Ok(Ok(child)) => child,
        Ok(Err((exit_code, message))) => {
            // Not found / not executable: like a shell (and like `Exec`), no process started.
            let _ = w.send(&Response::Output {
                stream: OutputStream::Stderr,
                data: message.into_bytes(),
                offset: None,
            });
            let _ = w.send_last(&Response::Exited {
                exit_code,
                signal: None,
                timed_out: false,
                duration_ms: 0,
            });
            return end(stream);
        }
        Err(e) => {
            let _ = w.send_last(&e.into());
            return end(stream);
        }
    };
    let pid = child.pid;
    let ctl = match ProcCtl::new(&mut child) {
        Ok(ctl) => ctl,
        Err(e) => {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = w.send_last(&AgentError::io("cannot set up the process", &e).into());
            return end(stream);
        }
    };
    let io = ChildIo::new(child);
    let timeout = req.timeout_ms.map(Duration::from_millis);

    if req.background {
        let spec = Spec {
            cmd: req.cmd.clone(),
            args: req.args.clone(),
            timeout,
            ring_bytes: agent.ring_bytes,
        };
        let proc = match agent.procs.start(ctl, io, spec) {
            Ok(p) => p,
            Err(e) => {
                let _ = w.send_last(&e.into());
                return end(stream);
            }
        };
        let _ = w.send(&Response::Started { pid: pid as u32 });
        // From here on this is an attach from the start; the process does not depend on us.
        let control = Control {
            initial_stdin: req.stdin,
            keep_open: req.keep_stdin_open,
            close_on_eof: false,
        };
        with_control(stream, reader, &proc.ctl, &w, control, || {
            let _ = stream_ring(&proc, &w, true, agent.heartbeat);
        });
    } else {
        let _ = w.send(&Response::Started { pid: pid as u32 });
        let control = Control {
            initial_stdin: req.stdin,
            keep_open: req.keep_stdin_open,
            close_on_eof: true,
        };
        with_control(stream, reader, &ctl, &w, control, || {
            let opts = DriveOpts {
                timeout,
                heartbeat: Some(agent.heartbeat),
                hangup_fd: Some(stream.as_raw_fd()),
            };
            let exit = drive(io, &ctl, opts, &mut SocketSink(&w));
            let _ = w.send_last(&exit.frame());
        });
    }
    end(stream)
}

/// Prepare and spawn; `Ok(Err((exit_code, stderr)))` when the command cannot run.
fn start(
    req: &ExecStreamRequest,
    base_env: &exec::Env,
) -> AgentResult<Result<exec::Child, (i32, String)>> {
    let cmd = match exec::prepare(&req.cmd, &req.args, &req.env, req.cwd.as_deref(), base_env)? {
        Prepared::Ready(cmd) => cmd,
        Prepared::NotRunnable { exit_code, message } => return Ok(Err((exit_code, message))),
    };
    let stdio = match req.pty {
        Some(size) => Stdio::Pty(size),
        None => Stdio::Pipes {
            stdin: req.stdin.is_some() || req.keep_stdin_open,
        },
    };
    Ok(match exec::spawn(&cmd, stdio)? {
        Spawned::Running(child) => Ok(child),
        Spawned::NotRunnable { exit_code, message } => Err((exit_code, message)),
    })
}

pub fn attach(
    stream: &UnixStream,
    reader: FrameReader<'_>,
    agent: &Agent,
    pid: u32,
    from_start: bool,
) {
    stream_socket(stream);
    let w = Writer::new(stream);
    let proc = match agent.procs.get(pid) {
        Ok(p) => p,
        Err(e) => {
            let _ = w.send_last(&e.into());
            return end(stream);
        }
    };
    let control = Control {
        initial_stdin: None,
        keep_open: true,
        close_on_eof: false,
    };
    with_control(stream, reader, &proc.ctl, &w, control, || {
        let _ = stream_ring(&proc, &w, from_start, agent.heartbeat);
    });
    end(stream)
}

/// A standalone `Stdin`/`CloseStdin`/`Signal`/`Resize` for a background process.
pub fn control(agent: &Agent, req: Request) -> Response {
    let op = op_name(&req);
    let result = (|| {
        let pid = match &req {
            Request::Stdin { pid, .. }
            | Request::CloseStdin { pid }
            | Request::Signal { pid, .. }
            | Request::Resize { pid, .. } => *pid,
            _ => None,
        };
        let Some(pid) = pid else {
            return Err(AgentError::invalid(format!(
                "{op} needs a pid outside an exec stream or attach"
            )));
        };
        let proc = agent.procs.get(pid)?;
        let since = Instant::now();
        apply(&proc.ctl, req, &|| since.elapsed() > STANDALONE_STDIN_WAIT)
    })();
    match result {
        Ok(()) => Response::Ok { bytes: None },
        Err(e) => e.into(),
    }
}

/// Apply one control frame to a process.
fn apply(ctl: &ProcCtl, req: Request, give_up: &dyn Fn() -> bool) -> AgentResult<()> {
    let check = |pid: Option<u32>| match pid {
        Some(p) if p != ctl.pid as u32 => Err(AgentError::invalid(format!(
            "this stream controls process {}, not {p}",
            ctl.pid
        ))),
        _ => Ok(()),
    };
    match req {
        Request::Stdin { pid, data } => {
            check(pid)?;
            ctl.write_stdin(&data, give_up)
        }
        Request::CloseStdin { pid } => {
            check(pid)?;
            ctl.close_stdin()
        }
        Request::Signal { pid, signal } => {
            check(pid)?;
            ctl.signal(signal)
        }
        Request::Resize { pid, rows, cols } => {
            check(pid)?;
            ctl.resize(rows, cols)
        }
        other => Err(AgentError::invalid(format!(
            "{} is not allowed in an exec stream or attach (only stdin, close_stdin, signal and resize)",
            op_name(&other)
        ))),
    }
}

struct Control {
    /// Written to stdin first.
    initial_stdin: Option<Vec<u8>>,
    /// Otherwise stdin is closed after `initial_stdin` (if there was one).
    keep_open: bool,
    /// Close stdin when the client closes its side (a foreground process: nobody else can
    /// send it input).
    close_on_eof: bool,
}

/// Run `main` (which sends the output frames) while a control thread applies the client's
/// frames; when `main` returns, end the connection and the control thread.
fn with_control(
    stream: &UnixStream,
    reader: FrameReader<'_>,
    ctl: &ProcCtl,
    w: &Writer<'_>,
    control: Control,
    main: impl FnOnce(),
) {
    let cancel = AtomicBool::new(false);
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn_scoped(s, || control_frames(reader, ctl, w, control, &cancel));
        if let Err(e) = spawned {
            // Nobody can send it input now; do not let it wait for any.
            eprintln!("shoal-agent: cannot start a control thread: {e}");
            let _ = ctl.close_stdin();
        }
        main();
        w.close();
        cancel.store(true, Ordering::SeqCst);
        // Wakes the control thread's blocking read.
        let _ = stream.shutdown(Shutdown::Both);
    });
}

fn control_frames(
    mut reader: FrameReader<'_>,
    ctl: &ProcCtl,
    w: &Writer<'_>,
    control: Control,
    cancel: &AtomicBool,
) {
    let give_up = || cancel.load(Ordering::SeqCst);
    if let Some(data) = &control.initial_stdin {
        // If the process does not want it, that is its business (like `Exec`).
        let _ = ctl.write_stdin(data, &give_up);
        if !control.keep_open {
            let _ = ctl.close_stdin();
        }
    }
    loop {
        let frame = match reader.next() {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => {
                if control.close_on_eof && !give_up() {
                    let _ = ctl.close_stdin();
                }
                return;
            }
        };
        let result = match frame {
            Ok(req) => apply(ctl, req, &give_up),
            Err(message) => Err(AgentError::invalid(message)),
        };
        if let Err(e) = result {
            // Answers the bad frame; the stream goes on.
            let _ = w.send(&e.into());
        }
    }
}

/// Send a background process's output from the ring buffer (from the start of what it still
/// holds, or from now), then `Exited`. `Err` when the client is gone.
fn stream_ring(
    proc: &BgProc,
    w: &Writer<'_>,
    from_start: bool,
    heartbeat: Duration,
) -> io::Result<()> {
    let mut pos = if from_start {
        0
    } else {
        proc.lock().ring.total()
    };
    let mut last_sent = Instant::now();
    loop {
        let (frames, exit) = {
            let mut st = proc.lock();
            loop {
                if st.ring.total() > pos || st.exit.is_some() {
                    break;
                }
                let wait = (last_sent + heartbeat).saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    break;
                }
                st = proc.wait(st, wait);
            }
            let frames = st.ring.read_from(pos);
            pos = st.ring.total();
            (frames, st.exit)
        };
        if frames.is_empty() && exit.is_none() {
            w.send(&Response::Heartbeat)?;
            last_sent = Instant::now();
            continue;
        }
        for (offset, stream, data) in frames {
            w.send(&Response::Output {
                stream,
                data,
                offset: Some(offset),
            })?;
            last_sent = Instant::now();
        }
        if let Some(exit) = exit {
            // The exit is recorded after the last output, under the same lock: all sent.
            return w.send_last(&exit.frame());
        }
    }
}

struct SocketSink<'a, 'b>(&'a Writer<'b>);

impl Sink for SocketSink<'_, '_> {
    fn output(
        &mut self,
        stream: OutputStream,
        data: &[u8],
        stall: &mut dyn FnMut(),
    ) -> io::Result<()> {
        let frame = Response::Output {
            stream,
            data: data.to_vec(),
            offset: None,
        };
        self.0.send_with(&frame, stall)
    }

    fn heartbeat(&mut self, stall: &mut dyn FnMut()) -> io::Result<()> {
        self.0.send_with(&Response::Heartbeat, stall)
    }
}

/// A stream never times out waiting for the client's frames; writes wake up regularly so a
/// slow client cannot keep the process's timeout from firing.
fn stream_socket(stream: &UnixStream) {
    let _ = stream.set_read_timeout(None);
    let _ = stream.set_write_timeout(Some(WRITE_POLL));
}

fn end(stream: &UnixStream) {
    let _ = stream.shutdown(Shutdown::Both);
}
