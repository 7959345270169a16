//! The embedded event store: one SQLite file, one row per event.
//!
//! Appends go through a single writer connection, so positions are assigned and committed in
//! the same order and a reader following the global log never skips an event committed late.
//! The expected-version check is part of the first INSERT, and a unique index on
//! (aggregate type, aggregate id, version) backs it, so two hosts sharing the file still cannot
//! both win. Appends to a file store go through [`group_commit`](super::group_commit): those
//! that arrive together share one transaction and one fsync, each still checked alone.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};

use super::group_commit::{Durability, GroupCommit};
use super::{Appended, EventStore, EventStoreError, LogHead, NewEvent, SchemaCount, StoredEvent, to_i64, to_u64};
use crate::idle::IdleList;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    data            TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, version)
)";

/// The relay's lease and position: one row.
const RELAY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS relay (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    owner       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    position    INTEGER NOT NULL
)";

const COLUMNS: &str = "position, aggregate_type, aggregate_id, version, event_type, schema_version, data, recorded_at";

/// The SQLite event store.
pub struct SqliteEventStore {
    writer: SqlitePool,
    readers: SqlitePool,
    /// `None` for an in-memory store, which only sqlx's own connections can see.
    log: Option<LogReader>,
    /// The group-committing writer of a file store; an in-memory store appends through `writer`.
    group: Option<GroupCommit>,
    /// Published after each append; other processes' appends reach it by polling.
    head: LogHead,
}

/// Reads of the global log, the store's bulk path (projections, rebuilds, the relay): SQLite
/// called in place on a blocking thread, since sqlx hands every row of a result over a channel
/// between threads, which costs more than reading the row.
struct LogReader {
    path: std::path::PathBuf,
    idle: Arc<IdleList<rusqlite::Connection>>,
    /// What the group commit has flushed: nothing past it is handed out.
    durability: Arc<Durability>,
}

/// Idle log connections kept open.
const IDLE_LOG_READERS: usize = 4;

impl LogReader {
    fn connection(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, EventStoreError> {
        let (path, idle, durability) = (self.path.clone(), self.idle.clone(), self.durability.clone());
        let read = move || -> Result<Vec<StoredEvent>, EventStoreError> {
            let conn = match idle.take() {
                Some(conn) => conn,
                None => Self::connection(&path).map_err(log_error)?,
            };
            let mut events = read_log(&conn, after, limit).map_err(log_error)?;
            idle.give_back(conn);
            if let Some(through) = durability.readable_through() {
                events.truncate(events.partition_point(|event| event.global_position <= through));
            }
            Ok(events)
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| EventStoreError::Backend(format!("log reader task failed: {e}")))?
    }
}

fn log_error(e: rusqlite::Error) -> EventStoreError {
    EventStoreError::Backend(format!("reading the log: {e}"))
}

fn read_log(conn: &rusqlite::Connection, after: u64, limit: u32) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"))?;
    let rows = statement.query_map((to_i64(after), i64::from(limit)), |row| {
        Ok(StoredEvent {
            global_position: to_u64(row.get(0)?),
            aggregate_type: row.get(1)?,
            aggregate_id: row.get(2)?,
            version: to_u64(row.get(3)?),
            event_type: row.get(4)?,
            schema_version: u32::try_from(row.get::<_, i64>(5)?).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Integer, Box::new(e))
            })?,
            data: row.get(6)?,
            recorded_at: row.get(7)?,
        })
    })?;
    rows.collect()
}

/// The file a SQLite URL's options name; `None` for an in-memory database, which only the sqlx
/// pool's own connections can see (so nothing may open it a second time in place).
pub fn file_path(options: &SqliteConnectOptions) -> Option<std::path::PathBuf> {
    let path = options.get_filename();
    let in_memory = path.as_os_str() == ":memory:" || path.to_string_lossy().starts_with("file:");
    (!in_memory).then(|| path.to_path_buf())
}

