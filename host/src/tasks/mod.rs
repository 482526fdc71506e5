//! The task center: every backup, restore, clone, archive and sweep the
//! daemon runs is a task with a state, progress, times and an error, kept
//! in the catalog; and each instance's state (running, backing up,
//! recovering by backup, recovering by key, cloning).
//!
//! Owns: starting and ending tasks, live progress (counters the running
//! work updates, written to the catalog about once a second), the rule
//! that an instance does one thing at a time, and telling the daemon's
//! [`Metrics`] of every task that ends. Must not: run the work itself (the
//! daemon's service does) or know how a backup is taken.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::catalog::{Catalog, CatalogError, TaskKind, TaskQuery, TaskRecord, TaskState};
use crate::metrics::{BackupOutcome, Ended, Gauges, Metrics};
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
    running: Mutex<HashMap<String, Running>>,
    busy: Mutex<HashMap<String, Activity>>,
    metrics: Metrics,
}

/// A task between its start and its end.
struct Running {
    kind: TaskKind,
    progress: Arc<TaskProgress>,
}

impl TaskCenter {
    pub fn new(catalog: Arc<Catalog>, clock: Arc<dyn Clock>) -> Arc<TaskCenter> {
        Arc::new(TaskCenter {
            catalog,
            clock,
            running: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
        })
    }

