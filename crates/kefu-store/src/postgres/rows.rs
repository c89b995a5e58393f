//! How a PostgreSQL row is read, column by column; the column lists and the readers
//! that build the model from them are shared with SQLite (`columns.rs`).

use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use crate::columns::Columns;
use crate::model::Digest;

impl Columns for Row {
    type Error = tokio_postgres::Error;

    fn int(&self, at: usize) -> Result<i64, Self::Error> {
        self.try_get(at)
    }

    fn opt_int(&self, at: usize) -> Result<Option<i64>, Self::Error> {
        self.try_get(at)
    }

    fn text(&self, at: usize) -> Result<String, Self::Error> {
        self.try_get(at)
    }

    fn opt_text(&self, at: usize) -> Result<Option<String>, Self::Error> {
        self.try_get(at)
    }

    fn flag(&self, at: usize) -> Result<bool, Self::Error> {
        self.try_get(at)
    }

    fn digest(&self, at: usize) -> Result<Digest, Self::Error> {
        Ok(super::digest(self.try_get(at)?))
    }

    fn json<T: DeserializeOwned + Default>(&self, at: usize) -> Result<T, Self::Error> {
        Ok(self
            .try_get::<_, Json<T>>(at)
            .map(|json| json.0)
            .unwrap_or_default())
    }
}