impl SqliteEventStore {
    /// Open (creating if needed) the store at a `sqlite://PATH` URL.
    pub async fn open(url: &str) -> Result<Self, EventStoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed append survives a power cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::query(SCHEMA).execute(&writer).await?;
        sqlx::query(RELAY_SCHEMA).execute(&writer).await?;
        let file = file_path(&options);
        let group = file.as_deref().map(GroupCommit::start).transpose()?;
        let log = file.zip(group.as_ref()).map(|(path, group)| LogReader {
            path,
            idle: Arc::new(IdleList::new(IDLE_LOG_READERS)),
            durability: group.durability().clone(),
        });
        let readers = SqlitePoolOptions::new().max_connections(8).connect_with(options.read_only(true)).await?;
        Ok(Self { writer, readers, log, group, head: LogHead::default() })
    }

    /// Transactions the group-committing writer has committed (`None` for an in-memory store).
    pub fn group_commits(&self) -> Option<u64> {
        self.group.as_ref().map(GroupCommit::commits)
    }

    async fn insert_batch(
        tx: &mut SqliteConnection,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[NewEvent],
        recorded_at: &str,
    ) -> Result<Option<Vec<u64>>, sqlx::Error> {
        let mut positions = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            let version = to_i64(expected_version + offset as u64 + 1);
            // The first row carries the expected-version check, atomically with the write.
            let guard = if offset == 0 {
                " WHERE (SELECT COALESCE(MAX(version), 0) FROM events
                         WHERE aggregate_type = ?1 AND aggregate_id = ?2) = ?3 - 1"
            } else {
                ""
            };
            let sql = format!(
                "INSERT INTO events (aggregate_type, aggregate_id, version, event_type, schema_version, data, recorded_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7{guard} RETURNING position"
            );
            let row = sqlx::query(&sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(version)
                .bind(&event.event_type)
                .bind(i64::from(event.schema_version))
                .bind(&event.data)
                .bind(recorded_at)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some(row) => positions.push(to_u64(row.try_get::<i64, _>(0)?)),
                None => return Ok(None),
            }
        }
        Ok(Some(positions))
    }

    /// Append and commit; the caller publishes the new head.
    async fn append_committed(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, EventStoreError> {
        if let Some(group) = &self.group {
            return group.append(aggregate_type, aggregate_id, expected_version, events).await;
        }
        if events.is_empty() {
            let actual = self.stream_version(aggregate_type, aggregate_id).await?;
            return if actual == expected_version {
                Ok(Appended::nothing(actual))
            } else {
                Err(EventStoreError::Conflict { expected: expected_version, actual })
            };
        }
        let mut tx = self.writer.begin().await?;
        let recorded_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let inserted =
            Self::insert_batch(&mut tx, aggregate_type, aggregate_id, expected_version, events, &recorded_at).await;
        match inserted {
            Ok(Some(positions)) => {
                tx.commit().await?;
                Ok(Appended { version: expected_version + events.len() as u64, positions, recorded_at })
            }
            Ok(None) => {
                tx.rollback().await?;
                let actual = self.stream_version(aggregate_type, aggregate_id).await?;
                Err(EventStoreError::Conflict { expected: expected_version, actual })
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tx.rollback().await?;
                let actual = self.stream_version(aggregate_type, aggregate_id).await?;
                Err(EventStoreError::Conflict { expected: expected_version, actual })
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, EventStoreError> {
        let appended = self.append_committed(aggregate_type, aggregate_id, expected_version, events).await?;
        if let Some(&last) = appended.positions.last() {
            self.head.advanced(last);
        }
        Ok(appended)
    }

    fn log_head(&self) -> &LogHead {
        &self.head
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events
             WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND version > ?3 AND version <= ?4
             ORDER BY version"
        );
        let rows = sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(to_i64(after_version))
            .bind(to_version.map_or(i64::MAX, to_i64))
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(to_event).collect()
    }

    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, EventStoreError> {
        if let Some(log) = &self.log {
            return log.read_all(after, limit).await;
        }
        let sql = format!("SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2");
        let rows = sqlx::query(&sql).bind(to_i64(after)).bind(i64::from(limit)).fetch_all(&self.readers).await?;
        rows.iter().map(to_event).collect()
    }

    async fn schema_counts(&self, through: u64) -> Result<Vec<SchemaCount>, EventStoreError> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT aggregate_type, event_type, schema_version, COUNT(*) FROM events \
             WHERE position <= ?1 GROUP BY aggregate_type, event_type, schema_version \
             ORDER BY aggregate_type, event_type, schema_version",
        )
        .bind(to_i64(through))
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(aggregate_type, event_type, schema_version, count)| SchemaCount {
                aggregate_type,
                event_type,
                schema_version: u32::try_from(schema_version).unwrap_or(0),
                count: to_u64(count),
            })
            .collect())
    }

    async fn head_position(&self) -> Result<u64, EventStoreError> {
        let head: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(&self.readers).await?;
        let readable = self.log.as_ref().and_then(|log| log.durability.readable_through());
        Ok(readable.map_or(to_u64(head), |through| through.min(to_u64(head))))
    }

    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64, EventStoreError> {
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_one(&self.readers)
        .await?;
        Ok(to_u64(version))
    }

    async fn claim_relay(&self, owner: &str, lease: Duration) -> Result<Option<u64>, EventStoreError> {
        let (now, expires_at) = super::lease_expiry(lease);
        // The upsert's WHERE keeps a live lease of another owner; then no row comes back.
        let position: Option<i64> = sqlx::query_scalar(
            "INSERT INTO relay (id, owner, expires_at, position) VALUES (1, ?1, ?2, 0)
             ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
             WHERE relay.owner = excluded.owner OR relay.expires_at < ?3
             RETURNING position",
        )
        .bind(owner)
        .bind(expires_at)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(position.map(to_u64))
    }

    async fn save_relay_position(&self, owner: &str, position: u64, lease: Duration) -> Result<bool, EventStoreError> {
        let (_, expires_at) = super::lease_expiry(lease);
        let saved =
            sqlx::query("UPDATE relay SET position = max(position, ?1), expires_at = ?2 WHERE id = 1 AND owner = ?3")
                .bind(to_i64(position))
                .bind(expires_at)
                .bind(owner)
                .execute(&self.writer)
                .await?;
        Ok(saved.rows_affected() == 1)
    }

    async fn relay_position(&self) -> Result<u64, EventStoreError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM relay WHERE id = 1").fetch_optional(&self.readers).await?;
        Ok(position.map_or(0, to_u64))
    }
}

