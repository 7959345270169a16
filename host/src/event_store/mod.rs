//! The event store: the append-only source of truth, one stream per aggregate.
//!
//! [`EventStore`] is the contract every backend keeps: an atomic batch append that checks the
//! expected version in the database itself (so two tasks or two hosts can never both win), and a
//! global log in commit order for replays, projections and the relay. Backends: [`sqlite`] (the
//! embedded default), [`mongodb`] (scale-out; keeps the same contract without multi-document
//! transactions, so it also runs on FerretDB) and [`postgres`]. Each groups the appends that
//! arrive together into one commit, and publishes the head of its log ([`head`]): what wakes the
//! followers, whichever host appended. `host/tests/event_store_contract.rs` runs one suite
//! against all.

pub mod census;
mod group_commit;
pub mod head;
pub mod mongodb;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

pub use census::SchemaCensus;
pub use head::{DEFAULT_POLL, LogHead};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1 for the first event of a stream, then without gaps.
    pub version: u64,
    /// Position in the global log; increases in commit order.
    #[serde(rename = "position")]
    pub global_position: u64,
    pub event_type: String,
    pub schema_version: u32,
    /// JSON text.
    #[serde(skip)]
    pub data: String,
    /// RFC 3339.
    pub recorded_at: String,
}

/// The JSON envelope of an event: what the events route returns and the bus carries.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub version: u64,
    pub position: u64,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub data: &'a RawValue,
    pub recorded_at: &'a str,
}

/// The envelope read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedEnvelope {
    aggregate_type: String,
    aggregate_id: String,
    version: u64,
    position: u64,
    event_type: String,
    schema_version: u32,
    data: Box<RawValue>,
    recorded_at: String,
}

impl StoredEvent {
    /// The event's envelope; fails only if the stored data is not JSON (it is checked on append).
    pub fn envelope(&self) -> Result<EventEnvelope<'_>, serde_json::Error> {
        Ok(EventEnvelope {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            version: self.version,
            position: self.global_position,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: serde_json::from_str(&self.data)?,
            recorded_at: &self.recorded_at,
        })
    }

    /// The envelope as JSON text, appended to `out`: the bytes `serde_json::to_vec(&self.envelope()?)`
    /// gives, written without parsing `data` again. For the relay, which publishes every event:
    /// the data was checked to be JSON when it was appended.
    pub fn write_envelope(&self, out: &mut Vec<u8>) {
        // Writing JSON text into a Vec cannot fail.
        let text = |out: &mut Vec<u8>, value: &str| {
            let _ = serde_json::to_writer(&mut *out, value);
        };
        let mut numbers = itoa::Buffer::new();
        out.extend_from_slice(b"{\"aggregateType\":");
        text(out, &self.aggregate_type);
        out.extend_from_slice(b",\"aggregateId\":");
        text(out, &self.aggregate_id);
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(numbers.format(self.version).as_bytes());
        out.extend_from_slice(b",\"position\":");
        out.extend_from_slice(numbers.format(self.global_position).as_bytes());
        out.extend_from_slice(b",\"eventType\":");
        text(out, &self.event_type);
        out.extend_from_slice(b",\"schemaVersion\":");
        out.extend_from_slice(numbers.format(self.schema_version).as_bytes());
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data.trim().as_bytes());
        out.extend_from_slice(b",\"recordedAt\":");
        text(out, &self.recorded_at);
        out.push(b'}');
    }

    /// The event an envelope (as JSON bytes) carries.
    pub fn from_envelope(json: &[u8]) -> Result<Self, serde_json::Error> {
        let e: OwnedEnvelope = serde_json::from_slice(json)?;
        Ok(Self {
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            version: e.version,
            global_position: e.position,
            event_type: e.event_type,
            schema_version: e.schema_version,
            data: e.data.get().to_owned(),
            recorded_at: e.recorded_at,
        })
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u32,
    /// JSON text.
    pub data: String,
}

/// What a successful append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append.
    pub version: u64,
    /// Global positions of the appended events, in order.
    pub positions: Vec<u64>,
    /// When the events were recorded (RFC 3339, the `recorded_at` every one of them carries);
    /// empty when there were none.
    pub recorded_at: String,
}

impl Appended {
    /// An append of no events to a stream at `version`.
    pub fn nothing(version: u64) -> Self {
        Self { version, positions: Vec::new(), recorded_at: String::new() }
    }
}

/// How many stored events share an aggregate type, event type and schema version: what the
/// deploy-time check compares with what a plugin can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaCount {
    pub aggregate_type: String,
    pub event_type: String,
    pub schema_version: u32,
    pub count: u64,
}

/// Why an append or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// Another writer appended first: the caller may re-read and decide again.
    #[error("expected version {expected} but the stream is at version {actual}")]
    Conflict { expected: u64, actual: u64 },
    /// The store is unreachable or failed: the host's fault, not the caller's.
    #[error("event store failure: {0}")]
    Backend(String),
    /// The configured URL names no backend this build has.
    #[error("{0}")]
    Unsupported(String),
}

impl From<sqlx::Error> for EventStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

