//! The task center's records: every backup, restore, clone, archive, sweep
//! and download is a task with a state and progress. What runs when is the
//! task center's business; this file keeps the rows and refuses the one
//! transition that would lose information: changing a task that has ended.

use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{Row, params, params_from_iter};

use super::row::RowReader;
use super::{Catalog, CatalogError, millis};

stored_words! {
    pub enum TaskKind {
        Backup => "backup",
        Restore => "restore",
        Clone => "clone",
        Archive => "archive",
        Sweep => "sweep",
        Download => "download",
    }
}

stored_words! {
    pub enum TaskState {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl TaskState {
    /// Succeeded, failed and cancelled tasks do not change any more.
    pub fn is_ended(self) -> bool {
        !matches!(self, TaskState::Queued | TaskState::Running)
    }
}

/// The error a task left behind by a daemon that stopped gets.
pub const INTERRUPTED_MESSAGE: &str = "the daemon stopped while this task ran";

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    pub kind: TaskKind,
    /// `None` for a task about no one instance (a sweep of all of them).
    pub instance: Option<String>,
    pub backup_id: Option<String>,
    pub state: TaskState,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    pub keys_done: u64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub error: Option<String>,
    /// Free-form: mode, keys, target, the delayed flag, partial object keys
    /// to clean up.
    pub detail: serde_json::Value,
}

impl TaskRecord {
    /// A queued task created now, with no progress and an empty detail.
    pub fn queued(id: impl Into<String>, kind: TaskKind, instance: Option<String>) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            kind,
            instance,
            backup_id: None,
            state: TaskState::Queued,
            bytes_done: 0,
            bytes_total: None,
            keys_done: 0,
            created_at: super::to_stored_precision(Timestamp::now()),
            started_at: None,
            ended_at: None,
            error: None,
            detail: serde_json::json!({}),
        }
    }
}

/// Which tasks to list, newest (by `created_at`) first.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub instance: Option<String>,
    pub kind: Option<TaskKind>,
    pub state: Option<TaskState>,
    /// At most this many (all when `None`).
    pub limit: Option<u32>,
}

const SELECT: &str = "SELECT id, kind, instance, backup_id, state, bytes_done, bytes_total, \
     keys_done, created_at, started_at, ended_at, error, detail FROM tasks";

const UNFINISHED: &str = "state IN ('queued', 'running')";

fn read_task(path: &std::path::Path, row: &Row<'_>) -> Result<TaskRecord, CatalogError> {
    let r = RowReader::new(path, "tasks", row)?;
    let detail: String = r.get(12)?;
    let detail =
        serde_json::from_str(&detail).map_err(|e| r.bad(12, format!("holds invalid JSON: {e}")))?;
    Ok(TaskRecord {
        kind: r.word(1, TaskKind::parse, &TaskKind::expected())?,
        instance: r.get(2)?,
        backup_id: r.get(3)?,
        state: r.word(4, TaskState::parse, &TaskState::expected())?,
        bytes_done: r.size(5)?,
        bytes_total: r.opt_size(6)?,
        keys_done: r.size(7)?,
        created_at: r.time(8)?,
        started_at: r.opt_time(9)?,
        ended_at: r.opt_time(10)?,
        error: r.get(11)?,
        detail,
        id: r.id,
    })
}

impl Catalog {
    fn select_tasks(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<TaskRecord>, CatalogError> {
        self.select_rows(&format!("{SELECT}{sql}"), args, |row| {
            read_task(&self.path, row)
        })
    }

    /// Why a change to task `id` did nothing: it is unknown, or has ended.
    fn task_unchanged(&self, id: &str, action: &'static str) -> CatalogError {
        match self.get_task(id) {
            Ok(Some(task)) => CatalogError::TaskEnded {
                path: self.path.clone(),
                id: id.to_string(),
                state: task.state.as_str(),
                action,
            },
            Ok(None) => self.not_found("task", id),
            Err(e) => e,
        }
    }

    /// Adds a task; an id in use is an error.
    pub fn insert_task(&self, task: &TaskRecord) -> Result<(), CatalogError> {
        let done = self.size_in("task", &task.id, task.bytes_done)?;
        let total = task
            .bytes_total
            .map(|t| self.size_in("task", &task.id, t))
            .transpose()?;
        let keys = self.size_in("task", &task.id, task.keys_done)?;
        let result = self.conn().execute(
            "INSERT INTO tasks (id, kind, instance, backup_id, state, bytes_done, bytes_total, \
             keys_done, created_at, started_at, ended_at, error, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                task.id,
                task.kind.as_str(),
                task.instance,
                task.backup_id,
                task.state.as_str(),
                done,
                total,
                keys,
                millis(task.created_at),
                task.started_at.map(millis),
                task.ended_at.map(millis),
                task.error,
                task.detail.to_string(),
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Err(CatalogError::TaskExists {
                    path: self.path.clone(),
                    id: task.id.clone(),
                })
            }
            Err(e) => Err(self.sql(e)),
        }
    }

