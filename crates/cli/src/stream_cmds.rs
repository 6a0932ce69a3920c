//! Interactive and streaming commands: `shoal exec` (streamed, `-i`, `-t`, `-d`), `ps`,
//! `attach`, `kill`, `files …` and `cp`.

use std::io::Write;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Subcommand;
use shoal_sdk::{Client, EventStream, ExecEvent, ExecStreamRequest, PtySize, StdinWrite};

use crate::client_cmds::{parse_env, ExecArgs};
use crate::output::{json, table};

/// Puts the local terminal in raw mode for `-t` and restores it on drop.
struct RawTerminal(Option<libc::termios>);

impl RawTerminal {
    fn enable() -> RawTerminal {
        // SAFETY: termios calls on fd 0 with a properly sized, initialised struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(0) != 1 || libc::tcgetattr(0, &mut t) != 0 {
                return RawTerminal(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawTerminal(Some(saved))
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restoring the attributes read in `enable`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

fn terminal_size() -> PtySize {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            return PtySize { rows: ws.ws_row, cols: ws.ws_col };
        }
    }
    PtySize { rows: 24, cols: 80 }
}

/// Writes output events to stdout/stderr as they come; returns the exit event's code.
async fn follow(mut events: EventStream) -> anyhow::Result<Option<(i32, bool)>> {
    while let Some(ev) = events.next().await? {
        match ev {
            ExecEvent::Stdout { data, .. } | ExecEvent::Pty { data, .. } => {
                let mut out = std::io::stdout().lock();
                out.write_all(&B64.decode(data)?)?;
                out.flush()?;
            }
            ExecEvent::Stderr { data, .. } => {
                let mut err = std::io::stderr().lock();
                err.write_all(&B64.decode(data)?)?;
                err.flush()?;
            }
            ExecEvent::Exit { exit_code, timed_out, .. } => return Ok(Some((exit_code, timed_out))),
            ExecEvent::Error { message, .. } => eprintln!("shoal: {message}"),
            ExecEvent::Started { .. } | ExecEvent::Heartbeat => {}
        }
    }
    Ok(None)
}

pub async fn exec(c: Client, a: ExecArgs) -> anyhow::Result<()> {
    let mut command = a.command.into_iter();
    let cmd = command.next().expect("clap requires a command");
    let pty = a.tty.then(terminal_size);
    let req = ExecStreamRequest {
        cmd,
        args: command.collect(),
        env: parse_env(&a.env)?,
        cwd: a.cwd,
        keep_stdin_open: a.interactive,
        // Interactive shells and background processes run until they end; other commands get
        // the same 60 s default as the plain exec API.
        timeout_ms: match a.timeout {
            Some(0) => None,
            Some(s) => Some(s.saturating_mul(1000)),
            None if a.detach || a.tty || a.interactive => None,
            None => Some(60_000),
        },
        background: a.detach,
        pty,
        ..Default::default()
    };
    let mut events = c.exec_stream(&a.sandbox, &req).await?;
    let pid = match events.next().await? {
        Some(ExecEvent::Started { pid }) => pid,
        Some(ExecEvent::Stderr { data, .. }) => {
            // Not startable (command not found): the agent says why, then exits 126/127.
            std::io::stderr().write_all(&B64.decode(data)?)?;
            let code = follow(events).await?.map(|(c, _)| c).unwrap_or(127);
            std::process::exit(code);
        }
        other => bail!("unexpected first event from the sandbox: {other:?}"),
    };
    if a.detach {
        println!("{pid}");
        return Ok(());
    }
    let raw = if a.tty { Some(RawTerminal::enable()) } else { None };
    let (sandbox, client) = (a.sandbox.clone(), c.clone());
    // Local stdin → the process (only with -i).
    let stdin_task = a.interactive.then(|| {
        let (sandbox, client) = (sandbox.clone(), client.clone());
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = stdin.read(&mut buf).await.unwrap_or(0);
                let w = if n == 0 {
                    StdinWrite { close: true, ..Default::default() }
                } else {
                    StdinWrite { data_base64: Some(B64.encode(&buf[..n])), ..Default::default() }
                };
                if client.write_stdin(&sandbox, pid, &w).await.is_err() || n == 0 {
                    break;
                }
            }
        })
    });
    // Terminal resizes (with -t) and Ctrl-C (without -t: forwarded as SIGINT).
    let control = {
        let (sandbox, client, tty) = (sandbox.clone(), client.clone(), a.tty);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut winch = signal(SignalKind::window_change()).expect("SIGWINCH handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            loop {
                tokio::select! {
                    _ = winch.recv() => if tty {
                        let s = terminal_size();
                        let _ = client.resize(&sandbox, pid, s.rows, s.cols).await;
                    },
                    _ = int.recv() => { let _ = client.signal(&sandbox, pid, "SIGINT").await; },
                }
            }
        })
    };
    let result = follow(events).await;
    control.abort();
    if let Some(t) = stdin_task {
        t.abort();
    }
    drop(raw);
    match result? {
        Some((code, timed_out)) => {
            if timed_out {
                eprintln!("shoal: the command ran past its timeout and was killed (raise --timeout, or 0 for none)");
            }
            std::process::exit(code)
        }
        None => bail!("the stream ended before the command exited"),
    }
}

