//! The one and only place that calls `waitpid`.
//!
//! As PID 1 the agent inherits every orphan in the sandbox and must reap them, or they stay
//! zombies forever. A reaper calling `waitpid(-1)` would race with exec threads waiting for
//! their own children, so nothing else ever waits: exec threads register the pids they spawn
//! and the reaper hands each registered child's status to its owner. Statuses of pids nobody
//! registered (orphans) are simply dropped.
//!
//! The status goes through a pipe rather than a channel so the exec thread can `poll()` for
//! "child exited" together with the child's stdout/stderr in one loop.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long the reaper sleeps when it has no children at all (a spawn wakes it earlier).
const IDLE_SLEEP: Duration = Duration::from_millis(50);

pub struct Reaper {
    state: Mutex<State>,
    /// Signalled on every registration, so an idle reaper starts waiting at once.
    spawned: Condvar,
}

#[derive(Default)]
pub struct State {
    /// pid -> write end of the pipe its raw wait status (4 bytes, native endian) goes to.
    waiters: HashMap<libc::pid_t, OwnedFd>,
    /// Bumped on every registration; lets the reaper notice a spawn that happened between
    /// its `waitpid` failing with ECHILD and it going to sleep.
    generation: u64,
}

/// Registration handle: holding it holds the registry lock, so a child forked while the
/// guard is alive cannot have its status delivered before it is registered.
pub struct Registration<'a> {
    guard: MutexGuard<'a, State>,
    reaper: &'a Reaper,
}

impl Registration<'_> {
    pub fn register(mut self, pid: libc::pid_t, status_tx: OwnedFd) {
        self.guard.waiters.insert(pid, status_tx);
        self.guard.generation += 1;
        drop(self.guard);
        self.reaper.spawned.notify_all();
    }
}

/// The process-wide reaper, started on first use.
pub fn get() -> &'static Reaper {
    static REAPER: OnceLock<&'static Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let r: &'static Reaper = Box::leak(Box::new(Reaper {
            state: Mutex::default(),
            spawned: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || r.run())
            .expect("spawn reaper thread");
        r
    })
}

impl Reaper {
    /// Take the registry lock; fork while holding the returned guard, then `register`.
    pub fn lock(&self) -> Registration<'_> {
        Registration {
            guard: self.state(),
            reaper: self,
        }
    }

    /// Forget a pid (its owner no longer cares, e.g. exec failed); its status will be dropped.
    pub fn unregister(&self, pid: libc::pid_t) {
        self.state().waiters.remove(&pid);
    }

    /// Pids of registered (still running, or not yet collected) children.
    pub fn registered_pids(&self) -> Vec<libc::pid_t> {
        self.state().waiters.keys().copied().collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not stop reaping: ignore poisoning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) -> ! {
        loop {
            let generation = self.state().generation;
            let mut status: libc::c_int = 0;
            // Blocks until any child (including ones forked after the call began) exits.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid > 0 {
                // Taking the lock waits out a spawn in progress, so the pid is registered by now.
                let owner = self.state().waiters.remove(&pid);
                if let Some(tx) = owner {
                    let bytes = status.to_ne_bytes();
                    // 4 bytes < PIPE_BUF: atomic, and the pipe is empty, so this cannot block.
                    // If the owner is gone (EPIPE) there is nobody to tell.
                    unsafe { libc::write(tx.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
                }
                continue;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => {
                    // No children: sleep until a spawn (or briefly, to catch orphans that get
                    // re-parented to us, e.g. from `runc exec` sessions).
                    let state = self.state();
                    if state.generation == generation {
                        let _ = self.spawned.wait_timeout(state, IDLE_SLEEP);
                    }
                }
                _ => std::thread::sleep(IDLE_SLEEP),
            }
        }
    }
}
