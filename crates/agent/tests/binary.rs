//! Tests of the real `shoal-agent` binary (not as PID 1: it makes itself a child subreaper,
//! so orphan reaping can still be observed): start-up line, orphan reaping, SIGTERM shutdown,
//! fatal start-up errors.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_agent_proto::{read_frame, write_frame, ExecRequest, ExecResult, Request, Response};

const BIN: &str = env!("CARGO_BIN_EXE_shoal-agent");

struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(name: &str) -> Agent {
        let socket = std::env::temp_dir().join(format!(
            "shoal-agent-bin-{name}-{}.sock",
            std::process::id()
        ));
        let mut child = Command::new(BIN)
            .arg("--socket")
            .arg(&socket)
            .env("SHOAL_AGENT_SOCKET", "/ignored/when/--socket/is/given")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line,
            format!(
                "shoal-agent {}: listening on {}\n",
                env!("CARGO_PKG_VERSION"),
                socket.display()
            )
        );
        Agent { child, socket }
    }

    fn exec(&self, req: ExecRequest) -> ExecResult {
        let stream = UnixStream::connect(&self.socket).unwrap();
        write_frame(&mut &stream, &Request::Exec(req)).unwrap();
        match read_frame(&mut BufReader::new(&stream)).unwrap() {
            Some(Response::Exec(r)) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn sh(script: &str) -> ExecRequest {
    ExecRequest {
        cmd: "sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

/// The process state letter from /proc (None once it is gone).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn orphans_are_reaped() {
    let agent = Agent::start("reap");
    // sh exits at once; its background child is re-parented to the agent and exits later.
    let r = agent.exec(sh("sleep 0.2 >/dev/null 2>&1 & echo $!"));
    let orphan: i32 = String::from_utf8(r.stdout).unwrap().trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Some(state) = proc_state(orphan) {
        assert!(
            Instant::now() < deadline,
            "orphan {orphan} still there in state {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_stops_children_and_exits_zero() {
    let mut agent = Agent::start("term");
    let pidfile = std::env::temp_dir().join(format!("shoal-agent-bin-pid-{}", std::process::id()));
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let socket = agent.socket.clone();
    let running = std::thread::spawn(move || {
        let stream = UnixStream::connect(&socket).unwrap();
        write_frame(&mut &stream, &Request::Exec(sh(&script))).unwrap();
        // Either the agent exits before answering (the connection just closes) or it still
        // reports the command's death by SIGTERM.
        read_frame::<_, Response>(&mut BufReader::new(&stream))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let sleeper: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "command did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::remove_file(&pidfile).unwrap();

    let start = Instant::now();
    let status = agent.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        start.elapsed()
    );
    assert!(!Path::new(&agent.socket).exists(), "socket left behind");
    match running.join().unwrap() {
        Ok(Some(Response::Exec(r))) => assert_eq!(r.signal, Some(libc::SIGTERM)),
        Ok(None) | Err(_) => {}
        Ok(Some(other)) => panic!("unexpected {other:?}"),
    }
    // `sleep` got SIGTERM; it is a child of ours now that the agent is gone, or already reaped.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !matches!(proc_state(sleeper), None | Some('Z')) {
        assert!(
            Instant::now() < deadline,
            "sleep {sleeper} survived the agent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fatal_start_up_errors_exit_1_with_a_message() {
    let out = Command::new(BIN)
        .args(["--socket", "/proc/no/such/dir/agent.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on /proc/no/such/dir/agent.sock"),
        "{err}"
    );

    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
}

#[test]
fn socket_path_comes_from_the_environment_without_flag() {
    let socket =
        std::env::temp_dir().join(format!("shoal-agent-bin-env-{}.sock", std::process::id()));
    let mut child = Command::new(BIN)
        .env("SHOAL_AGENT_SOCKET", &socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.ends_with(&format!("listening on {}\n", socket.display())),
        "{line}"
    );
    // SIGINT works like SIGTERM.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!socket.exists());
}

#[test]
fn agent_env_is_passed_on_but_not_its_socket_setting() {
    let agent = Agent::start("env");
    let r = agent.exec(sh("echo \"${SHOAL_AGENT_SOCKET-unset} $HOME\""));
    assert_eq!(
        r.stdout,
        format!(
            "unset {}\n",
            std::env::var("HOME").unwrap_or("/root".into())
        )
        .into_bytes()
    );
}
