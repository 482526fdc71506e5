//! The scheduler's engine: one loop over a heap of due times that starts a
//! task per due window, which waits for a backup slot, calls the runner and
//! retries with backoff while the window is open.
//!
//! Owns: when a window's attempts start, the concurrency limits, retries,
//! and recording each window's outcome exactly once. Must not: know how a
//! backup is taken (that is the `Runner`) or where outcomes are stored
//! (that is the `WindowLog`).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use jiff::Timestamp;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::clock::Clock;
use super::log::{WindowLog, WindowOutcome};
use super::window::{Plan, Window};

/// A run that starts more than this after its planned start is `delayed`.
pub const DELAY_SLACK: Duration = Duration::from_secs(60);

/// Takes one backup. `attempt` counts from 1 within a window; `delayed` is
/// decided when the window's first attempt starts (it began more than
/// `DELAY_SLACK` after `planned_start`: the daemon was down or the limits
/// held it) and is passed unchanged to its retries.
#[async_trait::async_trait]
pub trait Runner: Send + Sync + 'static {
    async fn run(&self, window: &Window, attempt: u32, delayed: bool) -> Result<(), String>;
}

/// How many backups run at once; a backup waits until both allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub global: NonZeroUsize,
    /// Per storage name (`Plan::storage`), for a storage not in `storages`.
    pub per_storage: NonZeroUsize,
    /// Storages with a limit of their own.
    pub storages: HashMap<String, NonZeroUsize>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            global: NonZeroUsize::new(4).unwrap(),
            per_storage: NonZeroUsize::new(2).unwrap(),
            storages: HashMap::new(),
        }
    }
}

/// The wait after a failed attempt: `first`, doubling after every further
/// failure, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            first: Duration::from_secs(60),
            max: Duration::from_secs(30 * 60),
        }
    }
}

impl Backoff {
    /// The wait after attempt number `failed_attempt` (from 1) failed.
    pub fn after(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(31);
        self.first
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("the scheduler has stopped")]
    Stopped,
}

/// Starts automatic backups for a set of plans.
pub struct Scheduler {
    clock: Arc<dyn Clock>,
    runner: Arc<dyn Runner>,
    log: Arc<dyn WindowLog>,
    limits: Limits,
    backoff: Backoff,
}

impl Scheduler {
    pub fn new(
        clock: Arc<dyn Clock>,
        runner: Arc<dyn Runner>,
        log: Arc<dyn WindowLog>,
        limits: Limits,
    ) -> Scheduler {
        Scheduler {
            clock,
            runner,
            log,
            limits,
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(self, backoff: Backoff) -> Scheduler {
        Scheduler { backoff, ..self }
    }

    /// Starts the loop on the current tokio runtime. Two plans for one
    /// instance: the later one wins (with a warning).
    pub fn spawn(self, plans: Vec<Plan>) -> SchedulerHandle {
        let (commands, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            clock: self.clock,
            runner: self.runner,
            log: self.log,
            backoff: self.backoff,
            global: Arc::new(Semaphore::new(self.limits.global.get())),
            in_flight: Mutex::new(HashSet::new()),
            stop: watch::Sender::new(false),
        });
        let mut engine = Engine {
            shared,
            limits: self.limits,
            storages: HashMap::new(),
            plans: HashMap::new(),
            queue: BinaryHeap::new(),
            tasks: JoinSet::new(),
        };
        engine.replace(plans);
        SchedulerHandle {
            commands,
            task: tokio::spawn(engine.run(receiver)),
        }
    }
}

/// Talks to a running scheduler. Dropping it stops the scheduler like
/// `shutdown`, without waiting.
pub struct SchedulerHandle {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Swaps the whole set of plans; returns once the new set is in force.
    /// Windows already started carry on (retries included) under the plan
    /// they started with; a window whose id already started or is done does
    /// not start again under the new plan.
    pub async fn replace_plans(&self, plans: Vec<Plan>) -> Result<(), ScheduleError> {
        let (ack, applied) = oneshot::channel();
        self.commands
            .send(Command::Replace(plans, ack))
            .map_err(|_| ScheduleError::Stopped)?;
        applied.await.map_err(|_| ScheduleError::Stopped)
    }

    /// Stops starting attempts and returns once attempts already running
    /// have finished and been recorded. Windows waiting for a slot or a
    /// retry are left unrecorded, so they run (late) after a restart if
    /// still open.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the scheduler loop failed");
        }
    }
}

enum Command {
    Replace(Vec<Plan>, oneshot::Sender<()>),
    Shutdown,
}