    /// The metrics text (`GET /metrics`): the counters of tasks that ended,
    /// with the gauges read now from the running tasks and the catalog
    /// (every status of each of `instances`, zero when none). Blocks on
    /// the catalog: call it from `spawn_blocking`.
    pub fn metrics_text(
        &self,
        instances: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<String, CatalogError> {
        let running: Vec<TaskKind> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| r.kind)
            .collect();
        let gauges = Gauges::read(&self.catalog, instances, running)?;
        Ok(self.metrics.render(&gauges))
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
            .insert(
                id.clone(),
                Running {
                    kind: new.kind,
                    progress: progress.clone(),
                },
            );
        Ok(Task {
            center: self.clone(),
            id,
            kind: new.kind,
            instance: new.instance.map(str::to_string),
            started_at: now,
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
            (t.bytes_done, t.bytes_total, t.keys_done) = p.progress.read();
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
            .map(|(k, v)| (k.clone(), v.progress.clone()))
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
        // The instance is free before the end is on record: whoever reads
        // the task as ended may start the next one at once (a console's
        // "backup now" right after the last one succeeded got 409).
        self.release(task.instance.as_deref(), &task.id);
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
        let seconds = self
            .clock
            .now()
            .duration_since(task.started_at)
            .as_secs_f64()
            .max(0.0);
        self.metrics.record(&Ended {
            kind: task.kind,
            instance: task.instance.as_deref(),
            succeeded: state == TaskState::Succeeded,
            seconds,
            backup: self.backup_outcome(task, state, detail.as_ref()),
        });
    }

    /// A backup task's backup, as the catalog holds it when the task ends.
    /// The service names it in the task's outcome (`backup_id`), having
    /// written the row first, so the row says whether a person or the
    /// schedule started it. `None` when the backup failed before its row
    /// was written (or the task was dropped, with no outcome).
    fn backup_outcome(
        &self,
        task: &Task,
        state: TaskState,
        detail: Option<&serde_json::Value>,
    ) -> Option<BackupOutcome> {
        if task.kind != TaskKind::Backup {
            return None;
        }
        let id = detail?.get("backup_id")?.as_str()?;
        match self.catalog.get_backup(id) {
            Ok(Some(b)) => Some(BackupOutcome {
                kind: b.kind,
                stored_bytes: if state == TaskState::Succeeded {
                    b.stored_bytes
                } else {
                    0
                },
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(task = %task.id, "cannot read the backup for the metrics: {e}");
                None
            }
        }
    }
}

/// A running task; ends as succeeded or failed, and as failed if dropped
/// without either (the work panicked or was cancelled).
pub struct Task {
    center: Arc<TaskCenter>,
    pub id: String,
    kind: TaskKind,
    instance: Option<String>,
    started_at: jiff::Timestamp,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::Kind;
    use crate::catalog::BackupStatus;
    use crate::metrics::backup_row;
    use crate::schedule::ManualClock;

    const T0: i64 = 1_700_000_000;

    fn center() -> (Arc<TaskCenter>, ManualClock, Arc<Catalog>) {
        let catalog = Arc::new(Catalog::open_in_memory().unwrap());
        let clock = ManualClock::new(jiff::Timestamp::from_second(T0).unwrap());
        let center = TaskCenter::new(catalog.clone(), Arc::new(clock.clone()));
        (center, clock, catalog)
    }

    fn new_task<'a>(kind: TaskKind, instance: &'a str) -> NewTask<'a> {
        NewTask {
            kind,
            instance: Some(instance),
            backup_id: None,
            activity: Some(|task, _| Activity::BackingUp { task }),
            detail: serde_json::json!({}),
        }
    }

    /// Regression: the soak's back-to-back "backup now" got 409 busy right
    /// after reading the previous task as succeeded, because the end was
    /// recorded before the instance was released.
    #[test]
    fn an_instance_is_free_once_its_task_reads_as_ended() {
        let (center, _clock, _catalog) = center();
        for _ in 0..200 {
            let t = center.start(new_task(TaskKind::Backup, "a")).unwrap();
            let id = t.id.clone();
            let ender = std::thread::spawn(move || t.succeed(None));
            while center.get(&id).unwrap().unwrap().state == TaskState::Running {
                std::hint::spin_loop();
            }
            let next = center.start(new_task(TaskKind::Backup, "a"));
            assert!(
                next.is_ok(),
                "task {id} read as ended, yet the instance was busy"
            );
            ender.join().unwrap();
            next.unwrap().succeed(None);
        }
    }

    #[test]
    fn metrics_count_what_each_task_ended_as() {
        let (center, clock, catalog) = center();
        let secs = |s| std::time::Duration::from_secs(s);

        // A manual backup of `a`, recorded complete by the service before it
        // succeeds, 90 seconds long.
        let t = center.start(new_task(TaskKind::Backup, "a")).unwrap();
        let mut b1 = backup_row("a", "b1", Kind::Manual, T0, BackupStatus::Complete);
        b1.finished_at = Some(jiff::Timestamp::from_second(T0 + 90).unwrap());
        catalog.upsert_backup(&b1).unwrap();
        clock.advance(secs(90));
        t.succeed(Some(serde_json::json!({ "backup_id": "b1" })));

        // An automatic backup of `a` that failed after its row was written.
        let t = center.start(new_task(TaskKind::Backup, "a")).unwrap();
        let b2 = backup_row("a", "b2", Kind::Automatic, T0 + 90, BackupStatus::Failed);
        catalog.upsert_backup(&b2).unwrap();
        clock.advance(secs(10));
        t.fail(
            "boom".into(),
            Some(serde_json::json!({ "backup_id": "b2" })),
        );

        // A backup of `b` dropped before it wrote anything.
        drop(center.start(new_task(TaskKind::Backup, "b")).unwrap());

        center
            .start(new_task(TaskKind::Restore, "a"))
            .unwrap()
            .succeed(None);
        center
            .start(new_task(TaskKind::Clone, "b"))
            .unwrap()
            .fail("no".into(), None);
        let _archiving = center
            .start(NewTask {
                activity: None,
                ..new_task(TaskKind::Archive, "a")
            })
            .unwrap();

        let text = center.metrics_text(["a", "b"]).unwrap();
        let got: Vec<String> = crate::metrics::parse(&text)
            .iter()
            .map(crate::metrics::Sample::line)
            .collect();
        let mut expected: Vec<String> = vec![
            "redback_backups_total{instance=a,kind=automatic,result=failed} 1".into(),
            "redback_backups_total{instance=a,kind=manual,result=succeeded} 1".into(),
            "redback_backups_total{instance=b,kind=unknown,result=failed} 1".into(),
            "redback_backup_stored_bytes_total{instance=a} 4096".into(),
        ];
        for le in crate::metrics::BACKUP_SECONDS_BUCKETS {
            let n = u8::from(le >= 90.0);
            expected.push(format!(
                "redback_backup_duration_seconds_bucket{{instance=a,le={le}}} {n}"
            ));
        }
        expected.extend(
            [
                "redback_backup_duration_seconds_bucket{instance=a,le=+Inf} 1",
                "redback_backup_duration_seconds_sum{instance=a} 90",
                "redback_backup_duration_seconds_count{instance=a} 1",
                "redback_backup_last_success_timestamp_seconds{instance=a} 1700000090",
                "redback_catalog_backups{instance=a,status=complete} 1",
                "redback_catalog_backups{instance=a,status=deleted} 0",
                "redback_catalog_backups{instance=a,status=failed} 1",
                "redback_catalog_backups{instance=a,status=running} 0",
                "redback_catalog_backups{instance=b,status=complete} 0",
                "redback_catalog_backups{instance=b,status=deleted} 0",
                "redback_catalog_backups{instance=b,status=failed} 0",
                "redback_catalog_backups{instance=b,status=running} 0",
                "redback_tasks_total{kind=backup,result=failed} 2",
                "redback_tasks_total{kind=backup,result=succeeded} 1",
                "redback_tasks_total{kind=clone,result=failed} 1",
                "redback_tasks_total{kind=restore,result=succeeded} 1",
                "redback_tasks_running{kind=backup} 0",
                "redback_tasks_running{kind=restore} 0",
                "redback_tasks_running{kind=clone} 0",
                "redback_tasks_running{kind=archive} 1",
                "redback_tasks_running{kind=sweep} 0",
                "redback_tasks_running{kind=download} 0",
            ]
            .map(String::from),
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn counters_do_not_go_down_when_the_sweeper_removes_backups() {
        let (center, _clock, catalog) = center();
        let t = center.start(new_task(TaskKind::Backup, "a")).unwrap();
        catalog
            .upsert_backup(&backup_row(
                "a",
                "b1",
                Kind::Automatic,
                T0,
                BackupStatus::Complete,
            ))
            .unwrap();
        t.succeed(Some(serde_json::json!({ "backup_id": "b1" })));
        let ok =
            "redback_backups_total{instance=\"a\",kind=\"automatic\",result=\"succeeded\"} 1\n";
        assert!(center.metrics_text(["a"]).unwrap().contains(ok));

        catalog.delete_backup("b1").unwrap();
        let text = center.metrics_text(["a"]).unwrap();
        assert!(text.contains(ok), "{text}");
        assert!(text.contains("redback_backup_stored_bytes_total{instance=\"a\"} 4096\n"));
        assert!(text.contains("redback_catalog_backups{instance=\"a\",status=\"complete\"} 0\n"));
        assert!(!text.contains("redback_backup_last_success_timestamp_seconds{"));
    }
}
