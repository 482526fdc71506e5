//! What the scheduler remembers about windows across restarts: the
//! `WindowLog` trait (the daemon keeps it in its catalog) and an in-memory
//! one for tests.
//!
//! Owns: the outcome of a window and what "done" means. Must not: know
//! about SQLite or any other store.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How a window ended. Every outcome is final: once one is recorded the
/// window is done and never runs again, a failed one included (its retries
/// ran until the window closed; the next window is the next chance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum WindowOutcome {
    /// An attempt succeeded; `attempts` counts it and the failed ones before.
    Succeeded { attempts: u32, delayed: bool },
    /// Every attempt failed and no further one could start before the window
    /// closed. `reason` carries the last attempt's error.
    Failed { attempts: u32, reason: String },
    /// No attempt started before the window closed (the concurrency limits
    /// held it, or the scheduler did not get to it in time).
    Missed { reason: String },
}

/// The scheduler's memory of finished windows.
///
/// `done` is asked right before a window would start, on the scheduler's
/// loop, so it should answer quickly; `record` is called once per window,
/// from the task that ran it. A window whose task was cut short (the daemon
/// died mid-attempt) has no record and runs again, late, if it is still
/// open when the daemon is back.
pub trait WindowLog: Send + Sync + 'static {
    fn done(&self, instance: &str, window_id: &str) -> bool;
    fn record(&self, instance: &str, window_id: &str, outcome: &WindowOutcome);
}

/// A `WindowLog` held in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryWindowLog {
    outcomes: Mutex<HashMap<(String, String), WindowOutcome>>,
    records: Mutex<u64>,
}

impl MemoryWindowLog {
    pub fn new() -> MemoryWindowLog {
        MemoryWindowLog::default()
    }

    pub fn outcome(&self, instance: &str, window_id: &str) -> Option<WindowOutcome> {
        let key = (instance.to_owned(), window_id.to_owned());
        self.outcomes.lock().unwrap().get(&key).cloned()
    }

    /// How many times `record` was called, to catch a window recorded twice.
    pub fn record_calls(&self) -> u64 {
        *self.records.lock().unwrap()
    }
}

impl WindowLog for MemoryWindowLog {
    fn done(&self, instance: &str, window_id: &str) -> bool {
        let key = (instance.to_owned(), window_id.to_owned());
        self.outcomes.lock().unwrap().contains_key(&key)
    }

    fn record(&self, instance: &str, window_id: &str, outcome: &WindowOutcome) {
        let key = (instance.to_owned(), window_id.to_owned());
        self.outcomes.lock().unwrap().insert(key, outcome.clone());
        *self.records.lock().unwrap() += 1;
    }
}
