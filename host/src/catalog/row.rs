//! Reading a stored row back into typed values, where every failure names
//! the file, table, row and column instead of panicking.

use std::path::Path;

use jiff::Timestamp;
use rusqlite::Row;
use rusqlite::types::FromSql;

use super::CatalogError;

/// One row of `table` whose key is `id`.
pub(super) struct RowReader<'a, 'r> {
    pub path: &'a Path,
    pub table: &'static str,
    pub id: String,
    pub row: &'a Row<'r>,
}

impl RowReader<'_, '_> {
    /// Reads a row whose key is in column 0.
    pub fn new<'a, 'r>(
        path: &'a Path,
        table: &'static str,
        row: &'a Row<'r>,
    ) -> Result<RowReader<'a, 'r>, CatalogError> {
        let mut reader = RowReader {
            path,
            table,
            id: String::from("?"),
            row,
        };
        reader.id = reader.get(0)?;
        Ok(reader)
    }

    fn column_name(&self, idx: usize) -> String {
        self.row
            .as_ref()
            .column_name(idx)
            .map(str::to_string)
            .unwrap_or_else(|_| format!("#{idx}"))
    }

    pub fn bad(&self, idx: usize, problem: impl Into<String>) -> CatalogError {
        CatalogError::BadRow {
            path: self.path.to_path_buf(),
            table: self.table,
            row: self.id.clone(),
            column: self.column_name(idx),
            problem: problem.into(),
        }
    }

    pub fn get<T: FromSql>(&self, idx: usize) -> Result<T, CatalogError> {
        self.row.get(idx).map_err(|e| self.bad(idx, e.to_string()))
    }

    pub fn time(&self, idx: usize) -> Result<Timestamp, CatalogError> {
        let ms: i64 = self.get(idx)?;
        Timestamp::from_millisecond(ms)
            .map_err(|e| self.bad(idx, format!("holds {ms}, not a time: {e}")))
    }

    pub fn opt_time(&self, idx: usize) -> Result<Option<Timestamp>, CatalogError> {
        match self.get::<Option<i64>>(idx)? {
            None => Ok(None),
            Some(_) => self.time(idx).map(Some),
        }
    }

    pub fn size(&self, idx: usize) -> Result<u64, CatalogError> {
        let n: i64 = self.get(idx)?;
        u64::try_from(n).map_err(|_| self.bad(idx, format!("holds {n}, a negative size")))
    }

    pub fn opt_size(&self, idx: usize) -> Result<Option<u64>, CatalogError> {
        match self.get::<Option<i64>>(idx)? {
            None => Ok(None),
            Some(_) => self.size(idx).map(Some),
        }
    }

    /// A text column holding one of an enum's names.
    pub fn word<E>(
        &self,
        idx: usize,
        parse: fn(&str) -> Option<E>,
        expected: &str,
    ) -> Result<E, CatalogError> {
        let text: String = self.get(idx)?;
        parse(&text).ok_or_else(|| self.bad(idx, format!("holds `{text}`, not one of {expected}")))
    }
}
