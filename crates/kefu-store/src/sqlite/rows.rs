//! How an SQLite row is read, column by column; the column lists and the readers that
//! build the model from them are shared with PostgreSQL (`columns.rs`).

use serde::de::DeserializeOwned;

use crate::columns::Columns;
use crate::model::Digest;

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn int(&self, at: usize) -> rusqlite::Result<i64> {
        self.get(at)
    }

    fn opt_int(&self, at: usize) -> rusqlite::Result<Option<i64>> {
        self.get(at)
    }

    fn text(&self, at: usize) -> rusqlite::Result<String> {
        self.get(at)
    }

    fn opt_text(&self, at: usize) -> rusqlite::Result<Option<String>> {
        self.get(at)
    }

    fn flag(&self, at: usize) -> rusqlite::Result<bool> {
        self.get(at)
    }

    fn digest(&self, at: usize) -> rusqlite::Result<Digest> {
        self.get(at)
    }

    fn json<T: DeserializeOwned + Default>(&self, at: usize) -> rusqlite::Result<T> {
        Ok(serde_json::from_str(&self.get::<_, String>(at)?).unwrap_or_default())
    }
}

/// A value as a JSON column holds it.
pub(super) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
