//! Group commit: appends that arrive together share one transaction and so one fsync. The
//! queue they wait in ([`AppendQueue`]) serves every backend that has one writer (SQLite here,
//! [`super::postgres`] too); the writer below is SQLite's.
//!
//! One fsync'd SQLite commit costs about a millisecond on the machines we measure on, so a
//! commit per append caps the host near a thousand commands a second however fast the rest is.
//! Here every append is a request to one writer thread that owns the write connection; the
//! thread takes whatever requests are waiting (up to [`MAX_GROUP`]), runs each with its
//! expected-version check — an append of several events inside its own `SAVEPOINT`, one event as
//! one statement, which SQLite applies whole or not at all — and commits the group once. An
//! append whose check fails is taken back (to its savepoint) and refused alone; the others
//! commit. Nobody hears
//! "appended" before the commit that made the append durable (`synchronous = FULL` stays).
//!
//! The thread calls SQLite in place (rusqlite) rather than through sqlx, whose SQLite driver
//! hands every statement to a worker thread over a channel: one hop per group here instead of
//! several per append. It ends when the store (the last sender) is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{Appended, EventStoreError, NewEvent, to_i64, to_u64};

/// Most appends one transaction takes: bounds the time the first of them waits for the commit.
const MAX_GROUP: usize = 512;

/// How long a group waits for more appends before its commit, when the last group held more than
/// one (appends are arriving together; a lone writer never waits), as PostgreSQL's
/// `commit_delay`. The fsync and its write cost the writer about 60 µs of CPU whatever the
/// group's size, and the next group gathers only what arrived meanwhile: at 8,000 commands/s from
/// 32 clients the groups held about two appends.
const COMMIT_DELAY: Duration = Duration::from_micros(500);

/// One append waiting for its group.
pub(super) struct Request {
    pub(super) aggregate_type: String,
    pub(super) aggregate_id: String,
    pub(super) expected_version: u64,
    pub(super) events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Appended, EventStoreError>>,
}

impl Request {
    /// Tell the caller how its append went. A caller that has gone (its request was cancelled)
    /// is not told; the append stands regardless.
    pub(super) fn answer(self, outcome: Result<Appended, EventStoreError>) {
        let _ = self.reply.send(outcome);
    }
}

/// Where appends wait for their group: the sending side of a backend's one writer (the SQLite
/// writer thread here, the PostgreSQL writer task), which takes what is waiting and commits it as one.
pub(super) struct AppendQueue(mpsc::UnboundedSender<Request>);

impl AppendQueue {
    /// A queue and the receiving end its writer drains.
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<Request>) {
        let (requests, receiver) = mpsc::unbounded_channel();
        (Self(requests), receiver)
    }

    /// Append `events` to a stream at `expected_version`, in the writer's next group.
    pub(super) async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, EventStoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            expected_version,
            events: events.to_vec(),
            reply,
        };
        self.0.send(request).map_err(|_| EventStoreError::Backend("the event store's writer stopped".into()))?;
        answer.await.map_err(|_| EventStoreError::Backend("the event store's writer stopped mid-append".into()))?
    }
}

/// The SQLite store's writer thread, and how many groups it committed.
pub(super) struct GroupCommit {
    queue: AppendQueue,
    commits: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Open the write connection to the database at `path` and start the writer thread.
    pub(super) fn start(path: &Path) -> Result<Self, EventStoreError> {
        let conn = open(path).map_err(|e| backend("opening the writer", &e))?;
        let (queue, receiver) = AppendQueue::new();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let name = format!("event-store-writer:{}", path.display());
        std::thread::Builder::new()
            .name("sluice-event-writer".into())
            .spawn(move || write_groups(&conn, receiver, &counted))
            .map_err(|e| EventStoreError::Backend(format!("starting {name}: {e}")))?;
        Ok(Self { queue, commits })
    }

    /// Append `events` to a stream at `expected_version`, in the next group.
    pub(super) async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, EventStoreError> {
        self.queue.append(aggregate_type, aggregate_id, expected_version, events).await
    }

    /// Transactions committed so far (each one fsync), for tests and figures.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(PathBuf::from(path))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL is a property of the file (set when the store opened it); FULL is per connection:
    // a group is on disk before any of its appends is acknowledged.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn backend(what: &str, e: &rusqlite::Error) -> EventStoreError {
    EventStoreError::Backend(format!("{what}: {e}"))
}

