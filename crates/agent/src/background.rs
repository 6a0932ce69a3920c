//! Background processes: the process table, and each process's output ring buffer.
//!
//! A background process is driven by its own supervisor thread (not by a connection), which
//! reads its output into a ring buffer that never blocks the process: when the buffer is full
//! the oldest bytes are dropped. Clients attach and detach at will; each reader keeps its own
//! position in the total output (`Ring::total`), so it knows exactly what it missed.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal_agent_proto::{OutputStream, ProcessInfo, MAX_FINISHED_PROCESSES};

use crate::error::{AgentError, AgentResult};
use crate::process::{drive, ChildIo, DriveOpts, ExitInfo, ProcCtl, Sink};

/// Consecutive reads of the same stream are merged into chunks up to this size, so a process
/// printing a byte at a time does not cost a chunk per byte.
const MERGE_LIMIT: usize = 64 * 1024;
/// And no more chunks than this are kept (stdout and stderr alternating byte by byte).
const MAX_CHUNKS: usize = 16 * 1024;

struct Chunk {
    /// Position of `data[0]` in the total output.
    start: u64,
    stream: OutputStream,
    data: Vec<u8>,
}

/// The most recent output of a process, at most `cap` bytes.
pub struct Ring {
    chunks: VecDeque<Chunk>,
    /// Bytes ever pushed.
    total: u64,
    buffered: usize,
    cap: usize,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            chunks: VecDeque::new(),
            total: 0,
            buffered: 0,
            cap,
        }
    }

    /// Bytes ever pushed (the position after the newest byte).
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn push(&mut self, stream: OutputStream, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.chunks.back_mut() {
            Some(last) if last.stream == stream && last.data.len() + data.len() <= MERGE_LIMIT => {
                last.data.extend_from_slice(data)
            }
            _ => self.chunks.push_back(Chunk {
                start: self.total,
                stream,
                data: data.to_vec(),
            }),
        }
        self.total += data.len() as u64;
        self.buffered += data.len();
        while self.buffered > self.cap || self.chunks.len() > MAX_CHUNKS {
            let excess = (self.buffered.saturating_sub(self.cap)).max(1);
            let too_many = self.chunks.len() > MAX_CHUNKS;
            let front = self
                .chunks
                .front_mut()
                .expect("buffered bytes are in chunks");
            if front.data.len() <= excess || too_many {
                self.buffered -= front.data.len();
                self.chunks.pop_front();
            } else {
                front.data.drain(..excess);
                front.start += excess as u64;
                self.buffered -= excess;
            }
        }
    }

    /// Everything from position `pos` on that is still buffered: (offset, stream, bytes).
    /// The first offset is greater than `pos` if bytes were dropped in between.
    pub fn read_from(&self, pos: u64) -> Vec<(u64, OutputStream, Vec<u8>)> {
        self.chunks
            .iter()
            .filter(|c| c.start + c.data.len() as u64 > pos)
            .map(|c| {
                let skip = pos.saturating_sub(c.start) as usize;
                (c.start + skip as u64, c.stream, c.data[skip..].to_vec())
            })
            .collect()
    }
}

pub struct BgState {
    pub ring: Ring,
    pub exit: Option<ExitInfo>,
}

pub struct BgProc {
    pub pid: u32,
    pub cmd: String,
    pub args: Vec<String>,
    pub started_at_ms: u64,
    pub pty: bool,
    pub ctl: ProcCtl,
    state: Mutex<BgState>,
    /// Notified on new output and on exit.
    changed: Condvar,
}

impl BgProc {
    pub fn lock(&self) -> MutexGuard<'_, BgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait (releasing the lock) until new output or the exit, or `timeout`.
    pub fn wait<'a>(
        &self,
        guard: MutexGuard<'a, BgState>,
        timeout: Duration,
    ) -> MutexGuard<'a, BgState> {
        match self.changed.wait_timeout(guard, timeout) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    pub fn info(&self) -> ProcessInfo {
        let st = self.lock();
        ProcessInfo {
            pid: self.pid,
            cmd: self.cmd.clone(),
            args: self.args.clone(),
            started_at_ms: self.started_at_ms,
            running: st.exit.is_none(),
            exit_code: st.exit.map(|e| e.exit_code),
            signal: st.exit.and_then(|e| e.signal),
            timed_out: st.exit.is_some_and(|e| e.timed_out),
            pty: self.pty,
            output_bytes: st.ring.total(),
        }
    }
}

struct RingSink<'a>(&'a BgProc);

impl Sink for RingSink<'_> {
    fn output(&mut self, stream: OutputStream, data: &[u8], _: &mut dyn FnMut()) -> io::Result<()> {
        self.0.lock().ring.push(stream, data);
        self.0.changed.notify_all();
        Ok(())
    }

    fn heartbeat(&mut self, _: &mut dyn FnMut()) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
pub struct Table {
    inner: Mutex<TableInner>,
}

#[derive(Default)]
struct TableInner {
    procs: HashMap<u32, Arc<BgProc>>,
    /// Finished processes, oldest first.
    finished: VecDeque<u32>,
}

/// What a background process is started from.
pub struct Spec {
    pub cmd: String,
    pub args: Vec<String>,
    pub timeout: Option<Duration>,
    pub ring_bytes: usize,
}

