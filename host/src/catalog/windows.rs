//! The scheduler's window log: one row per (instance, window) once the
//! window is over for the scheduler, so that a restarted daemon does not run
//! a window's backup twice. Which windows exist and when one counts as done
//! is the scheduler's business.

use jiff::Timestamp;
use rusqlite::params;

use super::row::RowReader;
use super::{Catalog, CatalogError, millis};

stored_words! {
    pub enum WindowOutcome {
        Succeeded => "succeeded",
        /// Every attempt inside the window failed.
        Failed => "failed",
        /// The window passed without a start (daemon down, queue full).
        Missed => "missed",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRecord {
    pub instance: String,
    pub window_id: String,
    pub outcome: WindowOutcome,
    pub attempts: u32,
    pub message: Option<String>,
    pub at: Timestamp,
}

impl Catalog {
    /// Whether the window has an outcome recorded (any outcome).
    pub fn window_done(&self, instance: &str, window_id: &str) -> Result<bool, CatalogError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM schedule_windows WHERE instance = ?1 AND window_id = ?2)",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_row([instance, window_id], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    /// Records the window's outcome now, replacing an earlier one.
    pub fn record_window(
        &self,
        instance: &str,
        window_id: &str,
        outcome: WindowOutcome,
        attempts: u32,
        message: Option<&str>,
    ) -> Result<(), CatalogError> {
        self.conn()
            .execute(
                "INSERT INTO schedule_windows (instance, window_id, outcome, attempts, message, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (instance, window_id) DO UPDATE SET outcome = excluded.outcome, \
                 attempts = excluded.attempts, message = excluded.message, at = excluded.at",
                params![
                    instance,
                    window_id,
                    outcome.as_str(),
                    attempts,
                    message,
                    millis(Timestamp::now())
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The recorded outcome of a window.
    pub fn get_window(
        &self,
        instance: &str,
        window_id: &str,
    ) -> Result<Option<WindowRecord>, CatalogError> {
        let rows = self.select_rows(
            "SELECT instance || '/' || window_id, instance, window_id, outcome, attempts, \
             message, at FROM schedule_windows WHERE instance = ?1 AND window_id = ?2",
            [instance, window_id],
            |row| {
                let r = RowReader::new(&self.path, "schedule_windows", row)?;
                let attempts: i64 = r.get(4)?;
                Ok(WindowRecord {
                    instance: r.get(1)?,
                    window_id: r.get(2)?,
                    outcome: r.word(3, WindowOutcome::parse, &WindowOutcome::expected())?,
                    attempts: u32::try_from(attempts)
                        .map_err(|_| r.bad(4, format!("holds {attempts}, not a count")))?,
                    message: r.get(5)?,
                    at: r.time(6)?,
                })
            },
        )?;
        Ok(rows.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_done_once_recorded_with_any_outcome() {
        let cat = Catalog::open_in_memory().unwrap();
        assert!(!cat.window_done("orders", "2026-11-21T02:00").unwrap());
        assert_eq!(cat.get_window("orders", "2026-11-21T02:00").unwrap(), None);
        let before = super::super::to_stored_precision(Timestamp::now());
        cat.record_window(
            "orders",
            "2026-11-21T02:00",
            WindowOutcome::Failed,
            3,
            Some("refused"),
        )
        .unwrap();
        cat.record_window("orders", "2026-11-22T02:00", WindowOutcome::Missed, 0, None)
            .unwrap();
        assert!(cat.window_done("orders", "2026-11-21T02:00").unwrap());
        assert!(cat.window_done("orders", "2026-11-22T02:00").unwrap());
        // Scoped by instance and window.
        assert!(!cat.window_done("users", "2026-11-21T02:00").unwrap());
        assert!(!cat.window_done("orders", "2026-11-23T02:00").unwrap());
        let w = cat
            .get_window("orders", "2026-11-21T02:00")
            .unwrap()
            .unwrap();
        assert_eq!(w.outcome, WindowOutcome::Failed);
        assert_eq!(w.attempts, 3);
        assert_eq!(w.message.as_deref(), Some("refused"));
        assert!(w.at >= before, "{} < {before}", w.at);
        // A later outcome replaces the earlier one.
        cat.record_window(
            "orders",
            "2026-11-21T02:00",
            WindowOutcome::Succeeded,
            4,
            None,
        )
        .unwrap();
        let w = cat
            .get_window("orders", "2026-11-21T02:00")
            .unwrap()
            .unwrap();
        assert_eq!(
            (w.outcome, w.attempts, w.message),
            (WindowOutcome::Succeeded, 4, None)
        );
    }

    #[test]
    fn an_unknown_outcome_in_the_file_is_an_error_naming_the_row() {
        let cat = Catalog::open_in_memory().unwrap();
        cat.conn()
            .execute(
                "INSERT INTO schedule_windows VALUES ('orders', 'w9', 'exploded', 1, NULL, 0)",
                [],
            )
            .unwrap();
        let err = cat.get_window("orders", "w9").unwrap_err().to_string();
        assert!(err.contains("schedule_windows"), "{err}");
        assert!(err.contains("orders/w9"), "{err}");
        assert!(err.contains("`exploded`"), "{err}");
        assert!(err.contains("succeeded | failed | missed"), "{err}");
    }
}