/// The writer thread: wait for a request, take the ones waiting behind it, commit them as one.
fn write_groups(conn: &Connection, mut receiver: mpsc::UnboundedReceiver<Request>, commits: &AtomicU64) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut busy = false;
    while let Some(first) = receiver.blocking_recv() {
        group.push(first);
        take_waiting(&mut receiver, &mut group);
        // Appends arrive together: let the group fill a little more before paying the fsync.
        if busy && group.len() < MAX_GROUP {
            std::thread::sleep(COMMIT_DELAY);
            take_waiting(&mut receiver, &mut group);
        }
        busy = group.len() > 1;
        let outcomes = commit_group(conn, &group);
        commits.fetch_add(1, Ordering::Relaxed);
        for (request, outcome) in group.drain(..).zip(outcomes) {
            request.answer(outcome);
        }
    }
}

/// Move the requests waiting now into `group`, up to [`MAX_GROUP`].
fn take_waiting(receiver: &mut mpsc::UnboundedReceiver<Request>, group: &mut Vec<Request>) {
    while group.len() < MAX_GROUP {
        match receiver.try_recv() {
            Ok(request) => group.push(request),
            Err(_) => break,
        }
    }
}

/// Run every request of `group` in one transaction; each decides alone, behind its savepoint.
fn commit_group(conn: &Connection, group: &[Request]) -> Vec<Result<Appended, EventStoreError>> {
    let failed = |e: &rusqlite::Error| group.iter().map(|_| Err(backend("appending", e))).collect();
    if let Err(e) = run(conn, "BEGIN IMMEDIATE") {
        return failed(&e);
    }
    let recorded_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut outcomes = Vec::with_capacity(group.len());
    for request in group {
        match append_one(conn, request, &recorded_at) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return failed(&e);
            }
        }
    }
    match run(conn, "COMMIT") {
        Ok(()) => outcomes,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            failed(&e)
        }
    }
}

/// One append behind a savepoint: `Ok(Err(conflict))` when its expected version is stale (its
/// rows are rolled back, the group goes on); `Err` when SQLite itself failed.
fn append_one(
    conn: &Connection,
    request: &Request,
    recorded_at: &str,
) -> rusqlite::Result<Result<Appended, EventStoreError>> {
    let (kind, id, expected) = (&request.aggregate_type, &request.aggregate_id, request.expected_version);
    let actual = stream_version(conn, kind, id)?;
    if actual != expected {
        return Ok(Err(EventStoreError::Conflict { expected, actual }));
    }
    if request.events.is_empty() {
        return Ok(Ok(Appended::nothing(actual)));
    }
    // One row is one statement, which SQLite applies whole or not at all: a savepoint is needed
    // only to take back the earlier rows of a longer append.
    let savepoint = request.events.len() > 1;
    if savepoint {
        run(conn, "SAVEPOINT append")?;
    }
    let undo =
        |conn: &Connection| if savepoint { conn.execute_batch("ROLLBACK TO append; RELEASE append") } else { Ok(()) };
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (aggregate_type, aggregate_id, version, event_type, schema_version, data, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING position",
    )?;
    let mut positions = Vec::with_capacity(request.events.len());
    for (offset, event) in request.events.iter().enumerate() {
        let version = to_i64(expected + offset as u64 + 1);
        let inserted = insert
            .query_row(
                (kind, id, version, &event.event_type, i64::from(event.schema_version), &event.data, recorded_at),
                |row| row.get::<_, i64>(0),
            )
            .optional();
        match inserted {
            Ok(Some(position)) => positions.push(to_u64(position)),
            // The unique (type, id, version) index: another writer on the same file got there
            // between the check and the insert.
            Ok(None)
            | Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error { code: rusqlite::ErrorCode::ConstraintViolation, .. },
                _,
            )) => {
                undo(conn)?;
                let actual = stream_version(conn, kind, id)?;
                return Ok(Err(EventStoreError::Conflict { expected, actual }));
            }
            Err(e) => {
                undo(conn)?;
                return Err(e);
            }
        }
    }
    if savepoint {
        run(conn, "RELEASE append")?;
    }
    Ok(Ok(Appended { version: expected + request.events.len() as u64, positions, recorded_at: recorded_at.to_owned() }))
}

/// Run a statement of the hot path (SAVEPOINT and RELEASE per append of several events, BEGIN and
/// COMMIT per group) from the connection's statement cache, where `execute_batch` would parse it
/// again each time.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn stream_version(conn: &Connection, kind: &str, id: &str) -> rusqlite::Result<u64> {
    let mut statement = conn.prepare_cached(
        "SELECT COALESCE(MAX(version), 0) FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2",
    )?;
    statement.query_row((kind, id), |row| row.get::<_, i64>(0)).map(to_u64)
}