/// What the loop and its window tasks share.
struct Shared {
    clock: Arc<dyn Clock>,
    runner: Arc<dyn Runner>,
    log: Arc<dyn WindowLog>,
    backoff: Backoff,
    global: Arc<Semaphore>,
    /// (instance, window id) of every window with a live task; only the loop
    /// inserts, so checking and inserting cannot race.
    in_flight: Mutex<HashSet<(String, String)>>,
    stop: watch::Sender<bool>,
}

/// A window's next due time in the loop's heap.
struct Due {
    at: Timestamp,
    window: Window,
}

impl Due {
    fn key(&self) -> (Timestamp, &str, &str) {
        (self.at, &self.window.instance, &self.window.id)
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Due) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The loop's own state. One entry per plan in `queue`: its next window
/// that has not been started, due at its planned start.
struct Engine {
    shared: Arc<Shared>,
    limits: Limits,
    storages: HashMap<String, Arc<Semaphore>>,
    plans: HashMap<String, Plan>,
    queue: BinaryHeap<Reverse<Due>>,
    tasks: JoinSet<()>,
}

enum Wake {
    Due,
    Command(Option<Command>),
    TaskEnded(Result<(), tokio::task::JoinError>),
}

impl Engine {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.start_due();
            let clock = self.shared.clock.clone();
            let next = self.queue.peek().map(|Reverse(due)| due.at);
            let wake = tokio::select! {
                _ = sleep_until(&*clock, next) => Wake::Due,
                command = commands.recv() => Wake::Command(command),
                Some(ended) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    Wake::TaskEnded(ended)
                }
            };
            match wake {
                Wake::Due => {}
                Wake::Command(Some(Command::Replace(plans, ack))) => {
                    self.replace(plans);
                    let _ = ack.send(());
                }
                Wake::Command(Some(Command::Shutdown) | None) => break,
                Wake::TaskEnded(Ok(())) => {}
                Wake::TaskEnded(Err(e)) => {
                    tracing::error!(error = %e, "a backup window task failed");
                }
            }
        }
        self.shared.stop.send_replace(true);
        while let Some(ended) = self.tasks.join_next().await {
            if let Err(e) = ended {
                tracing::error!(error = %e, "a backup window task failed");
            }
        }
    }

    fn replace(&mut self, plans: Vec<Plan>) {
        self.plans.clear();
        for plan in plans {
            let instance = plan.instance.clone();
            if self.plans.insert(instance.clone(), plan).is_some() {
                tracing::warn!(%instance, "two schedules for one instance; the later one is used");
            }
        }
        // Rebuilding is simpler than patching and cheap (one window
        // computation per plan); windows already started are kept from
        // starting twice by `in_flight` and the log.
        self.queue.clear();
        let now = self.shared.clock.now();
        let next: Vec<Window> = self
            .plans
            .values()
            .filter_map(|plan| plan.window_at_or_after(now))
            .collect();
        for window in next {
            self.queue.push(Reverse(Due {
                at: window.planned_start,
                window,
            }));
        }
    }

    fn start_due(&mut self) {
        let now = self.shared.clock.now();
        while self.queue.peek().is_some_and(|Reverse(due)| due.at <= now) {
            let Some(Reverse(due)) = self.queue.pop() else {
                break;
            };
            self.start(due.window, now);
        }
    }

    fn start(&mut self, window: Window, now: Timestamp) {
        let Some(plan) = self.plans.get(&window.instance) else {
            return;
        };
        if let Some(next) = plan.window_at_or_after(window.closes.max(now)) {
            self.queue.push(Reverse(Due {
                at: next.planned_start,
                window: next,
            }));
        }
        let shared = &self.shared;
        let key = (window.instance.clone(), window.id.clone());
        if shared.in_flight.lock().unwrap().contains(&key)
            || shared.log.done(&window.instance, &window.id)
        {
            return;
        }
        if now >= window.closes {
            // Only when the loop itself was held up past a whole window: the
            // wall clock jumped or the machine slept.
            let outcome = WindowOutcome::Missed {
                reason: "the scheduler did not get to the window before it closed \
                         (the clock jumped or the machine was suspended)"
                    .to_owned(),
            };
            record(&*shared.log, &window, &outcome);
            return;
        }
        let storage = self
            .storages
            .entry(plan.storage.clone())
            .or_insert_with(|| {
                let limit = self.limits.storages.get(&plan.storage);
                Arc::new(Semaphore::new(
                    limit.unwrap_or(&self.limits.per_storage).get(),
                ))
            })
            .clone();
        shared.in_flight.lock().unwrap().insert(key.clone());
        let in_flight = InFlight {
            shared: shared.clone(),
            key,
        };
        self.tasks.spawn(run_window(in_flight, window, storage));
    }
}

