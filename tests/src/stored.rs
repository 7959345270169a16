//! Events written straight into an event store, as an earlier plugin version (or another host)
//! left them, and read back as stored: for the upcasting and deploy-check tests, which must
//! show that old events are read in their current shape while the rows themselves never change.
//!
//! Both backends are written in the host's own layout (docs in `host/src/event_store/`): the
//! SQLite `events` table, and MongoDB's `commits` collection, one document per commit. Write
//! while no host runs on the store (before it starts, or after it stopped).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use mongodb::bson::{Document, doc};

/// One event to write: a stream's next event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
    pub event_type: String,
    pub schema_version: u32,
    /// JSON text, stored as is.
    pub data: String,
    pub recorded_at: String,
}

impl RawEvent {
    pub fn new(aggregate_type: &str, aggregate_id: &str, version: u64, event_type: &str, schema_version: u32) -> Self {
        Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version,
            event_type: event_type.to_owned(),
            schema_version,
            data: "{}".to_owned(),
            recorded_at: "2025-06-01T10:00:00.000Z".to_owned(),
        }
    }

    pub fn data(mut self, data: &str) -> Self {
        self.data = data.to_owned();
        self
    }
}

/// An event as read back: (position, the event).
pub type Stored = (u64, RawEvent);

/// The SQLite event store of a host's data folder (`<data>/events.db`, created by a first start).
pub fn sqlite_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("events.db")
}

/// Append `events` at the end of the SQLite store's log, in order; answers their positions.
pub fn sqlite_append(db: &Path, events: &[RawEvent]) -> Result<Vec<u64>> {
    let mut conn =
        rusqlite::Connection::open(db).with_context(|| format!("failed to open the event store {}", db.display()))?;
    let tx = conn.transaction()?;
    let mut positions = Vec::new();
    for e in events {
        tx.execute(
            "INSERT INTO events (aggregate_type, aggregate_id, version, event_type, schema_version, data, recorded_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                e.aggregate_type,
                e.aggregate_id,
                i64::try_from(e.version)?,
                e.event_type,
                e.schema_version,
                e.data,
                e.recorded_at
            ],
        )
        .context("failed to write an event")?;
        positions.push(u64::try_from(tx.last_insert_rowid())?);
    }
    tx.commit()?;
    Ok(positions)
}

/// Every event of the SQLite store, in log order.
pub fn sqlite_events(db: &Path) -> Result<Vec<Stored>> {
    let conn = rusqlite::Connection::open(db)?;
    let mut statement = conn.prepare(
        "SELECT position, aggregate_type, aggregate_id, version, event_type, schema_version, data, recorded_at \
         FROM events ORDER BY position",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            RawEvent {
                aggregate_type: row.get(1)?,
                aggregate_id: row.get(2)?,
                version: u64::try_from(row.get::<_, i64>(3)?).unwrap_or_default(),
                event_type: row.get(4)?,
                schema_version: row.get(5)?,
                data: row.get(6)?,
                recorded_at: row.get(7)?,
            },
        ))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (position, event) = row?;
        events.push((u64::try_from(position)?, event));
    }
    Ok(events)
}

async fn mongo_commits(url: &str) -> Result<mongodb::Collection<Document>> {
    let client = mongodb::Client::with_uri_str(url).await.context("failed to connect to MongoDB")?;
    let db = client.default_database().context("the MongoDB URL names no database")?;
    Ok(db.collection("commits"))
}

/// Write `events` into the (empty) MongoDB store at `url` from position 1, one commit per event,
/// in the host's layout; answers their positions.
pub async fn mongo_write(url: &str, events: &[RawEvent]) -> Result<Vec<u64>> {
    let commits = mongo_commits(url).await?;
    ensure!(commits.count_documents(doc! {}).await? == 0, "the MongoDB store at {url} is not empty");
    let documents =
        events.iter().zip(1_i64..).map(|(e, position)| commit_document(e, position)).collect::<Result<Vec<_>>>()?;
    commits.insert_many(documents).await.context("failed to write the commits")?;
    Ok((1..=events.len() as u64).collect())
}

/// One event's commit at `position`, in the host's layout.
fn commit_document(e: &RawEvent, position: i64) -> Result<Document> {
    let version = i64::try_from(e.version)?;
    Ok(doc! {
        "_id": format!("{position:020}"),
        "first_position": position,
        "last_position": position,
        "aggregate_type": &e.aggregate_type,
        "aggregate_id": &e.aggregate_id,
        "start": version,
        "end": version,
        "recorded_at": &e.recorded_at,
        "events": [{
            "version": version,
            "position": position,
            "event_type": &e.event_type,
            "schema_version": i64::from(e.schema_version),
            "data": &e.data,
            "recorded_at": &e.recorded_at,
        }],
    })
}

/// Append `events` to the MongoDB store at `url` after its last commit, one commit per event,
/// as another host's commits would arrive (the store may be in use); answers their positions.
pub async fn mongo_append(url: &str, events: &[RawEvent]) -> Result<Vec<u64>> {
    let commits = mongo_commits(url).await?;
    let newest = commits.find_one(doc! {}).sort(doc! { "_id": -1 }).await?;
    let head = match newest {
        Some(commit) => commit.get_i64("last_position").or_else(|_| commit.get_i32("last_position").map(i64::from))?,
        None => 0,
    };
    let mut positions = Vec::new();
    for (e, position) in events.iter().zip(head + 1..) {
        commits
            .insert_one(commit_document(e, position)?)
            .await
            .with_context(|| format!("failed to append the commit at position {position}"))?;
        positions.push(u64::try_from(position)?);
    }
    Ok(positions)
}

/// Every event of the MongoDB store at `url`, in log order.
pub async fn mongo_events(url: &str) -> Result<Vec<Stored>> {
    let commits = mongo_commits(url).await?;
    let mut cursor = commits.find(doc! {}).sort(doc! { "_id": 1 }).await?;
    let mut events = Vec::new();
    while cursor.advance().await? {
        let commit = cursor.deserialize_current()?;
        let aggregate_type = commit.get_str("aggregate_type")?.to_owned();
        let aggregate_id = commit.get_str("aggregate_id")?.to_owned();
        for event in commit.get_array("events")? {
            let event = event.as_document().context("an event is not a document")?;
            let number = |name: &str| -> Result<i64> {
                let value = event.get(name).with_context(|| format!("no {name} in {event}"))?;
                value.as_i64().or_else(|| value.as_i32().map(i64::from)).with_context(|| format!("{name} in {event}"))
            };
            events.push((
                u64::try_from(number("position")?)?,
                RawEvent {
                    aggregate_type: aggregate_type.clone(),
                    aggregate_id: aggregate_id.clone(),
                    version: u64::try_from(number("version")?)?,
                    event_type: event.get_str("event_type")?.to_owned(),
                    schema_version: u32::try_from(number("schema_version")?)?,
                    data: event.get_str("data")?.to_owned(),
                    recorded_at: event.get_str("recorded_at")?.to_owned(),
                },
            ));
        }
    }
    Ok(events)
}
