//! Test hosts for end-to-end tests: each test runs its own `shoal up` inside a network
//! namespace the test made (DESIGN.md: no packet ever leaves test namespaces or loopback), with
//! its own data directory and a shared image cache. Everything is torn down in `Drop`, also when
//! the test fails.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const API_KEY: &str = "shoal_e2e_test_key";
pub const PORT: u16 = 7070;

pub fn shoal_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shoal"))
}

/// `<cargo target dir>/test-images`: built once, shared by all tests (read-only lower layers).
pub fn images_dir() -> PathBuf {
    let bin = shoal_bin();
    bin.parent().and_then(Path::parent).expect("target dir").join("test-images")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Builds an image into the shared cache once (a file lock keeps parallel tests from racing).
pub fn ensure_image(reference: &str) {
    let dir = images_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join(".test-lock")).unwrap();
    // SAFETY: valid fd; blocks until the other test finished building.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let (name, tag) = reference.split_once(':').unwrap();
    if !dir.join(name).join(tag).join("image.json").exists() {
        eprintln!("building test image {reference} into {}", dir.display());
        let out = run(Command::new(shoal_bin()).args(["image", "build", reference, "--data-dir", "/nonexistent", "--images-dir"]).arg(&dir));
        assert!(out.status.success(), "building {reference} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Host {
    pub ns: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub log: PathBuf,
    listen: String,
}

impl Host {
    pub fn start() -> Host {
        Self::start_listening("127.0.0.1")
    }

    /// `listen_ip` lets a test expose the API on a test-host address to prove sandboxes cannot
    /// reach it.
    pub fn start_listening(listen_ip: &str) -> Host {
        ensure_image("busybox:1");
        let ns = format!("shoalt-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let out = run(Command::new("ip").args(["netns", "add", &ns]));
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        run(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]));
        let dir = tempfile::Builder::new().prefix("shoal-e2e-").tempdir().unwrap();
        let log = dir.path().join("up.log");
        let mut host = Host { ns, dir, child: None, log, listen: format!("{listen_ip}:{PORT}") };
        host.boot();
        host
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts `shoal up` in the namespace and waits until the API answers.
    pub fn boot(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        // nsenter enters only the network namespace (`ip netns exec` would also give shoal a
        // private mount namespace, hiding its overlay mounts and cgroups from everyone else).
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(shoal_bin())
            .args(["up", "--listen", &self.listen, "--no-client-config", "--data-dir"])
            .arg(self.data_dir())
            .arg("--images-dir")
            .arg(images_dir())
            .env("SHOAL_API_KEY", API_KEY)
            .env("SHOAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn shoal up");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = self.try_http("GET", "/v1/health", None) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("shoal up exited ({status}):\n{}", self.log_text());
            }
            assert!(start.elapsed() < Duration::from_secs(60), "shoal up did not answer within 60 s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops `shoal up` the way Ctrl-C does.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our child's pid (`ip netns exec` execs shoal in place).
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let start = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Runs the CLI against this host (inside its namespace), as a user would.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, None)
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(shoal_bin())
            .args(args)
            .env("SHOAL_URL", format!("http://{}", self.listen))
            .env("SHOAL_API_KEY", API_KEY)
            .env("SHOAL_CONFIG", self.dir.path().join("no-config.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn shoal CLI");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            pipe.write_all(s.as_bytes()).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// The CLI must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "shoal {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("CLI --json output")
    }

    /// Runs a shell script in a sandbox; returns (exit code, stdout, stderr).
    pub fn sh(&self, sandbox: &str, script: &str) -> (i32, String, String) {
        let r = self.json(&["exec", sandbox, "--timeout", "30", "--", "sh", "-c", script]);
        (r["exit_code"].as_i64().unwrap() as i32, r["stdout"].as_str().unwrap().to_string(), r["stderr"].as_str().unwrap().to_string())
    }

    /// The script must exit 0; returns stdout.
    pub fn sh_ok(&self, sandbox: &str, script: &str) -> String {
        let (code, out, err) = self.sh(sandbox, script);
        assert_eq!(code, 0, "in {sandbox}: `{script}` exited {code}\nstdout: {out}\nstderr: {err}");
        out
    }

    /// Creates a sandbox through the CLI and returns its JSON.
    pub fn sandbox(&self, name: &str, rootfs: &str, nets: &[&str]) -> Value {
        let mut args = vec!["sandbox", "create", "--name", name, "--rootfs", rootfs, "--shape", "s-1vcpu-256mb"];
        for n in nets {
            args.extend(["--net", n]);
        }
        self.json(&args)
    }

    /// Address of a sandbox on a network, from the network's member list.
    pub fn member_ip(&self, network: &str, sandbox: &str) -> String {
        let n = self.json(&["network", "get", network]);
        let m = n["members"].as_array().unwrap().iter().find(|m| m["sandbox_name"] == sandbox);
        m.unwrap_or_else(|| panic!("{sandbox} is not a member of {network}: {n}"))["ip"].as_str().unwrap().to_string()
    }

    /// Raw HTTP/1.1 to the API from a thread that entered the host's namespace.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.try_http(method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn http_with_key(&self, key: Option<&str>, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        http_in_ns(&self.ns, &self.listen, key, "", method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// With extra header lines, each ending in `\r\n`.
    pub fn http_with_headers(&self, headers: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        http_in_ns(&self.ns, &self.listen, Some(API_KEY), headers, method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn try_http(&self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, Value)> {
        http_in_ns(&self.ns, &self.listen, Some(API_KEY), "", method, path, body)
    }

    /// Runs a command in the host's namespace (e.g. `ip link`, `nft list`).
    pub fn host_cmd(&self, args: &[&str]) -> String {
        let out = run(Command::new("ip").args(["netns", "exec", &self.ns]).args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Host links whose names start with one of Shoal's prefixes.
    pub fn shoal_links(&self) -> Vec<String> {
        self.host_cmd(&["ip", "-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .filter(|n| n.starts_with("shv") || n.starts_with("shb-"))
            .collect()
    }
}

fn http_in_ns(ns: &str, addr: &str, key: Option<&str>, headers: &str, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, Value)> {
    let (ns, addr, key, headers, method, path, body) =
        (ns.to_string(), addr.to_string(), key.map(str::to_string), headers.to_string(), method.to_string(), path.to_string(), body.map(str::to_string));
    std::thread::spawn(move || -> std::io::Result<(u16, Value)> {
        let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
        // SAFETY: setns on this thread only (CLONE_NEWNET is per-thread).
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut s = std::net::TcpStream::connect(&addr)?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let body = body.unwrap_or_default();
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: shoal\r\n{auth}{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp);
        let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let json = if payload.trim().is_empty() { Value::Null } else { serde_json::from_str(payload).unwrap_or(Value::String(payload.to_string())) };
        Ok((status, json))
    })
    .join()
    .expect("http thread")
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- shoal up log ({}) ----\n{}", self.ns, self.log_text());
        }
        self.stop();
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(shoal_bin())
            .args(["node", "purge", "--yes", "--data-dir"])
            .arg(self.data_dir())
            .arg("--images-dir")
            .arg(images_dir())
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                eprintln!("purge of {} failed: {}", self.ns, String::from_utf8_lossy(&o.stderr));
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Polls `f` until it returns true (instead of sleeping a fixed time).
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