async fn sleep_until(clock: &dyn Clock, t: Option<Timestamp>) {
    match t {
        Some(t) => clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Takes a window off `in_flight` when its task ends, however it ends.
struct InFlight {
    shared: Arc<Shared>,
    key: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.lock().unwrap().remove(&self.key);
    }
}

async fn run_window(in_flight: InFlight, window: Window, storage: Arc<Semaphore>) {
    let shared = &in_flight.shared;
    if let Some(outcome) = attempts(shared, &window, &storage).await {
        record(&*shared.log, &window, &outcome);
    }
}

fn record(log: &dyn WindowLog, window: &Window, outcome: &WindowOutcome) {
    match outcome {
        WindowOutcome::Succeeded { attempts, delayed } => {
            tracing::info!(instance = %window.instance, window = %window.id, attempts, delayed,
                "automatic backup succeeded");
        }
        WindowOutcome::Failed { attempts, reason } => {
            tracing::warn!(instance = %window.instance, window = %window.id, attempts, %reason,
                "automatic backup failed");
        }
        WindowOutcome::Missed { reason } => {
            tracing::warn!(instance = %window.instance, window = %window.id, %reason,
                "automatic backup missed its window");
        }
    }
    log.record(&window.instance, &window.id, outcome);
}

/// Runs a window's attempts. `None` when the scheduler stops before the
/// window has an outcome.
async fn attempts(
    shared: &Shared,
    window: &Window,
    storage: &Arc<Semaphore>,
) -> Option<WindowOutcome> {
    let clock = &*shared.clock;
    let mut stop = shared.stop.subscribe();
    let mut delayed = None;
    let mut last_error = String::new();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let permits = tokio::select! {
            biased;
            _ = stopped(&mut stop) => return None,
            permits = acquire(storage, &shared.global) => permits,
            _ = clock.sleep_until(window.closes) => return Some(no_slot(attempt, &last_error)),
        };
        let now = clock.now();
        if now >= window.closes {
            return Some(no_slot(attempt, &last_error));
        }
        let late_after = window
            .planned_start
            .checked_add(DELAY_SLACK)
            .unwrap_or(window.planned_start);
        let delayed = *delayed.get_or_insert(now > late_after);
        let result = AssertUnwindSafe(shared.runner.run(window, attempt, delayed))
            .catch_unwind()
            .await;
        drop(permits);
        match result {
            Ok(Ok(())) => {
                return Some(WindowOutcome::Succeeded {
                    attempts: attempt,
                    delayed,
                });
            }
            Ok(Err(error)) => last_error = error,
            Err(_) => last_error = "the backup runner panicked".to_owned(),
        }
        tracing::warn!(instance = %window.instance, window = %window.id, attempt,
            error = %last_error, "automatic backup attempt failed");
        let retry_at = clock.now().checked_add(shared.backoff.after(attempt));
        let retry_at = match retry_at {
            Ok(t) if t < window.closes => t,
            _ => {
                return Some(WindowOutcome::Failed {
                    attempts: attempt,
                    reason: format!(
                        "{last_error} (no time left in the window for attempt {})",
                        attempt + 1
                    ),
                });
            }
        };
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return None,
            _ = clock.sleep_until(retry_at) => {}
        }
    }
}

/// The outcome when attempt number `attempt` could not get a slot before the
/// window closed.
fn no_slot(attempt: u32, last_error: &str) -> WindowOutcome {
    if attempt == 1 {
        WindowOutcome::Missed {
            reason: "the concurrency limits held the backup until its window closed".to_owned(),
        }
    } else {
        WindowOutcome::Failed {
            attempts: attempt - 1,
            reason: format!(
                "{last_error} (attempt {attempt} waited for a backup slot until the window closed)"
            ),
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the loop is gone, which is stopping too.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// The storage's slot first: a backup waiting for its storage then holds no
/// global slot that backups to other storages could use.
async fn acquire(
    storage: &Arc<Semaphore>,
    global: &Arc<Semaphore>,
) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
    let storage = storage.clone().acquire_owned().await;
    let global = global.clone().acquire_owned().await;
    // Neither semaphore is ever closed.
    (
        storage.expect("storage semaphore closed"),
        global.expect("global semaphore closed"),
    )
}