    /// Marks a queued task running since `at`.
    pub fn start_task(&self, id: &str, at: Timestamp) -> Result<(), CatalogError> {
        let changed = self
            .conn()
            .execute(
                &format!(
                    "UPDATE tasks SET state = 'running', started_at = coalesce(started_at, ?2) \
                     WHERE id = ?1 AND {UNFINISHED}"
                ),
                params![id, millis(at)],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.task_unchanged(id, "start"));
        }
        Ok(())
    }

    /// Sets the progress of a queued or running task. Returns false, and
    /// changes nothing, when the task has ended already (a last progress
    /// report racing a cancel is not an error); an unknown id is one.
    pub fn update_task_progress(
        &self,
        id: &str,
        bytes_done: u64,
        bytes_total: Option<u64>,
        keys_done: u64,
    ) -> Result<bool, CatalogError> {
        let done = self.size_in("task", id, bytes_done)?;
        let total = bytes_total
            .map(|t| self.size_in("task", id, t))
            .transpose()?;
        let keys = self.size_in("task", id, keys_done)?;
        let changed = self
            .conn()
            .execute(
                &format!(
                    "UPDATE tasks SET bytes_done = ?2, bytes_total = ?3, keys_done = ?4 \
                     WHERE id = ?1 AND {UNFINISHED}"
                ),
                params![id, done, total, keys],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return match self.get_task(id)? {
                Some(_) => Ok(false),
                None => Err(self.not_found("task", id)),
            };
        }
        Ok(true)
    }

    /// Ends a queued or running task now with `state` (succeeded, failed or
    /// cancelled). Ending a task twice is an error, so that a late
    /// "succeeded" cannot overwrite a cancel.
    pub fn finish_task(
        &self,
        id: &str,
        state: TaskState,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<(), CatalogError> {
        if !state.is_ended() {
            return Err(self.bad_input(
                "task",
                id,
                format!("`{state}` is not an end state (succeeded, failed, cancelled)"),
            ));
        }
        let changed = self
            .conn()
            .execute(
                &format!(
                    "UPDATE tasks SET state = ?2, error = ?3, ended_at = ?4 \
                     WHERE id = ?1 AND {UNFINISHED}"
                ),
                params![id, state.as_str(), error, millis(at)],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.task_unchanged(id, "end again"));
        }
        Ok(())
    }

    /// Replaces the free-form detail of a task (ended or not: cleaning up
    /// after a task may record what is left).
    pub fn set_task_detail(
        &self,
        id: &str,
        detail: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE tasks SET detail = ?2 WHERE id = ?1",
                params![id, detail.to_string()],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.not_found("task", id));
        }
        Ok(())
    }

    /// Names the backup a running backup task is writing, once its id is
    /// chosen (before the first byte), so a task cut off by a crash still
    /// says which backup it left behind.
    pub fn set_task_backup_id(&self, id: &str, backup_id: &str) -> Result<(), CatalogError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE tasks SET backup_id = ?2 WHERE id = ?1",
                params![id, backup_id],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.not_found("task", id));
        }
        Ok(())
    }

    pub fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, CatalogError> {
        Ok(self.select_tasks(" WHERE id = ?1", [id])?.pop())
    }

    /// The tasks `q` selects, newest first (by `created_at`, then id).
    pub fn list_tasks(&self, q: &TaskQuery) -> Result<Vec<TaskRecord>, CatalogError> {
        let mut sql = String::from(" WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(instance) = &q.instance {
            sql.push_str(" AND instance = ?");
            args.push(Value::Text(instance.clone()));
        }
        if let Some(kind) = q.kind {
            sql.push_str(" AND kind = ?");
            args.push(Value::Text(kind.as_str().into()));
        }
        if let Some(state) = q.state {
            sql.push_str(" AND state = ?");
            args.push(Value::Text(state.as_str().into()));
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        args.push(Value::Integer(q.limit.map_or(-1, i64::from)));
        self.select_tasks(&sql, params_from_iter(args))
    }

    /// Tasks still queued or running: at start-up, the ones a stopped daemon
    /// left behind, oldest first.
    pub fn interrupted_tasks(&self) -> Result<Vec<TaskRecord>, CatalogError> {
        self.select_tasks(&format!(" WHERE {UNFINISHED} ORDER BY created_at, id"), [])
    }

    /// Ends a task left queued or running as failed with `message` (for
    /// example [`INTERRUPTED_MESSAGE`]). Returns false if it had ended.
    pub fn mark_interrupted(
        &self,
        id: &str,
        message: &str,
        at: Timestamp,
    ) -> Result<bool, CatalogError> {
        let changed = self
            .conn()
            .execute(
                &format!(
                    "UPDATE tasks SET state = 'failed', error = ?2, ended_at = ?3 \
                     WHERE id = ?1 AND {UNFINISHED}"
                ),
                params![id, message, millis(at)],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 && self.get_task(id)?.is_none() {
            return Err(self.not_found("task", id));
        }
        Ok(changed > 0)
    }
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