fn to_event(row: &SqliteRow) -> Result<StoredEvent, EventStoreError> {
    Ok(StoredEvent {
        global_position: to_u64(row.try_get("position")?),
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        version: to_u64(row.try_get("version")?),
        event_type: row.try_get("event_type")?,
        schema_version: u32::try_from(row.try_get::<i64, _>("schema_version")?)
            .map_err(|_| EventStoreError::Backend("schema_version out of range".into()))?,
        data: row.try_get("data")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

#[cfg(test)]
mod tests {
    //! What only SQLite has (group commit, two stores on one file); the contract every
    //! backend keeps is `host/tests/event_store_contract.rs`.
    use super::*;

    fn event(n: u32) -> NewEvent {
        NewEvent { event_type: "Happened".into(), schema_version: 1, data: format!("{{\"n\":{n}}}") }
    }

    async fn store() -> (tempfile::TempDir, SqliteEventStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        let store = SqliteEventStore::open(&url).await.expect("open store");
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn appends_that_arrive_together_share_a_commit_and_a_conflict_refuses_only_its_own() {
        let (_dir, store) = store().await;
        let store = std::sync::Arc::new(store);
        store.append("T", "contested", 0, &[event(0)]).await.expect("append");
        let before = store.group_commits().expect("a file store commits in groups");
        // 200 appends at once: 150 to fresh streams, 50 stale ones to a stream at version 1.
        let tasks: Vec<_> = (0..200u32)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    if n % 4 == 0 {
                        store.append("T", "contested", 0, &[event(n)]).await
                    } else {
                        store.append("T", &format!("s{n}"), 0, &[event(n), event(n + 1000)]).await
                    }
                })
            })
            .collect();
        let (mut appended, mut refused) = (Vec::new(), 0);
        for task in tasks {
            match task.await.expect("join") {
                Ok(done) => appended.push(done),
                Err(EventStoreError::Conflict { expected: 0, actual: 1 }) => refused += 1,
                Err(e) => panic!("unexpected failure: {e}"),
            }
        }
        assert_eq!((appended.len(), refused), (150, 50));
        let commits = store.group_commits().expect("commits") - before;
        assert!(commits < 150, "150 appends took {commits} commits: nothing was grouped");
        // Every acknowledged append is in the log, its two events adjacent and in order.
        let log = store.read_all(0, 1000).await.expect("read");
        assert_eq!(log.len(), 1 + 150 * 2);
        let mut positions: Vec<u64> = appended.iter().flat_map(|a| a.positions.clone()).collect();
        positions.sort_unstable();
        assert_eq!(positions, (2..=301).collect::<Vec<u64>>());
        for done in &appended {
            assert_eq!(done.version, 2);
            assert_eq!(done.positions[1], done.positions[0] + 1);
        }
        assert_eq!(store.stream_version("T", "contested").await.expect("version"), 1);
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_file_cannot_win_the_same_version() {
        let (dir, first) = store().await;
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        let second = SqliteEventStore::open(&url).await.expect("open again");
        first.append("T", "a", 0, &[event(1)]).await.expect("append");
        let lost = second.append("T", "a", 0, &[event(2)]).await;
        assert!(matches!(lost, Err(EventStoreError::Conflict { expected: 0, actual: 1 })), "{lost:?}");
        second.append("T", "a", 1, &[event(2)]).await.expect("append at the new version");
        assert_eq!(first.read_stream("T", "a", 0, None).await.expect("read").len(), 2);
    }
}
