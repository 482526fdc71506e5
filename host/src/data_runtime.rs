//! The runtime that moves backup and restore data, apart from the one that
//! serves the API and runs the scheduler, with its threads at a CPU
//! priority of their own.
//!
//! A backup's wall time is set by the Redis fork writing the RDB. On the
//! same host, every time one of our threads takes the CPU the fork, or the
//! Redis process relaying its pipe to our socket, may wait: measured on 2
//! cores with a 667 MB RDB, the fork spent 0.8 s waiting for the CPU or for
//! its pipe to drain with the data path at normal priority, 0.5 s at nice
//! 19, 0.1 to 0.2 s at `SCHED_IDLE`, and 0.1 s under `redis-cli --rdb`.
//! The same holds for a restore's target loading what we send. So backups,
//! restores, verification and inspection run here, and
//! `[daemon] data_priority` sets how their threads yield:
//! - `idle` (the config's default): `SCHED_IDLE`. Any other runnable thread
//!   on the host, Redis first, preempts them at once; they run on CPU time
//!   nothing else wants, which a backup has as long as Redis leaves a core
//!   free some of the time. On a host whose every core is kept busy they
//!   get little: with two busy loops on 2 cores, the same backup took 79 s
//!   at `idle` and 23 s at `normal`, and the Redis fork lived that long.
//!   Use `low` or `normal` where backups must finish first.
//! - `low`: nice 19.
//! - `normal`: the daemon's own priority.
//!
//! Threads a data thread starts inherit its priority, and so would a
//! process it started: what starts a server (`clone --spawn`) does not run
//! here. Until the daemon or the CLI sets the priority from the config,
//! the runtime runs at normal priority (tests, embedders).
//!
//! Owns: the data runtime and the priority of its threads. Must not: know
//! what runs on it.

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the data runtime's threads share the CPU with the rest of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// `SCHED_IDLE`: only CPU time no other thread wants.
    Idle,
    /// Nice 19.
    Low,
    /// The daemon's own priority.
    Normal,
}

impl Priority {
    /// The config's spelling: `idle`, `low` or `normal`.
    pub fn parse(text: &str) -> Option<Priority> {
        match text {
            "idle" => Some(Priority::Idle),
            "low" => Some(Priority::Low),
            "normal" => Some(Priority::Normal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Idle => "idle",
            Priority::Low => "low",
            Priority::Normal => "normal",
        }
    }
}

static PRIORITY: OnceLock<Priority> = OnceLock::new();
static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

thread_local! {
    /// Whether this thread is one of the data runtime's.
    static ON_DATA_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sets the priority of the data runtime's threads, before its first use;
/// returns the priority in force, which differs from `wanted` when the
/// runtime was already set up (a reload: it takes a restart).
pub fn set_priority(wanted: Priority) -> Priority {
    *PRIORITY.get_or_init(|| wanted)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        let priority = *PRIORITY.get_or_init(|| Priority::Normal);
        // As many threads as cores, as the main runtime has: the data path
        // of one backup keeps up to three busy (reader, parser, compressor).
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 16);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("redback-data")
            .enable_all()
            .on_thread_start(move || {
                ON_DATA_THREAD.with(|on| on.set(true));
                lower(priority);
            })
            .build()
            .unwrap_or_else(|e| panic!("cannot start the data threads: {e}"))
    })
}

/// Runs `work` on the data runtime and returns its output. Dropping the
/// returned future cancels `work`, as dropping `work` itself would; a
/// panic in `work` resumes here. Work that is already on the data runtime
/// (a restore verifying its backup first) runs in place.
pub async fn run<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    if ON_DATA_THREAD.with(|on| on.get()) {
        return work.await;
    }
    let task = runtime().spawn(work.in_current_span());
    let _cancel = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(output) => output,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only `AbortOnDrop` aborts the task, and it has not run.
            Err(e) => unreachable!("a data task ended without output: {e}"),
        },
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's priority; a refusal is logged once and the
/// thread keeps the daemon's priority.
fn lower(priority: Priority) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let result = set_thread_priority(priority);
    if let Err(e) = result
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "cannot set the data threads' CPU priority to `{}` ({e}); they run at the daemon's",
            priority.as_str()
        );
    }
}

#[cfg(target_os = "linux")]
fn set_thread_priority(priority: Priority) -> std::io::Result<()> {
    // Linux keeps the policy and the nice value per thread: both calls
    // change the calling thread only.
    let r = match priority {
        Priority::Normal => return Ok(()),
        Priority::Idle => {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: plain system call on the calling thread (pid 0) with
            // a valid parameter block.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }
        }
        // SAFETY: plain system call on the calling thread (who 0).
        Priority::Low => unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) },
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_thread_priority(priority: Priority) -> std::io::Result<()> {
    match priority {
        Priority::Normal => Ok(()),
        _ => Err(std::io::Error::other("only Linux sets a thread's priority")),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's (policy, nice value).
    fn priority() -> (i32, i32) {
        // SAFETY: plain system calls on the calling thread.
        unsafe {
            (
                libc::sched_getscheduler(0),
                libc::getpriority(libc::PRIO_PROCESS, 0),
            )
        }
    }

    #[test]
    fn each_priority_changes_only_the_calling_thread() {
        let before = priority();
        let idle = std::thread::spawn(|| {
            set_thread_priority(Priority::Idle).unwrap();
            priority()
        });
        assert_eq!(idle.join().unwrap().0, libc::SCHED_IDLE);
        let low = std::thread::spawn(|| {
            set_thread_priority(Priority::Low).unwrap();
            priority()
        });
        assert_eq!(low.join().unwrap().1, 19);
        assert_eq!(priority(), before);
    }

    #[tokio::test]
    async fn run_returns_the_output_and_cancels_when_dropped() {
        assert_eq!(run(async { 6 * 7 }).await, 42);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let pending = run(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        // Polled once so the task starts, then dropped.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(10), pending).await;
        // The task was aborted: its sender is gone.
        assert!(rx.await.is_err());
    }

    #[tokio::test]
    async fn work_on_the_data_runtime_runs_in_place() {
        let (outer, inner) = run(async {
            let outer = std::thread::current().id();
            let inner = run(async { std::thread::current().id() }).await;
            (outer, inner)
        })
        .await;
        assert_eq!(outer, inner);
        assert!(!ON_DATA_THREAD.with(|on| on.get()));
    }

    #[test]
    fn spellings_round_trip() {
        for p in [Priority::Idle, Priority::Low, Priority::Normal] {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
        assert_eq!(Priority::parse("high"), None);
    }
}
