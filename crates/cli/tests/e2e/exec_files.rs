//! Exec, processes and files as an agent or a person drives them (issue 4): streamed output,
//! stdin, background processes, PTY, large and binary data, and clear errors.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{ensure_image, shoal_bin, Host, API_KEY};

fn cli(h: &Host, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &h.ns]).arg(shoal_bin()).args(args);
    c.env("SHOAL_URL", "http://127.0.0.1:7070").env("SHOAL_API_KEY", API_KEY).env("SHOAL_CONFIG", "/nonexistent");
    c
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn streamed_exec_output_stdin_and_signals() {
    ensure_image("devbox:1");
    let h = Host::start();
    h.sandbox("a", "devbox:1", &[]);

    // A heredoc through a shell, and a command that leaves a long-lived child behind.
    let script = "cat <<'EOF' > /root/f\nline one\n$NOT_EXPANDED\nEOF\ncat /root/f";
    assert_eq!(h.sh_ok("a", script), "line one\n$NOT_EXPANDED\n");
    let t = Instant::now();
    h.sh_ok("a", "sleep 300 & echo started");
    assert!(t.elapsed() < Duration::from_secs(5), "a leftover child must not hold up the exec");

    // Output arrives as it is produced, not at the end.
    let mut child = cli(&h, &["exec", "a", "--", "sh", "-c", "echo first; sleep 2; echo second"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"first\n");
    assert!(start.elapsed() < Duration::from_millis(1500), "first line took {:?}", start.elapsed());
    assert!(child.wait().unwrap().success());

    // 10 MB of output, and binary output, intact through the stream.
    let out = cli(&h, &["exec", "a", "--", "sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' x"]).output().unwrap();
    assert_eq!(out.stdout.len(), 10_000_000);
    assert!(out.stdout.iter().all(|b| *b == b'x'));
    let out = cli(&h, &["exec", "a", "--", "sh", "-c", "head -c 300000 /dev/urandom > /root/bin; cat /root/bin"]).output().unwrap();
    let inside = h.sh_ok("a", "sha256sum /root/bin | cut -d' ' -f1");
    assert_eq!(sha256_hex(&out.stdout), inside.trim(), "binary output changed on the way");

    // stdin that stays open: written 30 s later, then closed.
    let mut child = cli(&h, &["exec", "-i", "a", "--", "sh", "-c", "read line; echo got:$line"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(30));
    stdin.write_all(b"late\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:late\n");

    // A timeout kills the whole process group and says so.
    let t = Instant::now();
    let out = cli(&h, &["exec", "--timeout", "2", "a", "--", "sh", "-c", "sleep 100 & sleep 100"]).output().unwrap();
    assert_eq!(out.status.code(), Some(137));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timeout"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(h.sh_ok("a", "ps -eo args= | grep -cx 'sleep 100' || true").trim(), "0", "the timed-out group is gone");

    // SIGINT through the API ends a foreground command (130 = 128 + SIGINT).
    let mut child = cli(&h, &["exec", "-d", "a", "--", "sh", "-c", "trap 'exit 130' INT; while true; do sleep 0.1; done"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut pid = String::new();
    child.stdout.take().unwrap().read_to_string(&mut pid).unwrap();
    let pid = pid.trim().to_string();
    assert!(child.wait().unwrap().success());
    let (st, r) = h.http("POST", &format!("/v1/sandboxes/a/processes/{pid}/signal"), Some(r#"{"signal":"SIGINT"}"#));
    assert_eq!(st, 204, "{r}");
    crate::harness::eventually("the process to exit", Duration::from_secs(5), || {
        let ps = h.json(&["ps", "a"]);
        ps.as_array().unwrap().iter().any(|p| p["pid"].to_string() == pid && p["running"] == false && p["exit_code"] == 130)
    });

    // Bad input: unknown pid, bad signal, missing stdin payload.
    let (st, r) = h.http("POST", "/v1/sandboxes/a/processes/999999/stdin", Some(r#"{"data":"x"}"#));
    assert_eq!(st, 404, "{r}");
    let (st, r) = h.http("POST", &format!("/v1/sandboxes/a/processes/{pid}/signal"), Some(r#"{"signal":"SIGNOPE"}"#));
    assert_eq!(st, 422, "{r}");
    let (st, r) = h.http("POST", &format!("/v1/sandboxes/a/processes/{pid}/stdin"), Some(r#"{}"#));
    assert_eq!(st, 422, "{r}");
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn background_processes_survive_the_client_and_can_be_reattached() {
    ensure_image("devbox:1");
    let h = Host::start();
    h.sandbox("a", "devbox:1", &[]);
    // A server that logs each request; started in the background with a short foreground
    // timeout on the call that follows — which must not touch it.
    let out = cli(&h, &["exec", "-d", "a", "--", "sh", "-c", "cd /tmp && python3 -u -m http.server 8080 2>&1"]).output().unwrap();
    let pid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    crate::harness::eventually("the server", Duration::from_secs(10), || h.sh("a", "curl -s -o /dev/null http://127.0.0.1:8080/").0 == 0);
    h.sh_ok("a", "curl -s -o /dev/null http://127.0.0.1:8080/hello-from-test");
    let _ = cli(&h, &["exec", "--timeout", "1", "a", "--", "sleep", "10"]).output().unwrap();
    // A new client, later: the earlier log lines are replayed.
    let mut child = cli(&h, &["attach", "--from-start", "a", &pid]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Serving HTTP on") && text.contains("hello-from-test"), "replayed log: {text}");
    let ps = h.json(&["ps", "a"]);
    let p = ps.as_array().unwrap().iter().find(|p| p["pid"].to_string() == pid).unwrap().clone();
    assert_eq!(p["running"], true, "still running after the client left and a foreground timeout fired: {p}");
    // Kill it; it leaves the table.
    h.ok(&["kill", "a", &pid]);
    let ps = h.json(&["ps", "a"]);
    assert!(!ps.as_array().unwrap().iter().any(|p| p["pid"].to_string() == pid && p["running"] == true), "{ps}");
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn pty_output_is_complete() {
    let h = Host::start();
    h.sandbox("a", "busybox:1", &[]);
    let out = cli(&h, &["exec", "-t", "a", "--", "sh", "-c", "tty; seq 1 3000"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.starts_with("/dev/pts/"), "{}", &text[..text.len().min(80)]);
    let numbers: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(numbers.len(), 3000, "every line of output arrived");
    assert_eq!(numbers.last(), Some(&"3000"));
    // Exit status comes through a pty too.
    let out = cli(&h, &["exec", "-t", "a", "--", "sh", "-c", "exit 7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
}

#[test]
#[ignore = "needs root, runc and nftables: run scripts/test.sh"]
fn files_round_trip_and_errors() {
    let h = Host::start();
    h.sandbox("a", "busybox:1", &[]);
    let dir = tempfile::tempdir().unwrap();
    // 100 MB through `shoal cp`, both ways, with checksums on both sides.
    let src = dir.path().join("big");
    let mut f = std::fs::File::create(&src).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..100u32 {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = (j as u32).wrapping_mul(31).wrapping_add(i) as u8;
        }
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let local_sum = String::from_utf8(Command::new("sha256sum").arg(&src).output().unwrap().stdout).unwrap().split_whitespace().next().unwrap().to_string();
    let out = cli(&h, &["cp", src.to_str().unwrap(), "a:/root/big"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(h.sh_ok("a", "sha256sum /root/big | cut -d' ' -f1").trim(), local_sum);
    let back = dir.path().join("back");
    let out = cli(&h, &["cp", "a:/root/big", back.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back_sum = String::from_utf8(Command::new("sha256sum").arg(&back).output().unwrap().stdout).unwrap().split_whitespace().next().unwrap().to_string();
    assert_eq!(back_sum, local_sum);

    // list, stat, mkdir -p, rename, remove; a directory as tar, both ways.
    h.ok(&["files", "mkdir", "-p", "a", "/srv/x/y"]);
    h.sh_ok("a", "echo hi > /srv/x/y/f && ln -s f /srv/x/y/link");
    let ls = h.json(&["files", "ls", "a", "/srv/x/y"]);
    let names: Vec<&str> = ls.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["f", "link"]);
    assert_eq!(h.json(&["files", "stat", "a", "/srv/x/y/link"])["kind"], "symlink");
    h.ok(&["files", "mv", "a", "/srv/x/y/f", "/srv/x/y/g"]);
    assert_eq!(h.ok(&["files", "cat", "a", "/srv/x/y/g"]), "hi\n");
    let out_dir = dir.path().join("tree");
    let out = cli(&h, &["cp", "-r", "a:/srv/x", out_dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(out_dir.join("y/g")).unwrap(), "hi\n");
    assert_eq!(std::fs::read_link(out_dir.join("y/link")).unwrap().to_str(), Some("f"));
    let out = cli(&h, &["cp", "-r", out_dir.to_str().unwrap(), "a:/srv/copy"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(h.sh_ok("a", "cat /srv/copy/y/g"), "hi\n");
    h.ok(&["files", "rm", "-r", "a", "/srv/x"]);
    assert_ne!(h.sh("a", "test -e /srv/x").0, 0);

    // Clear errors: missing path, read-only filesystem, relative path, non-empty dir.
    let (st, r) = h.http("GET", "/v1/sandboxes/a/files/stat?path=/no/such", None);
    assert_eq!((st, r["error"]["code"].as_str()), (404, Some("not_found")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("/no/such"), "{r}");
    let (st, r) = h.http("PUT", "/v1/sandboxes/a/files/content?path=/sys/kernel/shoal-test", Some("x"));
    assert_eq!((st, r["error"]["code"].as_str()), (403, Some("permission_denied")), "writing to read-only /sys: {r}");
    let (st, r) = h.http("GET", "/v1/sandboxes/a/files?path=relative", None);
    assert_eq!(st, 422, "{r}");
    let (st, r) = h.http("DELETE", "/v1/sandboxes/a/files?path=/srv/copy", None);
    assert_eq!(st, 422, "a non-empty directory needs recursive: {r}");
    // Files on a stopped sandbox: 409, not a hang.
    h.ok(&["sandbox", "stop", "a"]);
    let (st, r) = h.http("GET", "/v1/sandboxes/a/files?path=/", None);
    assert_eq!(st, 409, "{r}");
}