impl Table {
    fn inner(&self) -> MutexGuard<'_, TableInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a spawned child and start its supervisor thread.
    pub fn start(
        self: &Arc<Self>,
        ctl: ProcCtl,
        io: ChildIo,
        spec: Spec,
    ) -> AgentResult<Arc<BgProc>> {
        let pid = ctl.pid as u32;
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let proc = Arc::new(BgProc {
            pid,
            cmd: spec.cmd,
            args: spec.args,
            started_at_ms,
            pty: io.is_pty(),
            ctl,
            state: Mutex::new(BgState {
                ring: Ring::new(spec.ring_bytes),
                exit: None,
            }),
            changed: Condvar::new(),
        });
        {
            let mut t = self.inner();
            // A finished process whose pid got reused is replaced.
            t.finished.retain(|&p| p != pid);
            t.procs.insert(pid, proc.clone());
        }
        let (table, p) = (self.clone(), proc.clone());
        let opts = DriveOpts {
            timeout: spec.timeout,
            heartbeat: None,
            hangup_fd: None,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("bg-{pid}"))
            .spawn(move || {
                let exit = drive(io, &p.ctl, opts, &mut RingSink(&p));
                p.ctl.release_stdin();
                p.lock().exit = Some(exit);
                p.changed.notify_all();
                table.finished(&p);
            });
        if let Err(e) = spawned {
            proc.ctl.kill_group(libc::SIGKILL);
            self.inner().procs.remove(&pid);
            return Err(AgentError::io("cannot start a supervisor thread", &e));
        }
        Ok(proc)
    }

    fn finished(&self, proc: &Arc<BgProc>) {
        let mut t = self.inner();
        if !t.procs.get(&proc.pid).is_some_and(|p| Arc::ptr_eq(p, proc)) {
            return; // already forgotten or replaced
        }
        t.finished.push_back(proc.pid);
        while t.finished.len() > MAX_FINISHED_PROCESSES {
            let old = t.finished.pop_front().expect("not empty");
            t.procs.remove(&old);
        }
    }

    pub fn get(&self, pid: u32) -> AgentResult<Arc<BgProc>> {
        self.inner()
            .procs
            .get(&pid)
            .cloned()
            .ok_or_else(|| AgentError::not_found(format!("no background process with pid {pid}")))
    }

    /// All background processes, oldest first.
    pub fn list(&self) -> Vec<ProcessInfo> {
        let procs: Vec<Arc<BgProc>> = self.inner().procs.values().cloned().collect();
        let mut list: Vec<ProcessInfo> = procs.iter().map(|p| p.info()).collect();
        list.sort_by_key(|p| (p.started_at_ms, p.pid));
        list
    }

    pub fn forget(&self, pid: u32) -> AgentResult<()> {
        let mut t = self.inner();
        let proc = t.procs.get(&pid).ok_or_else(|| {
            AgentError::not_found(format!("no background process with pid {pid}"))
        })?;
        if proc.lock().exit.is_none() {
            return Err(AgentError::invalid(format!(
                "process {pid} is still running (signal it first)"
            )));
        }
        t.procs.remove(&pid);
        t.finished.retain(|&p| p != pid);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(r: &Ring, pos: u64) -> (u64, Vec<u8>) {
        let frames = r.read_from(pos);
        let first = frames.first().map_or(r.total(), |f| f.0);
        (first, frames.into_iter().flat_map(|f| f.2).collect())
    }

    #[test]
    fn ring_keeps_the_newest_bytes_and_counts_all() {
        let mut r = Ring::new(10);
        r.push(OutputStream::Stdout, b"0123456");
        r.push(OutputStream::Stderr, b"789");
        assert_eq!(contents(&r, 0), (0, b"0123456789".to_vec()));
        r.push(OutputStream::Stdout, b"abcd");
        assert_eq!(r.total(), 14);
        // 4 bytes dropped: a reader from 0 learns that it missed them.
        assert_eq!(contents(&r, 0), (4, b"456789abcd".to_vec()));
        assert_eq!(contents(&r, 8), (8, b"89abcd".to_vec()));
        assert_eq!(contents(&r, 14), (14, vec![]));
        // Streams stay apart.
        let frames = r.read_from(0);
        let streams: Vec<_> = frames.iter().map(|f| f.1).collect();
        assert_eq!(
            streams,
            [
                OutputStream::Stdout,
                OutputStream::Stderr,
                OutputStream::Stdout
            ]
        );
        // One push bigger than the whole buffer.
        r.push(OutputStream::Stdout, &[b'x'; 25]);
        assert_eq!(contents(&r, 0), (29, vec![b'x'; 10]));
    }

    #[test]
    fn ring_merges_small_reads() {
        let mut r = Ring::new(1 << 20);
        for _ in 0..1000 {
            r.push(OutputStream::Stdout, b"y");
        }
        assert_eq!(r.chunks.len(), 1);
        for i in 0..(MAX_CHUNKS + 10) {
            let s = if i % 2 == 0 {
                OutputStream::Stdout
            } else {
                OutputStream::Stderr
            };
            r.push(s, b"z");
        }
        assert_eq!(r.chunks.len(), MAX_CHUNKS);
        assert_eq!(
            r.buffered,
            r.chunks.iter().map(|c| c.data.len()).sum::<usize>()
        );
    }
}
