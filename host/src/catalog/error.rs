//! The catalog's one error type. Every message names the catalog file
//! (`:memory:` for an in-memory catalog), and a bad value read back names
//! its table, row and column, so that a damaged file is found, not guessed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {}: cannot create its folder: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("catalog {}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "catalog {} has schema version {found}, newer than this redback knows ({known}); \
         run a newer redback, or move the file aside and let the daemon rebuild the \
         catalog from storage (tasks, schedule log and policies kept only there are lost)",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("catalog {}: migration to schema version {version} failed: {source}", path.display())]
    Migrate {
        path: PathBuf,
        version: i64,
        source: rusqlite::Error,
    },

    #[error("catalog {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// A stored value this code cannot read back (hand-edited or written by
    /// a buggy version).
    #[error("catalog {}: table {table}, row `{row}`: column {column} {problem}", path.display())]
    BadRow {
        path: PathBuf,
        table: &'static str,
        row: String,
        column: String,
        problem: String,
    },

    /// A value handed in that the catalog cannot store faithfully.
    #[error("catalog {}: {what} `{id}`: {problem}", path.display())]
    BadInput {
        path: PathBuf,
        what: &'static str,
        id: String,
        problem: String,
    },

    #[error("catalog {}: no {what} `{id}`", path.display())]
    NotFound {
        path: PathBuf,
        what: &'static str,
        id: String,
    },

    #[error("catalog {}: task `{id}` already exists", path.display())]
    TaskExists { path: PathBuf, id: String },

    #[error("catalog {}: task `{id}` has already ended ({state}); it cannot {action}", path.display())]
    TaskEnded {
        path: PathBuf,
        id: String,
        state: &'static str,
        action: &'static str,
    },
}
