//! Live projection batches on a SQLite read store, called in place: a batch's statements, its
//! checkpoint and its letter bookkeeping run on a rusqlite connection to the same file, in one
//! transaction, on the blocking thread that already runs the plugin.
//!
//! Why: through sqlx every statement is a hand-off to the connection's worker thread and back
//! (two thread switches), and a live projection issues one or two statements per event. Measured
//! with `scripts/bench --http-bench` (32 clients, the reference projection running), the projection's
//! threads took about a fifth of the host's CPU per command that way. PostgreSQL and MySQL keep
//! sqlx: there a statement is a network round trip either way.
//!
//! The connection writes the same tables in the same SQL dialect as the pool does, with the same
//! pragmas, so the pool's readers (queries, listings) and writers (dead letters, rebuild switches)
//! see one database; SQLite's file locks order the writers, and `BEGIN IMMEDIATE` takes the write
//! lock up front so a batch never fails on upgrading a read lock.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;

use super::{Checkpoint, Dialect, ReadStoreError, dead_letters};
use crate::idle::IdleList;

/// Connections kept for reuse: one per projection batch in flight.
const KEPT: usize = 8;

/// The read store's file and the connections opened to it.
pub struct DirectWriter {
    path: PathBuf,
    idle: IdleList<rusqlite::Connection>,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter").field("path", &self.path).finish_non_exhaustive()
    }
}

fn backend(e: &rusqlite::Error) -> ReadStoreError {
    failed("read store", e)
}

fn failed(what: &str, e: &rusqlite::Error) -> ReadStoreError {
    ReadStoreError::Backend(format!("{what}: {e}"))
}

impl DirectWriter {
    /// For a SQLite read store kept in a file (`url` as the pool opened it); `None` for an
    /// in-memory one, which only the pool's own connections can see.
    pub fn for_url(url: &str) -> Option<Self> {
        let options = SqliteConnectOptions::from_str(url).ok()?;
        let path = crate::event_store::sqlite::file_path(&options)?;
        Some(Self { path, idle: IdleList::new(KEPT) })
    }

    /// A connection for one batch: an idle one, else a new one.
    pub fn take(&self) -> Result<rusqlite::Connection, ReadStoreError> {
        if let Some(conn) = self.idle.take() {
            return Ok(conn);
        }
        let conn = rusqlite::Connection::open(&self.path).map_err(|e| backend(&e))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(|e| backend(&e))?;
        // As the pool's connections (`ReadStore::open`).
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").map_err(|e| backend(&e))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Keep `conn` for the next batch; it must be outside a transaction.
    pub fn give_back(&self, conn: rusqlite::Connection) {
        if conn.is_autocommit() {
            self.idle.give_back(conn);
        }
    }
}

/// Open a batch's transaction on a connection to database `what`, holding the write lock from
/// the start.
pub fn begin(conn: &rusqlite::Connection, what: &str) -> Result<(), ReadStoreError> {
    conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut s| s.execute([])).map(drop).map_err(|e| failed(what, &e))
}

/// Commit, or roll back, the batch's transaction on a connection to database `what`.
pub fn end(conn: &rusqlite::Connection, what: &str, commit: bool) -> Result<(), ReadStoreError> {
    let sql = if commit { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(|e| failed(what, &e));
    if ended.is_err() && !conn.is_autocommit() {
        // A failed COMMIT leaves the transaction open: end it so the connection can be reused.
        let _ = conn.execute_batch("ROLLBACK");
    }
    ended
}

/// [`super::ReadStore::save_checkpoint`], on `conn`.
pub fn save_checkpoint(
    conn: &rusqlite::Connection,
    projection: &str,
    checkpoint: &Checkpoint,
) -> Result<(), ReadStoreError> {
    let mut statement = conn.prepare_cached(&Dialect::Sqlite.upsert_checkpoint_sql()).map_err(|e| backend(&e))?;
    statement
        .execute((
            projection,
            checkpoint.generation,
            i64::try_from(checkpoint.position).unwrap_or(i64::MAX),
            i64::from(checkpoint.schema_version),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ))
        .map_err(|e| backend(&e))?;
    Ok(())
}

/// [`super::ReadStore::remove_letter`], on `conn`.
pub fn remove_letter(conn: &rusqlite::Connection, consumer: &str, position: u64) -> Result<(), ReadStoreError> {
    let mut statement =
        conn.prepare_cached(&dead_letters::remove_letter_sql(Dialect::Sqlite)).map_err(|e| backend(&e))?;
    statement.execute((consumer, i64::try_from(position).unwrap_or(i64::MAX))).map_err(|e| backend(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_store::ReadStore;

    fn checkpoint(position: u64) -> Checkpoint {
        Checkpoint { generation: 1, position, schema_version: 1 }
    }

    #[tokio::test]
    async fn a_file_store_has_a_direct_writer_and_an_in_memory_one_has_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = ReadStore::open(&format!("sqlite://{}", dir.path().join("read.db").display())).await.expect("open");
        assert!(file.direct().is_some());
        // Only the pool's own connections could see an in-memory database.
        assert!(DirectWriter::for_url("sqlite://:memory:").is_none());
        assert!(DirectWriter::for_url("sqlite::memory:").is_none());
    }

    #[tokio::test]
    async fn what_a_batch_commits_the_pool_reads_and_what_it_rolls_back_it_never_sees() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ReadStore::open(&format!("sqlite://{}", dir.path().join("read.db").display())).await.expect("open");
        let writer = store.direct().expect("a direct writer");

        let conn = writer.take().expect("a connection");
        begin(&conn, "read store").expect("begin");
        save_checkpoint(&conn, "p", &checkpoint(7)).expect("checkpoint");
        end(&conn, "read store", true).expect("commit");
        writer.give_back(conn);
        assert_eq!(store.checkpoint("p").await.expect("read"), Some(checkpoint(7)));

        // The same connection again, from the idle list: a rolled-back batch leaves nothing.
        let conn = writer.take().expect("a connection");
        begin(&conn, "read store").expect("begin");
        save_checkpoint(&conn, "p", &checkpoint(9)).expect("checkpoint");
        end(&conn, "read store", false).expect("roll back");
        assert!(conn.is_autocommit(), "the transaction is over");
        writer.give_back(conn);
        assert_eq!(store.checkpoint("p").await.expect("read"), Some(checkpoint(7)));

        // A connection still inside a transaction is not kept (its lock would block every writer).
        let conn = writer.take().expect("a connection");
        begin(&conn, "read store").expect("begin");
        writer.give_back(conn);
        assert!(writer.idle.is_empty());
    }
}
