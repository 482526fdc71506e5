//! The automatic-backup scheduler: decides when each configured instance
//! gets its automatic backup and calls a runner to take it.
//!
//! Owns: turning policies into windows in the instance's time zone
//! (`window`), the clock it waits on (`clock`), starting, limiting and
//! retrying backups inside their windows (`engine`), and what a window's
//! outcome means across restarts (`log`). Must not: take backups itself,
//! touch storages or plugins, or know where outcomes are persisted; the
//! daemon supplies a `Runner` and a `WindowLog`.
//!
//! Semantics in one place:
//! - A window is identified by (instance, the local date it opens on).
//! - Each window gets at most one outcome in the `WindowLog`; once it has
//!   one it never runs again, even after a restart (a failed window included).
//! - Attempts only start inside the window; after a failure the next one
//!   waits `Backoff::after(attempt)`, and if that would be at or after the
//!   window's close the window is recorded failed.
//! - After a restart inside an open window that has no outcome, the window
//!   runs (late ones with `delayed = true`); windows that closed while the
//!   daemon was down are neither run nor recorded.

mod clock;
mod engine;
mod log;
mod window;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SYSTEM_SLEEP_STEP, SystemClock};
pub use engine::{Backoff, DELAY_SLACK, Limits, Runner, ScheduleError, Scheduler, SchedulerHandle};
pub use log::{MemoryWindowLog, WindowLog, WindowOutcome};
pub use window::{Plan, Window};
