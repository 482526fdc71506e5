//! The task center: every backup, restore, clone, archive and sweep the
//! daemon runs is a task with a state, progress, times and an error, kept
//! in the catalog; and each instance's state (running, backing up,
//! recovering by backup, recovering by key, cloning).
//!
//! Owns: starting and ending tasks, live progress (counters the running
//! work updates, written to the catalog about once a second), and the rule
//! that an instance does one thing at a time. Must not: run the work
//! itself (the daemon's service does) or know how a backup is taken.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::catalog::{Catalog, CatalogError, TaskKind, TaskQuery, TaskRecord, TaskState};
use crate::schedule::Clock;

/// What an instance is busy with; shown with the provider's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Activity {
    BackingUp { task: String },
    RecoveringByBackup { task: String, backup_id: String },
    RecoveringByKey { task: String, backup_id: String },
    Cloning { task: String, backup_id: String },
}

impl Activity {
    pub fn task(&self) -> &str {
        match self {
            Activity::BackingUp { task }
            | Activity::RecoveringByBackup { task, .. }
            | Activity::RecoveringByKey { task, .. }
            | Activity::Cloning { task, .. } => task,
        }
    }
}

/// Counters a running task updates, or that follow the work's own
/// counters (`follow`).
#[derive(Default)]
pub struct TaskProgress {
    pub bytes_done: AtomicU64,
    /// 0 while unknown.
    pub bytes_total: AtomicU64,
    pub keys_done: AtomicU64,
    live: Mutex<Option<LiveCounters>>,
}

type LiveCounters = Box<dyn Fn() -> (u64, u64) + Send + Sync>;

impl TaskProgress {
    /// From now on, bytes and keys done are what `counters` says (the
    /// backup's or restore's own progress), read when someone looks.
    pub fn follow(&self, counters: impl Fn() -> (u64, u64) + Send + Sync + 'static) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(counters));
    }

    /// Bytes done, bytes in all (if known) and keys done, now.
    pub fn read(&self) -> (u64, Option<u64>, u64) {
        let (bytes, keys) = match &*self.live.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(f) => f(),
            None => (
                self.bytes_done.load(Ordering::Relaxed),
                self.keys_done.load(Ordering::Relaxed),
            ),
        };
        let total = self.bytes_total.load(Ordering::Relaxed);
        (bytes, (total > 0).then_some(total), keys)
    }
}

/// Refused: the instance is busy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("instance '{instance}' is busy ({what}, task {task}); wait for it to finish")]
    Busy {
        instance: String,
        what: String,
        task: String,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// What a new task is.
pub struct NewTask<'a> {
    pub kind: TaskKind,
    pub instance: Option<&'a str>,
    pub backup_id: Option<&'a str>,
    /// Takes the instance for the task's length (`None`: archive, sweep).
    pub activity: Option<fn(task: String, backup_id: String) -> Activity>,
    pub detail: serde_json::Value,
}

pub struct TaskCenter {
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    running: Mutex<HashMap<String, Arc<TaskProgress>>>,
    busy: Mutex<HashMap<String, Activity>>,
}

impl TaskCenter {
    pub fn new(catalog: Arc<Catalog>, clock: Arc<dyn Clock>) -> Arc<TaskCenter> {
        Arc::new(TaskCenter {
            catalog,
            clock,
            running: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
        })
    }

    fn new_id(&self, kind: TaskKind) -> String {
        let now = self.clock.now();
        let r: [u8; 3] = crate::links::random_bytes().unwrap_or([0; 3]);
        format!(
            "{}-{}-{}",
            kind_word(kind),
            now.strftime("%Y%m%dT%H%M%S"),
            hex::encode(r)
        )
    }

