//! End-to-end tests of streaming exec, background processes and ptys over a real unix socket.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shoal_agent_proto::{
    ErrorKind, ExecStreamRequest, OutputStream, ProcessInfo, PtySize, Request, Response,
    RING_BUFFER_BYTES,
};

use crate::tests::{call, socket, start_server, Client};

fn sh(script: &str) -> ExecStreamRequest {
    ExecStreamRequest {
        cmd: "sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

/// A server that sends a heartbeat every 100 ms.
fn fast_heartbeat_socket() -> &'static PathBuf {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| start_server("heartbeat", |a| a.heartbeat = Duration::from_millis(100)))
}

#[derive(Debug, Default)]
struct Run {
    started: Option<u32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    pty: Vec<u8>,
    /// (stream, bytes, offset, time since the request was sent)
    outputs: Vec<(OutputStream, Vec<u8>, Option<u64>, Duration)>,
    heartbeats: usize,
    errors: Vec<(ErrorKind, String)>,
    exit: Option<Exit>,
    /// Frames in order, by kind (e.g. "started", "output", "exited").
    kinds: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Exit {
    code: i32,
    signal: Option<i32>,
    timed_out: bool,
    duration_ms: u64,
}

impl Run {
    fn exit(&self) -> Exit {
        self.exit.unwrap_or_else(|| panic!("no exit in {self:?}"))
    }
}

/// Read frames until `Exited` (or the end of the connection), calling `on_frame` for each.
fn collect_with(c: &mut Client, t0: Instant, mut on_frame: impl FnMut(&Response, &Run)) -> Run {
    let mut run = Run::default();
    while let Some(frame) = c.recv() {
        on_frame(&frame, &run);
        match frame {
            Response::Started { pid } => {
                run.kinds.push("started");
                run.started = Some(pid)
            }
            Response::Output {
                stream,
                data,
                offset,
            } => {
                run.kinds.push("output");
                match stream {
                    OutputStream::Stdout => run.stdout.extend_from_slice(&data),
                    OutputStream::Stderr => run.stderr.extend_from_slice(&data),
                    OutputStream::Pty => run.pty.extend_from_slice(&data),
                }
                run.outputs.push((stream, data, offset, t0.elapsed()));
            }
            Response::Heartbeat => {
                run.kinds.push("heartbeat");
                run.heartbeats += 1
            }
            Response::Error {
                message,
                error_kind,
            } => {
                run.kinds.push("error");
                run.errors.push((error_kind, message))
            }
            Response::Exited {
                exit_code,
                signal,
                timed_out,
                duration_ms,
            } => {
                run.kinds.push("exited");
                run.exit = Some(Exit {
                    code: exit_code,
                    signal,
                    timed_out,
                    duration_ms,
                });
                assert_eq!(c.recv(), None, "Exited must be the last frame");
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    run
}

fn collect(c: &mut Client) -> Run {
    collect_with(c, Instant::now(), |_, _| {})
}

fn start(path: &Path, req: ExecStreamRequest) -> Client {
    let c = Client::connect(path);
    c.send(&Request::ExecStream(req));
    c
}

fn run(req: ExecStreamRequest) -> Run {
    collect(&mut start(socket(), req))
}

/// Read frames until `Started`.
fn started(c: &mut Client) -> u32 {
    match c.recv_data() {
        Some(Response::Started { pid }) => pid,
        other => panic!("expected Started, got {other:?}"),
    }
}

/// Read Output frames until their concatenation contains `needle`; returns it all.
fn read_until(c: &mut Client, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match c.recv_data() {
            Some(Response::Output { data, .. }) => {
                seen.extend_from_slice(&data);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    return String::from_utf8_lossy(&seen).into_owned();
                }
            }
            other => panic!(
                "waiting for {needle:?} (have {:?}), got {other:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn xorshift_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---- streaming exec -------------------------------------------------------------------

#[test]
fn output_streams_incrementally_in_order() {
    let t0 = Instant::now();
    let mut c = start(
        socket(),
        sh("for i in 1 2 3; do echo line$i; sleep 0.4; done; echo err >&2; exit 4"),
    );
    let r = collect_with(&mut c, t0, |_, _| {});
    assert_eq!(r.kinds.first(), Some(&"started"));
    assert_eq!(r.stdout, b"line1\nline2\nline3\n");
    assert_eq!(r.stderr, b"err\n");
    assert_eq!(r.exit().code, 4);
    // Each line arrived as it was printed, not at the end.
    let at = |line: &[u8]| {
        r.outputs
            .iter()
            .find(|o| o.1.windows(line.len()).any(|w| w == line))
            .unwrap()
            .3
    };
    let (l1, l2, l3) = (at(b"line1"), at(b"line2"), at(b"line3"));
    assert!(l1 < Duration::from_millis(350), "line1 came after {l1:?}");
    assert!(l2 >= l1 + Duration::from_millis(250), "{l1:?} {l2:?}");
    assert!(l3 >= l2 + Duration::from_millis(250), "{l2:?} {l3:?}");
    assert!(r.exit().duration_ms >= 1100, "{:?}", r.exit());
}

#[test]
fn heartbeats_while_silent() {
    let t0 = Instant::now();
    let mut c = start(fast_heartbeat_socket(), sh("sleep 1; echo done"));
    let r = collect_with(&mut c, t0, |_, _| {});
    assert_eq!(r.stdout, b"done\n");
    // One every 100 ms of silence (some slack for a loaded machine).
    assert!(r.heartbeats >= 5, "{} heartbeats", r.heartbeats);
    let first_output = r.kinds.iter().position(|k| *k == "output").unwrap();
    assert!(r.kinds[1..first_output].iter().all(|k| *k == "heartbeat"));
    // The default interval (5 s) sends none for a quick command.
    assert_eq!(run(sh("sleep 0.3; echo x")).heartbeats, 0);
}

#[test]
fn stdin_sent_later_then_closed() {
    let mut c = start(
        socket(),
        ExecStreamRequest {
            cmd: "cat".into(),
            stdin: Some(b"early ".to_vec()),
            keep_stdin_open: true,
            ..Default::default()
        },
    );
    started(&mut c);
    assert_eq!(read_until(&mut c, "early "), "early ");
    std::thread::sleep(Duration::from_secs(1));
    c.send(&Request::Stdin {
        pid: None,
        data: b"late\n\xff\x00".to_vec(),
    });
    let t = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 7 {
        match c.recv_data() {
            Some(Response::Output { data, .. }) => seen.extend_from_slice(&data),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, b"late\n\xff\x00");
    assert!(t.elapsed() < Duration::from_secs(1));
    c.send(&Request::CloseStdin { pid: None });
    let r = collect(&mut c);
    assert_eq!(r.exit().code, 0);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn stdin_is_closed_after_the_request_bytes_unless_kept_open() {
    let r = run(ExecStreamRequest {
        stdin: Some(b"abc".to_vec()),
        ..sh("wc -c")
    });
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "3");
    // No stdin at all: /dev/null.
    let r = run(sh("cat; echo eof"));
    assert_eq!(r.stdout, b"eof\n");
    // A client that half-closes ends the input too.
    let mut c = start(
        socket(),
        ExecStreamRequest {
            keep_stdin_open: true,
            ..sh("cat; echo eof")
        },
    );
    started(&mut c);
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let r = collect(&mut c);
    assert_eq!((r.stdout.as_slice(), r.exit().code), (&b"eof\n"[..], 0));
}

#[test]
fn signals_reach_the_process_group() {
    // SIGINT: the shell's trap runs (its `sleep` child got it too).
    let mut c = start(
        socket(),
        sh("trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 0.1; done"),
    );
    started(&mut c);
    read_until(&mut c, "ready");
    c.send(&Request::Signal {
        pid: None,
        signal: libc::SIGINT,
    });
    let r = collect(&mut c);
    assert_eq!(r.stdout, b"got INT\n");
    assert_eq!(r.exit().code, 7);

    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let mut c = start(socket(), sh("echo ready; sleep 30 & wait"));
        started(&mut c);
        read_until(&mut c, "ready");
        let t = Instant::now();
        c.send(&Request::Signal {
            pid: None,
            signal: sig,
        });
        let r = collect(&mut c);
        assert_eq!(
            (r.exit().code, r.exit().signal, r.exit().timed_out),
            (128 + sig, Some(sig), false)
        );
        // The background `sleep` got it as well, or we would wait for its stdout.
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    // A bad signal number is an error frame; the stream goes on.
    let mut c = start(
        socket(),
        ExecStreamRequest {
            keep_stdin_open: true,
            ..sh("echo ready; read x; echo bye")
        },
    );
    started(&mut c);
    read_until(&mut c, "ready");
    c.send(&Request::Signal {
        pid: None,
        signal: 99,
    });
    match c.recv_data() {
        Some(Response::Error {
            error_kind: ErrorKind::Invalid,
            message,
        }) => assert!(message.contains("99"), "{message}"),
        other => panic!("{other:?}"),
    }
    c.send(&Request::Resize {
        pid: None,
        rows: 1,
        cols: 1,
    });
    match c.recv_data() {
        Some(Response::Error { message, .. }) => assert!(message.contains("no pty"), "{message}"),
        other => panic!("{other:?}"),
    }
    c.send(&Request::ListProcesses);
    match c.recv_data() {
        Some(Response::Error { message, .. }) => {
            assert!(
                message.contains("list_processes is not allowed"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    c.send(&Request::CloseStdin { pid: None });
    let r = collect(&mut c);
    assert_eq!((r.stdout.as_slice(), r.exit().code), (&b"bye\n"[..], 0));
}

#[test]
fn timeout_kills_the_group_and_says_so() {
    let t = Instant::now();
    let r = run(ExecStreamRequest {
        timeout_ms: Some(300),
        ..sh("echo before; sleep 30 & sleep 30")
    });
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(r.stdout, b"before\n");
    let e = r.exit();
    assert!(e.timed_out);
    assert_eq!(
        (e.code, e.signal),
        (128 + libc::SIGKILL, Some(libc::SIGKILL))
    );
    assert!(e.duration_ms >= 300);
}

#[test]
fn binary_output_survives_intact() {
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let r = run(ExecStreamRequest {
        cmd: "cat".into(),
        stdin: Some(all.clone()),
        ..Default::default()
    });
    assert_eq!(r.stdout, all);
    let r = run(sh(r"printf '\377\000\200\n' >&2"));
    assert_eq!(r.stderr, b"\xff\x00\x80\n");
}

#[test]
fn ten_megabytes_stream_through() {
    let data = xorshift_bytes(7, 10 * 1024 * 1024);
    let path = std::env::temp_dir().join(format!("shoal-agent-10m-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let r = run(ExecStreamRequest {
        cmd: "cat".into(),
        args: vec![path.to_str().unwrap().into()],
        ..Default::default()
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.exit().code, 0);
    assert_eq!(r.stdout.len(), data.len());
    assert!(r.stdout == data, "10 MB came back altered");
    // Streamed in pieces, none larger than one read.
    assert!(r.outputs.len() >= 10 * 1024 * 1024 / (128 * 1024));
}

#[test]
fn disconnecting_kills_a_foreground_process() {
    let mut c = start(socket(), sh("echo $$; exec sleep 30"));
    let pid = started(&mut c);
    read_until(&mut c, "\n");
    drop(c);
    wait_for("the process to die", Duration::from_secs(3), || {
        matches!(proc_state(pid), None | Some('Z'))
    });
}

#[test]
fn missing_command_and_bad_cwd() {
    let r = run(ExecStreamRequest {
        cmd: "no-such-command-shoal".into(),
        ..Default::default()
    });
    assert_eq!(r.started, None);
    assert_eq!(r.kinds, ["output", "exited"]);
    assert_eq!(r.exit().code, 127);
    assert_eq!(
        String::from_utf8_lossy(&r.stderr),
        "shoal-agent: command not found: no-such-command-shoal\n"
    );
    let mut c = start(
        socket(),
        ExecStreamRequest {
            cwd: Some("/no/such/dir".into()),
            ..sh("true")
        },
    );
    assert_eq!(
        c.recv(),
        Some(Response::error(
            ErrorKind::Invalid,
            "cwd /no/such/dir does not exist"
        ))
    );
    assert_eq!(c.recv(), None);
}

// ---- background processes ------------------------------------------------------------

fn list(path: &Path) -> Vec<ProcessInfo> {
    let mut c = Client::connect(path);
    c.send(&Request::ListProcesses);
    match c.recv() {
        Some(Response::Processes { list }) => list,
        other => panic!("{other:?}"),
    }
}

fn one_shot(path: &Path, req: Request) -> Response {
    let mut c = Client::connect(path);
    c.send(&req);
    let r = c.recv().expect("an answer");
    assert_eq!(c.recv(), None);
    r
}

fn info(path: &Path, pid: u32) -> Option<ProcessInfo> {
    list(path).into_iter().find(|p| p.pid == pid)
}

fn attach(path: &Path, pid: u32, from_start: bool) -> Client {
    let c = Client::connect(path);
    c.send(&Request::Attach { pid, from_start });
    c
}

#[test]
fn background_survives_disconnect_and_is_reattached() {
    let sock = start_server("bg", |_| {});
    let mut c = start(
        &sock,
        ExecStreamRequest {
            background: true,
            keep_stdin_open: true,
            ..sh("echo first; read x; echo got $x; echo oops >&2; sleep 0.3; echo end")
        },
    );
    let pid = started(&mut c);
    read_until(&mut c, "first\n");
    drop(c); // the client goes away; the process does not

    std::thread::sleep(Duration::from_millis(300));
    let p = info(&sock, pid).expect("listed");
    assert!(p.running);
    assert_eq!(
        (p.cmd.as_str(), p.exit_code, p.output_bytes),
        ("sh", None, 6)
    );
    assert!(matches!(proc_state(pid), Some(s) if s != 'Z'));

    // Input for it, as a standalone request.
    assert_eq!(
        one_shot(
            &sock,
            Request::Stdin {
                pid: Some(pid),
                data: b"hello\n".to_vec()
            }
        ),
        Response::Ok { bytes: None }
    );

    // Reattach: the earlier output is replayed, then the rest streams live.
    let mut a = attach(&sock, pid, true);
    let r = collect(&mut a);
    assert_eq!(r.stdout, b"first\ngot hello\nend\n");
    assert_eq!(r.stderr, b"oops\n");
    assert_eq!(r.exit().code, 0);
    assert_eq!(r.outputs[0].2, Some(0), "replay starts at offset 0");
    // Offsets are contiguous: nothing was missed.
    let mut pos = 0;
    for (_, data, offset, _) in &r.outputs {
        assert_eq!(*offset, Some(pos));
        pos += data.len() as u64;
    }

    let p = info(&sock, pid).expect("still listed after it finished");
    assert_eq!(
        (p.running, p.exit_code, p.output_bytes),
        (false, Some(0), 25)
    );

    // Attaching after the end: the replay, then Exited at once; or only Exited.
    let r = collect(&mut attach(&sock, pid, true));
    assert_eq!((r.stdout.len(), r.exit().code), (20, 0));
    let r = collect(&mut attach(&sock, pid, false));
    assert_eq!(r.kinds, ["exited"]);

    assert_eq!(
        one_shot(&sock, Request::Forget { pid }),
        Response::Ok { bytes: None }
    );
    assert!(info(&sock, pid).is_none());
    assert!(matches!(
        one_shot(&sock, Request::Forget { pid }),
        Response::Error {
            error_kind: ErrorKind::NotFound,
            ..
        }
    ));
    assert!(matches!(
        collect(&mut attach(&sock, pid, true)).errors[..],
        [(ErrorKind::NotFound, _)]
    ));
}

#[test]
fn background_controls_and_their_errors() {
    let sock = start_server("bgctl", |_| {});
    let mut c = start(
        &sock,
        ExecStreamRequest {
            background: true,
            ..sh("trap 'echo term; exit 9' TERM; echo ready; while :; do sleep 0.1; done")
        },
    );
    let pid = started(&mut c);
    read_until(&mut c, "ready");
    drop(c);

    // Stdin was not kept open.
    let r = one_shot(
        &sock,
        Request::Stdin {
            pid: Some(pid),
            data: b"x".to_vec(),
        },
    );
    assert!(
        matches!(&r, Response::Error { error_kind: ErrorKind::Invalid, message } if message.contains("closed")),
        "{r:?}"
    );
    // A running process cannot be forgotten.
    assert!(matches!(
        one_shot(&sock, Request::Forget { pid }),
        Response::Error {
            error_kind: ErrorKind::Invalid,
            ..
        }
    ));
    // Unknown pid, missing pid.
    assert!(matches!(
        one_shot(
            &sock,
            Request::Signal {
                pid: Some(1),
                signal: 15
            }
        ),
        Response::Error {
            error_kind: ErrorKind::NotFound,
            ..
        }
    ));
    assert!(matches!(
        one_shot(
            &sock,
            Request::Signal {
                pid: None,
                signal: 15
            }
        ),
        Response::Error {
            error_kind: ErrorKind::Invalid,
            ..
        }
    ));
    assert!(matches!(
        one_shot(
            &sock,
            Request::Resize {
                pid: Some(pid),
                rows: 2,
                cols: 2
            }
        ),
        Response::Error {
            error_kind: ErrorKind::Invalid,
            ..
        }
    ));

    // A foreground timeout elsewhere does not touch it.
    let r = run(ExecStreamRequest {
        timeout_ms: Some(200),
        ..sh("sleep 30")
    });
    assert!(r.exit().timed_out);
    assert!(info(&sock, pid).unwrap().running);

    let mut a = attach(&sock, pid, false);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        one_shot(
            &sock,
            Request::Signal {
                pid: Some(pid),
                signal: libc::SIGTERM
            }
        ),
        Response::Ok { bytes: None }
    );
    let r = collect(&mut a);
    assert_eq!((r.stdout.as_slice(), r.exit().code), (&b"term\n"[..], 9));
    // Too late for signals now.
    assert!(matches!(
        one_shot(
            &sock,
            Request::Signal {
                pid: Some(pid),
                signal: 15
            }
        ),
        Response::Error {
            error_kind: ErrorKind::Invalid,
            ..
        }
    ));
}

#[test]
fn background_timeout_applies_only_when_given() {
    let sock = start_server("bgtimeout", |_| {});
    let mut c = start(
        &sock,
        ExecStreamRequest {
            background: true,
            timeout_ms: Some(300),
            ..sh("sleep 30")
        },
    );
    let pid = started(&mut c);
    let r = collect(&mut c); // stays attached until the end
    assert!(r.exit().timed_out);
    let p = info(&sock, pid).unwrap();
    assert_eq!(
        (p.running, p.exit_code, p.signal, p.timed_out),
        (false, Some(137), Some(9), true)
    );
}

#[test]
fn ring_buffer_keeps_the_last_mebibyte_and_counts_the_rest() {
    let sock = start_server("ring", |_| {});
    let mut c = start(
        &sock,
        ExecStreamRequest {
            background: true,
            ..sh("seq 1 400000")
        },
    );
    let pid = started(&mut c);
    drop(c);
    wait_for("seq to finish", Duration::from_secs(20), || {
        info(&sock, pid).is_some_and(|p| !p.running)
    });
    let expected: Vec<u8> = (1..=400000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let p = info(&sock, pid).unwrap();
    assert_eq!(p.output_bytes, expected.len() as u64);

    let r = collect(&mut attach(&sock, pid, true));
    assert_eq!(r.stdout.len(), RING_BUFFER_BYTES);
    assert_eq!(r.stdout, expected[expected.len() - RING_BUFFER_BYTES..]);
    // The first offset says how much was dropped.
    assert_eq!(
        r.outputs[0].2,
        Some((expected.len() - RING_BUFFER_BYTES) as u64)
    );
}

#[test]
fn finished_background_processes_are_capped_at_64() {
    let sock = start_server("cap", |_| {});
    let mut pids = Vec::new();
    for i in 0..70 {
        let mut c = start(
            &sock,
            ExecStreamRequest {
                background: true,
                ..sh(&format!("exit {}", i % 5))
            },
        );
        pids.push(started(&mut c));
        collect(&mut c); // wait for it to finish, so the order of finishing is known
    }
    wait_for("the last one to be filed", Duration::from_secs(2), || {
        list(&sock).len() == 64
    });
    let listed: Vec<u32> = list(&sock).iter().map(|p| p.pid).collect();
    assert_eq!(listed, pids[6..], "the 6 oldest are dropped");
    let p = info(&sock, pids[69]).unwrap();
    assert_eq!(p.exit_code, Some(69 % 5));
}

// ---- pty -----------------------------------------------------------------------------

fn pty(req: ExecStreamRequest) -> ExecStreamRequest {
    ExecStreamRequest {
        pty: Some(PtySize { rows: 24, cols: 80 }),
        ..req
    }
}

#[test]
fn pty_is_the_controlling_terminal() {
    let r = run(pty(sh("tty; echo err >&2; test -t 0 && echo stdin-is-tty")));
    assert!(r.stdout.is_empty() && r.stderr.is_empty());
    let out = String::from_utf8(r.pty.clone()).unwrap();
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    assert!(out.ends_with("err\r\nstdin-is-tty\r\n"), "{out:?}");
    assert!(r.outputs.iter().all(|o| o.0 == OutputStream::Pty));
    assert_eq!(r.exit().code, 0);
    // /dev/tty only opens for a process with a controlling terminal.
    let r = run(pty(sh("echo via-dev-tty > /dev/tty")));
    assert_eq!(
        (r.pty.as_slice(), r.exit().code),
        (&b"via-dev-tty\r\n"[..], 0)
    );
}

#[test]
fn pty_resize_shows_in_stty_size() {
    let mut c = start(
        socket(),
        pty(ExecStreamRequest {
            keep_stdin_open: true,
            ..sh("stty size; read x; stty size")
        }),
    );
    started(&mut c);
    read_until(&mut c, "24 80\r\n");
    c.send(&Request::Resize {
        pid: None,
        rows: 50,
        cols: 132,
    });
    c.send(&Request::Stdin {
        pid: None,
        data: b"\n".to_vec(),
    });
    let r = collect(&mut c);
    assert!(
        String::from_utf8_lossy(&r.pty).ends_with("50 132\r\n"),
        "{:?}",
        String::from_utf8_lossy(&r.pty)
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.exit().code, 0);
}

#[test]
fn pty_output_is_complete_at_exit() {
    // Much more than the pty buffers hold, printed right before exiting.
    let r = run(pty(sh(
        "head -c 300000 /dev/zero | tr '\\0' a; echo; echo END",
    )));
    assert_eq!(r.exit().code, 0);
    let out = r.pty;
    assert!(
        out.ends_with(b"\r\nEND\r\n"),
        "{:?}",
        String::from_utf8_lossy(&out[out.len().saturating_sub(20)..])
    );
    assert_eq!(out.iter().filter(|&&b| b == b'a').count(), 300000);
    let r = run(pty(sh("seq 1 20000")));
    let text = String::from_utf8(r.pty).unwrap();
    assert_eq!(text.lines().count(), 20000);
    assert!(text.ends_with("19999\r\n20000\r\n"));
}

#[test]
fn pty_close_stdin_sends_eof_and_signals_reach_the_foreground_job() {
    let mut c = start(
        socket(),
        pty(ExecStreamRequest {
            cmd: "cat".into(),
            keep_stdin_open: true,
            ..Default::default()
        }),
    );
    started(&mut c);
    c.send(&Request::Stdin {
        pid: None,
        data: b"abc\n".to_vec(),
    });
    // The terminal echoes the input, then cat prints it.
    read_until(&mut c, "abc\r\nabc\r\n");
    c.send(&Request::CloseStdin { pid: None });
    let r = collect(&mut c);
    assert_eq!(r.exit().code, 0);

    let mut c = start(
        socket(),
        pty(sh(
            "trap 'echo INT; exit 3' INT; echo ready; while :; do sleep 0.1; done",
        )),
    );
    started(&mut c);
    read_until(&mut c, "ready");
    c.send(&Request::Signal {
        pid: None,
        signal: libc::SIGINT,
    });
    let r = collect(&mut c);
    assert_eq!(r.exit().code, 3);
    assert!(String::from_utf8_lossy(&r.pty).contains("INT"));
}

#[test]
fn pty_in_the_background() {
    let sock = start_server("bgpty", |_| {});
    let mut c = start(
        &sock,
        pty(ExecStreamRequest {
            background: true,
            keep_stdin_open: true,
            ..sh("stty size; read x; stty size; echo bye $x")
        }),
    );
    let pid = started(&mut c);
    read_until(&mut c, "24 80");
    drop(c);
    assert!(info(&sock, pid).unwrap().pty);
    let resize = Request::Resize {
        pid: Some(pid),
        rows: 10,
        cols: 20,
    };
    assert_eq!(one_shot(&sock, resize), Response::Ok { bytes: None });
    let stdin = Request::Stdin {
        pid: Some(pid),
        data: b"now\n".to_vec(),
    };
    assert_eq!(one_shot(&sock, stdin), Response::Ok { bytes: None });
    let r = collect(&mut attach(&sock, pid, true));
    let out = String::from_utf8_lossy(&r.pty);
    assert!(out.starts_with("24 80\r\n"), "{out:?}");
    assert!(out.ends_with("10 20\r\nbye now\r\n"), "{out:?}");
}

#[test]
fn data_frames_alone_are_refused() {
    assert!(matches!(
        call(&Request::End),
        Response::Error {
            error_kind: ErrorKind::Invalid,
            ..
        }
    ));
}
