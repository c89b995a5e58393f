//! The store's tests, in one binary: the conformance suite run on every backend, and
//! the SQLite store on a real file.

mod conformance;
mod sqlite;
