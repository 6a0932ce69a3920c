//! Tests of the real `shoal-agent` binary (not as PID 1: it makes itself a child subreaper,
//! so orphan reaping can still be observed): start-up line, orphan reaping, SIGTERM shutdown,
//! fatal start-up errors.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_agent_proto::{
    read_frame, write_frame, ErrorKind, ExecRequest, ExecResult, Request, Response,
};

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

/// One request and its one answer, after `frames` (e.g. upload data).
fn ask(socket: &Path, req: &Request, frames: &[Request]) -> Response {
    let stream = UnixStream::connect(socket).unwrap();
    write_frame(&mut &stream, req).unwrap();
    for f in frames {
        write_frame(&mut &stream, f).unwrap();
    }
    read_frame(&mut BufReader::new(&stream))
        .unwrap()
        .expect("an answer")
}

fn denied(r: Response, path: &Path) {
    match r {
        Response::Error {
            error_kind: ErrorKind::PermissionDenied,
            message,
        } => {
            assert!(message.contains(path.to_str().unwrap()), "{message}");
            assert!(message.contains("permission denied"), "{message}");
        }
        other => panic!(
            "expected permission_denied for {}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn file_requests_the_filesystem_refuses_are_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let set_mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();

    // As root, the agent runs as nobody (root would be allowed everything); otherwise as us.
    let root = unsafe { libc::geteuid() } == 0;
    let dir = std::env::temp_dir().join(format!("shoal-agent-bin-perm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sock_dir = dir.join("sock");
    std::fs::create_dir_all(&sock_dir).unwrap();
    set_mode(&sock_dir, 0o777);
    let ro = dir.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let secret = ro.join("secret");
    std::fs::write(&secret, b"s3cret").unwrap();
    // Owned by root, 0400: unreadable for nobody. Our own file: 0000.
    set_mode(&secret, if root { 0o400 } else { 0 });
    set_mode(&ro, 0o555); // listable, not writable

    let socket = sock_dir.join("agent.sock");
    let mut cmd = Command::new(BIN);
    cmd.arg("--socket").arg(&socket).stdout(Stdio::piped());
    if root {
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "{line}");

    let s = |p: &Path| p.to_str().unwrap().to_string();
    let uid = match ask(&socket, &Request::Exec(sh("id -u")), &[]) {
        Response::Exec(r) => String::from_utf8(r.stdout).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        uid.trim(),
        if root {
            "65534".to_string()
        } else {
            unsafe { libc::geteuid() }.to_string()
        }
    );

    let new = ro.join("new");
    let upload = [
        Request::Data {
            data: b"x".to_vec(),
        },
        Request::End,
    ];
    let write = Request::WriteFile {
        path: s(&new),
        mode: None,
        append: false,
    };
    denied(ask(&socket, &write, &upload), &new);
    let append = Request::WriteFile {
        path: s(&new),
        mode: None,
        append: true,
    };
    denied(ask(&socket, &append, &upload), &new);
    let read = Request::ReadFile {
        path: s(&secret),
        offset: 0,
        len: None,
    };
    denied(ask(&socket, &read, &[]), &secret);
    denied(
        ask(
            &socket,
            &Request::Mkdir {
                path: s(&ro.join("d")),
                parents: true,
            },
            &[],
        ),
        &ro.join("d"),
    );
    denied(
        ask(
            &socket,
            &Request::Remove {
                path: s(&secret),
                recursive: false,
            },
            &[],
        ),
        &secret,
    );
    let to = ro.join("moved");
    denied(
        ask(
            &socket,
            &Request::Rename {
                from: s(&secret),
                to: s(&to),
            },
            &[],
        ),
        &secret,
    );
    let tar_dest = ro.join("t");
    denied(
        ask(
            &socket,
            &Request::TarUpload { path: s(&tar_dest) },
            &[Request::End],
        ),
        &tar_dest,
    );
    denied(
        ask(&socket, &Request::TarDownload { path: s(&secret) }, &[]),
        &secret,
    );
    assert!(!new.exists() && !to.exists() && secret.exists());

    let _ = child.kill();
    let _ = child.wait();
    set_mode(&ro, 0o755);
    std::fs::remove_dir_all(&dir).unwrap();
}