    /// Starts a task: recorded as running now. Refused if it needs its
    /// instance and the instance is busy.
    pub fn start(self: &Arc<Self>, new: NewTask<'_>) -> Result<Task, StartError> {
        let id = self.new_id(new.kind);
        if let (Some(instance), Some(make)) = (new.instance, new.activity) {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = busy.get(instance) {
                return Err(StartError::Busy {
                    instance: instance.to_string(),
                    what: activity_words(a).to_string(),
                    task: a.task().to_string(),
                });
            }
            busy.insert(
                instance.to_string(),
                make(id.clone(), new.backup_id.unwrap_or_default().to_string()),
            );
        }
        let now = self.clock.now();
        let record = TaskRecord {
            id: id.clone(),
            kind: new.kind,
            instance: new.instance.map(str::to_string),
            backup_id: new.backup_id.map(str::to_string),
            state: TaskState::Running,
            bytes_done: 0,
            bytes_total: None,
            keys_done: 0,
            created_at: now,
            started_at: Some(now),
            ended_at: None,
            error: None,
            detail: new.detail,
        };
        if let Err(e) = self.catalog.insert_task(&record) {
            self.release(new.instance, &id);
            return Err(e.into());
        }
        let progress = Arc::new(TaskProgress::default());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), progress.clone());
        Ok(Task {
            center: self.clone(),
            id,
            instance: new.instance.map(str::to_string),
            progress,
            ended: false,
        })
    }

    fn release(&self, instance: Option<&str>, id: &str) {
        if let Some(i) = instance {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if busy.get(i).is_some_and(|a| a.task() == id) {
                busy.remove(i);
            }
        }
    }

    /// How many tasks are running now.
    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// What `instance` is doing; `None` when it is simply running.
    pub fn activity(&self, instance: &str) -> Option<Activity> {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .cloned()
    }

    /// Tasks as stored, with running tasks' latest counters.
    pub fn list(&self, q: &TaskQuery) -> Result<Vec<TaskRecord>, CatalogError> {
        let mut tasks = self.catalog.list_tasks(q)?;
        for t in &mut tasks {
            self.overlay(t);
        }
        Ok(tasks)
    }

    pub fn get(&self, id: &str) -> Result<Option<TaskRecord>, CatalogError> {
        let mut t = self.catalog.get_task(id)?;
        if let Some(t) = &mut t {
            self.overlay(t);
        }
        Ok(t)
    }

    fn overlay(&self, t: &mut TaskRecord) {
        if let Some(p) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&t.id)
        {
            (t.bytes_done, t.bytes_total, t.keys_done) = p.read();
        }
    }

    /// Writes running tasks' counters to the catalog; the daemon calls it
    /// about once a second.
    pub fn flush_progress(&self) {
        let snapshot: Vec<(String, Arc<TaskProgress>)> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, p) in snapshot {
            self.write_progress(&id, &p);
        }
    }

    fn write_progress(&self, id: &str, p: &TaskProgress) {
        let (bytes, total, keys) = p.read();
        if let Err(e) = self.catalog.update_task_progress(id, bytes, total, keys) {
            tracing::warn!(task = %id, "cannot record progress: {e}");
        }
    }

    fn end(
        &self,
        task: &Task,
        state: TaskState,
        error: Option<String>,
        detail: Option<serde_json::Value>,
    ) {
        self.write_progress(&task.id, &task.progress);
        if let Some(d) = &detail
            && let Err(e) = self.catalog.set_task_detail(&task.id, d)
        {
            tracing::warn!(task = %task.id, "cannot record the task's outcome: {e}");
        }
        if let Err(e) =
            self.catalog
                .finish_task(&task.id, state, error.as_deref(), self.clock.now())
        {
            tracing::error!(task = %task.id, "cannot record the end of the task: {e}");
        }
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task.id);
        self.release(task.instance.as_deref(), &task.id);
    }
}

/// A running task; ends as succeeded or failed, and as failed if dropped
/// without either (the work panicked or was cancelled).
pub struct Task {
    center: Arc<TaskCenter>,
    pub id: String,
    instance: Option<String>,
    pub progress: Arc<TaskProgress>,
    ended: bool,
}

impl Task {
    pub fn succeed(mut self, detail: Option<serde_json::Value>) {
        self.ended = true;
        self.center.end(&self, TaskState::Succeeded, None, detail);
    }

    pub fn fail(mut self, error: String, detail: Option<serde_json::Value>) {
        self.ended = true;
        tracing::warn!(task = %self.id, "task failed: {error}");
        self.center
            .end(&self, TaskState::Failed, Some(error), detail);
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.ended {
            let center = self.center.clone();
            center.end(
                self,
                TaskState::Failed,
                Some("the task stopped before it finished".into()),
                None,
            );
        }
    }
}

pub fn kind_word(k: TaskKind) -> &'static str {
    match k {
        TaskKind::Backup => "backup",
        TaskKind::Restore => "restore",
        TaskKind::Clone => "clone",
        TaskKind::Archive => "archive",
        TaskKind::Sweep => "sweep",
        TaskKind::Download => "download",
    }
}

fn activity_words(a: &Activity) -> &'static str {
    match a {
        Activity::BackingUp { .. } => "backing up",
        Activity::RecoveringByBackup { .. } => "recovering by backup",
        Activity::RecoveringByKey { .. } => "recovering by key",
        Activity::Cloning { .. } => "cloning",
    }
}