/// The event store contract.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Append `events` to a stream atomically if the stream is at `expected_version`
    /// (0 = the stream must not exist yet). All or nothing.
    async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, EventStoreError>;

    /// The stream's events with `version > after_version`, in order, up to `to_version` if given.
    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<StoredEvent>, EventStoreError>;

    /// Up to `limit` events of the global log with `position > after`, in position order, with
    /// no gap. Another process's newest commits may show here a little late (MongoDB: once that
    /// process has published its hint, a fifth of a second; see its `EndProbes`);
    /// [`Self::head_position`] is not late.
    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, EventStoreError>;

    /// The position of the last committed event (0 when the store is empty).
    async fn head_position(&self) -> Result<u64, EventStoreError>;

    /// The log's head as far as this store can tell cheaply, for status, lag and polling: never
    /// past [`Self::head_position`], and behind it only by another process's newest commits,
    /// for no longer than [`Self::read_all`] may be (MongoDB: see its `EndProbes`, where the
    /// exact head costs FerretDB a scan of the log). The exact head by default.
    async fn known_head(&self) -> Result<u64, EventStoreError> {
        self.head_position().await
    }

    /// The stream's current version (0 when empty).
    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64, EventStoreError>;

    /// Take the relay lease for `owner` for `lease` if it is free, expired or already `owner`'s,
    /// and return the relay's saved position; `None` while another owner holds it. The lease keeps
    /// two hosts sharing the store from publishing the log at once.
    async fn claim_relay(&self, owner: &str, lease: Duration) -> Result<Option<u64>, EventStoreError>;

    /// Save the relay's position (it never moves back) and renew the lease, if `owner` still
    /// holds it; `false` when another owner took it over.
    async fn save_relay_position(&self, owner: &str, position: u64, lease: Duration) -> Result<bool, EventStoreError>;

    /// The relay's saved position: every event up to it has been acknowledged by the bus
    /// (0 before the first save).
    async fn relay_position(&self) -> Result<u64, EventStoreError>;

    /// The number of stored events at positions up to `through` per (aggregate type, event
    /// type, schema version), sorted by those three. A scan of the store: [`census`] calls it
    /// once and then follows the log.
    async fn schema_counts(&self, through: u64) -> Result<Vec<SchemaCount>, EventStoreError>;

    /// The head of the log as this store instance knows it (see [`head`]).
    fn log_head(&self) -> &LogHead;

    /// Follow the log's head: the receiver changes once events past what it last saw are
    /// committed, by this host or (as the backend hears of them) by another.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.log_head().subscribe()
    }
}

/// Milliseconds since the Unix epoch, `lease` from now: when a relay lease taken now expires.
pub(crate) fn lease_expiry(lease: Duration) -> (i64, i64) {
    let now = chrono::Utc::now().timestamp_millis();
    (now, now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)))
}

/// Open the event store a URL names; its head is polled every [`DEFAULT_POLL`].
pub async fn open(url: &str) -> Result<Arc<dyn EventStore>, EventStoreError> {
    open_polling(url, DEFAULT_POLL).await
}

/// Open the event store a URL names and read its head every `poll` (other processes' appends;
/// PostgreSQL is also told of them at once).
pub async fn open_polling(url: &str, poll: Duration) -> Result<Arc<dyn EventStore>, EventStoreError> {
    let store: Arc<dyn EventStore> = if url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteEventStore::open(url).await?)
    } else if url.starts_with("mongodb:") || url.starts_with("mongodb+srv:") {
        Arc::new(self::mongodb::MongoEventStore::open(url).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(postgres::PostgresEventStore::open(url).await?)
    } else {
        return Err(EventStoreError::Unsupported(format!(
            "--event-store {url:?}: expected a sqlite://, mongodb:// or postgres:// URL"
        )));
    };
    head::poll(&store, poll);
    Ok(store)
}

// Both backends store integers as i64; versions and positions never come near the limit.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_reads_back_as_the_event() {
        let event = StoredEvent {
            aggregate_type: "Thing".into(),
            aggregate_id: "t-1".into(),
            version: 3,
            global_position: 42,
            event_type: "ThingMoved".into(),
            schema_version: 2,
            data: r#"{"to":"here","by":1.50}"#.into(),
            recorded_at: "2026-01-01T00:00:00.000000Z".into(),
        };
        let json = serde_json::to_vec(&event.envelope().expect("JSON data")).expect("serialise");
        let text = String::from_utf8_lossy(&json);
        assert!(text.contains(r#""position":42"#) && text.contains(r#""by":1.50"#), "{text}");
        assert_eq!(StoredEvent::from_envelope(&json).expect("envelope"), event);
        assert!(StoredEvent::from_envelope(b"{}").is_err());
    }

    #[test]
    fn the_written_envelope_is_the_serialised_one() {
        let event = StoredEvent {
            aggregate_type: "Th\"ing".into(),
            aggregate_id: "t-1\\ é\u{1}".into(),
            version: u64::MAX,
            global_position: 0,
            event_type: "ThingMoved".into(),
            schema_version: u32::MAX,
            data: " {\"to\":[\"here\", null],\"by\":1.50}\n".into(),
            recorded_at: "2026-01-01T00:00:00.000000Z".into(),
        };
        let mut written = Vec::new();
        event.write_envelope(&mut written);
        let serialised = serde_json::to_vec(&event.envelope().expect("JSON data")).expect("serialise");
        assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&serialised));
    }
}
