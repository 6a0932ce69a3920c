//! End-to-end tests of the agent logic over a real unix socket, without being PID 1:
//! one server per test process on a temp socket, real requests, real commands.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use shoal_agent_proto::{
    read_frame, write_frame, ExecRequest, ExecResult, Request, Response, PROTOCOL_VERSION,
};

use crate::{exec, server};

pub(crate) fn socket() -> &'static PathBuf {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("shoal-agent-test-{}.sock", std::process::id()));
        let listener = server::bind(&path).expect("bind test socket");
        let agent = Arc::new(server::Agent::new(exec::base_env()));
        std::thread::spawn(move || server::serve(listener, agent));
        path
    })
}

pub(crate) fn call(req: &Request) -> Response {
    let stream = UnixStream::connect(socket()).unwrap();
    write_frame(&mut &stream, req).unwrap();
    read_frame(&mut BufReader::new(&stream))
        .unwrap()
        .expect("a response")
}

fn call_raw(bytes: &[u8]) -> Response {
    let stream = UnixStream::connect(socket()).unwrap();
    (&stream).write_all(bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    read_frame(&mut BufReader::new(&stream))
        .unwrap()
        .expect("a response")
}

fn exec(req: ExecRequest) -> ExecResult {
    match call(&Request::Exec(req)) {
        Response::Exec(r) => r,
        other => panic!("expected an exec result, got {other:?}"),
    }
}

pub(crate) fn sh(script: &str) -> ExecRequest {
    ExecRequest {
        cmd: "sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

fn error_message(resp: Response) -> String {
    match resp {
        Response::Error { message, .. } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A server of its own (own process table), configured by `configure`.
pub(crate) fn start_server(name: &str, configure: impl FnOnce(&mut server::Agent)) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "shoal-agent-test-{name}-{}.sock",
        std::process::id()
    ));
    let listener = server::bind(&path).expect("bind test socket");
    let mut agent = server::Agent::new(exec::base_env());
    configure(&mut agent);
    let agent = Arc::new(agent);
    std::thread::spawn(move || server::serve(listener, agent));
    path
}

/// A connection for streams: send frames, receive frames.
pub(crate) struct Client {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &std::path::Path) -> Client {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub fn send(&self, req: &Request) {
        write_frame(&mut &self.stream, req).unwrap();
    }

    /// The next frame; `None` once the agent closed the connection.
    pub fn recv(&mut self) -> Option<Response> {
        read_frame(&mut self.reader).unwrap()
    }

    /// The next frame that is not a heartbeat.
    pub fn recv_data(&mut self) -> Option<Response> {
        loop {
            match self.recv() {
                Some(Response::Heartbeat) => continue,
                other => return other,
            }
        }
    }
}

#[test]
fn ping_answers_pong_with_version() {
    assert_eq!(
        call(&Request::Ping),
        Response::Pong {
            version: PROTOCOL_VERSION,
            agent: format!("shoal-agent {}", env!("CARGO_PKG_VERSION")),
            features: shoal_agent_proto::FEATURES
                .iter()
                .map(|f| f.to_string())
                .collect(),
        }
    );
}

#[test]
fn socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(socket()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn captures_stdout_stderr_and_exit_code() {
    let r = exec(sh("echo out; echo err >&2; exit 3"));
    assert_eq!(r.stdout, b"out\n");
    assert_eq!(r.stderr, b"err\n");
    assert_eq!(r.exit_code, 3);
    assert_eq!(r.signal, None);
    assert!(!r.timed_out && !r.truncated);
}

#[test]
fn echo_with_args() {
    let r = exec(ExecRequest {
        cmd: "echo".into(),
        args: vec!["hello".into(), "world".into()],
        ..Default::default()
    });
    assert_eq!(
        (r.exit_code, r.stdout.as_slice()),
        (0, &b"hello world\n"[..])
    );
}

#[test]
fn stdin_round_trips_binary_bytes() {
    let data = vec![0xff, 0x00, b'a', 0x00, 0xff, b'\n', 0x80];
    let r = exec(ExecRequest {
        cmd: "cat".into(),
        stdin: Some(data.clone()),
        ..Default::default()
    });
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.stdout, data);
}

#[test]
fn no_stdin_means_dev_null() {
    // Would hang without a timeout if stdin were left open.
    let r = exec(ExecRequest {
        cmd: "cat".into(),
        timeout_ms: Some(5000),
        ..Default::default()
    });
    assert_eq!((r.exit_code, r.timed_out, r.stdout.len()), (0, false, 0));
}

#[test]
fn env_and_cwd_apply() {
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let mut req = sh("echo \"$GREETING $TERM\"; pwd");
    req.env = BTreeMap::from([
        ("GREETING".into(), "hi there".into()),
        ("TERM".into(), "dumb".into()),
    ]);
    req.cwd = Some(dir.to_str().unwrap().into());
    let r = exec(req);
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        format!("hi there dumb\n{}\n", dir.display())
    );
}

#[test]
fn timeout_kills_the_process_group() {
    let start = Instant::now();
    let r = exec(ExecRequest {
        cmd: "sleep".into(),
        args: vec!["30".into()],
        timeout_ms: Some(300),
        ..Default::default()
    });
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert!(r.timed_out);
    assert_eq!(
        (r.exit_code, r.signal),
        (128 + libc::SIGKILL, Some(libc::SIGKILL))
    );
    assert!(r.duration_ms >= 300, "duration {}", r.duration_ms);
}

#[test]
fn timeout_also_kills_grandchildren_holding_stdout() {
    // The grandchild keeps stdout open; killing only `sh` would leave us draining.
    let start = Instant::now();
    let r = exec(ExecRequest {
        timeout_ms: Some(200),
        ..sh("sleep 30 & sleep 30; echo never")
    });
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert!(r.timed_out);
    assert!(r.stdout.is_empty());
}

#[test]
fn background_child_holding_stdout_does_not_block() {
    let start = Instant::now();
    let r = exec(sh("echo started; sleep 30 & echo $! >&2"));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!((r.exit_code, r.stdout.as_slice()), (0, &b"started\n"[..]));
    // Clean up the background sleep (it is in the command's process group).
    let pid: i32 = String::from_utf8(r.stderr).unwrap().trim().parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn background_server_with_redirected_output_returns_at_once() {
    let start = Instant::now();
    let r = exec(sh("sleep 30 >/dev/null 2>&1 & echo $!"));
    // Output pipes reach EOF as soon as sh exits: no drain wait at all.
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "took {:?}",
        start.elapsed()
    );
    let pid: i32 = String::from_utf8(r.stdout).unwrap().trim().parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn missing_command_exits_127() {
    let r = exec(ExecRequest {
        cmd: "no-such-command-shoal".into(),
        ..Default::default()
    });
    assert_eq!(r.exit_code, 127);
    assert_eq!(
        String::from_utf8(r.stderr).unwrap(),
        "shoal-agent: command not found: no-such-command-shoal\n"
    );
    let r = exec(ExecRequest {
        cmd: "/no/such/binary".into(),
        ..Default::default()
    });
    assert_eq!(r.exit_code, 127);
    assert!(String::from_utf8(r.stderr)
        .unwrap()
        .contains("/no/such/binary"));
}

#[test]
fn non_executable_file_exits_126() {
    let path = std::env::temp_dir().join(format!("shoal-agent-noexec-{}", std::process::id()));
    std::fs::write(&path, "echo hi\n").unwrap();
    let r = exec(ExecRequest {
        cmd: path.to_str().unwrap().into(),
        ..Default::default()
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.exit_code, 126, "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn missing_cwd_is_an_error() {
    let resp = call(&Request::Exec(ExecRequest {
        cmd: "true".into(),
        cwd: Some("/no/such/dir".into()),
        ..Default::default()
    }));
    assert_eq!(error_message(resp), "cwd /no/such/dir does not exist");
}

#[test]
fn killed_by_signal_reports_128_plus_signal() {
    let r = exec(sh("kill -TERM $$"));
    assert_eq!(
        (r.exit_code, r.signal, r.timed_out),
        (128 + libc::SIGTERM, Some(libc::SIGTERM), false)
    );
}

#[test]
fn one_megabyte_round_trips_intact() {
    let data: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let r = exec(ExecRequest {
        cmd: "cat".into(),
        stdin: Some(data.clone()),
        ..Default::default()
    });
    assert_eq!(r.exit_code, 0);
    assert!(
        r.stdout == data,
        "1 MiB via cat came back altered ({} bytes)",
        r.stdout.len()
    );
    let r = exec(sh(
        "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2",
    ));
    assert_eq!(
        (r.stdout.len(), r.stderr.len(), r.truncated),
        (1 << 20, 1 << 20, false)
    );
    assert!(r.stdout.iter().chain(&r.stderr).all(|&b| b == 0));
}

#[test]
fn stdin_ignored_by_command_does_not_hang() {
    // 1 MiB is far more than a pipe buffer; `true` never reads it.
    let r = exec(ExecRequest {
        cmd: "true".into(),
        stdin: Some(vec![7; 1 << 20]),
        ..Default::default()
    });
    assert_eq!(r.exit_code, 0);
}

#[test]
fn malformed_requests_get_error_responses() {
    assert!(error_message(call_raw(b"this is not json\n")).starts_with("malformed request:"));
    assert!(error_message(call_raw(b"{\"op\":\"reboot\"}\n")).contains("unknown variant"));
    assert!(error_message(call_raw(b"{\"op\":\"exec\"}\n")).contains("missing field `cmd`"));
    assert!(error_message(call_raw(b"\xff\xfe\n")).starts_with("malformed request:"));
    let nul = Request::Exec(ExecRequest {
        cmd: "echo".into(),
        args: vec!["a\0b".into()],
        ..Default::default()
    });
    assert!(error_message(call(&nul)).contains("NUL"));
}

#[test]
fn slow_command_does_not_block_other_connections() {
    let slow = std::thread::spawn(|| exec(sh("sleep 1; echo slow")));
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    assert!(matches!(call(&Request::Ping), Response::Pong { .. }));
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(slow.join().unwrap().stdout, b"slow\n");
}

#[test]
fn many_concurrent_execs_each_get_their_own_status() {
    let threads: Vec<_> = (0..32)
        .map(|i| std::thread::spawn(move || (i, exec(sh(&format!("echo {i}; exit {}", i % 7))))))
        .collect();
    for t in threads {
        let (i, r) = t.join().unwrap();
        assert_eq!(r.exit_code, i % 7);
        assert_eq!(r.stdout, format!("{i}\n").into_bytes());
    }
}