pub async fn ps(c: Client, sandbox: &str, as_json: bool) -> anyhow::Result<()> {
    let list = c.processes(sandbox).await?;
    if as_json {
        json(&list);
        return Ok(());
    }
    let rows = list
        .into_iter()
        .map(|p| {
            let state = if p.running { "running".to_string() } else { format!("exited {}", p.exit_code.unwrap_or(-1)) };
            vec![p.pid.to_string(), state, p.started_at, p.output_bytes.to_string(), std::iter::once(p.cmd).chain(p.args).collect::<Vec<_>>().join(" ")]
        })
        .collect();
    table(&["PID", "STATE", "STARTED", "OUTPUT BYTES", "COMMAND"], rows);
    Ok(())
}

pub async fn attach(c: Client, sandbox: &str, pid: u32, from_start: bool) -> anyhow::Result<()> {
    let events = c.attach(sandbox, pid, from_start).await?;
    match follow(events).await? {
        Some((code, _)) => std::process::exit(code),
        None => Ok(()),
    }
}

#[derive(Subcommand)]
pub enum FilesCmd {
    /// List a directory.
    Ls { sandbox: String, path: String },
    /// Show a path's kind, size, mode and modification time.
    Stat { sandbox: String, path: String },
    /// Print a file.
    Cat { sandbox: String, path: String },
    /// Create a directory (with -p: and its parents; no error if it exists).
    Mkdir {
        sandbox: String,
        path: String,
        #[arg(short = 'p', long)]
        parents: bool,
    },
    /// Remove a file or (with -r) a directory tree.
    Rm {
        sandbox: String,
        path: String,
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Rename (move) within the sandbox.
    Mv { sandbox: String, from: String, to: String },
}

pub async fn files(c: Client, cmd: FilesCmd, as_json: bool) -> anyhow::Result<()> {
    match cmd {
        FilesCmd::Ls { sandbox, path } => {
            let entries = c.list_files(&sandbox, &path).await?;
            if as_json {
                json(&entries)
            } else {
                table(
                    &["MODE", "SIZE", "MODIFIED", "NAME"],
                    entries
                        .into_iter()
                        .map(|e| {
                            let name = if e.kind == "dir" { format!("{}/", e.name) } else { e.name };
                            vec![format!("{:04o}", e.mode), e.size.to_string(), e.modified_at, name]
                        })
                        .collect(),
                );
            }
        }
        FilesCmd::Stat { sandbox, path } => {
            let s = c.stat(&sandbox, &path).await?;
            if as_json { json(&s) } else { println!("{path}: {} {} bytes mode {:04o} modified {}", s.kind, s.size, s.mode, s.modified_at) }
        }
        FilesCmd::Cat { sandbox, path } => {
            let mut out = tokio::io::stdout();
            c.download(&sandbox, &path, false, &mut out).await?;
        }
        FilesCmd::Mkdir { sandbox, path, parents } => c.mkdir(&sandbox, &path, parents).await?,
        FilesCmd::Rm { sandbox, path, recursive } => c.remove_file(&sandbox, &path, recursive).await?,
        FilesCmd::Mv { sandbox, from, to } => c.rename_file(&sandbox, &from, &to).await?,
    }
    Ok(())
}

/// `SANDBOX:/path` or a local path.
fn remote(spec: &str) -> Option<(&str, &str)> {
    let (sb, path) = spec.split_once(':')?;
    (!sb.is_empty() && !sb.contains('/') && path.starts_with('/')).then_some((sb, path))
}

/// `shoal cp SRC DST`: one side is `SANDBOX:/path`. Files stream both ways; `-r` copies a
/// directory as a tar stream (the host's `tar` packs or unpacks the local side).
pub async fn cp(c: Client, src: &str, dst: &str, recursive: bool) -> anyhow::Result<()> {
    use std::process::Stdio;
    match (remote(src), remote(dst)) {
        (Some(_), Some(_)) | (None, None) => bail!("give exactly one side as SANDBOX:/absolute/path, e.g. `shoal cp ./app api:/srv/app`"),
        (None, Some((sb, path))) => {
            let bytes = if recursive {
                let mut tar = tokio::process::Command::new("tar")
                    .args(["-C", src, "-cf", "-", "."])
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("running the host's tar")?;
                let out = tar.stdout.take().expect("piped");
                let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(out));
                let n = c.upload(sb, path, true, None, body).await?;
                if !tar.wait().await?.success() {
                    bail!("tar could not pack {src}");
                }
                n
            } else {
                let f = tokio::fs::File::open(src).await.with_context(|| format!("opening {src}"))?;
                let mode = f.metadata().await.ok().map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
                c.upload(sb, path, false, mode, reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f))).await?
            };
            eprintln!("copied {bytes} bytes to {sb}:{path}");
        }
        (Some((sb, path)), None) => {
            let bytes = if recursive {
                std::fs::create_dir_all(dst).with_context(|| format!("creating {dst}"))?;
                let mut tar = tokio::process::Command::new("tar")
                    .args(["-C", dst, "-xf", "-"])
                    .stdin(Stdio::piped())
                    .spawn()
                    .context("running the host's tar")?;
                let mut input = tar.stdin.take().expect("piped");
                let n = c.download(sb, path, true, &mut input).await?;
                drop(input);
                if !tar.wait().await?.success() {
                    bail!("tar could not unpack into {dst}");
                }
                n
            } else {
                let mut f = tokio::fs::File::create(dst).await.with_context(|| format!("creating {dst}"))?;
                c.download(sb, path, false, &mut f).await?
            };
            eprintln!("copied {bytes} bytes from {sb}:{path}");
        }
    }
    Ok(())
}

