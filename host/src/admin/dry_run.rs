//! Dry runs: a candidate version of a projection replays the log into a private scratch
//! database, and its tables are compared row by row with the live version's — before anyone
//! installs it. The operator sees which rows the candidate would add, remove or change, and
//! which events it would refuse.
//!
//! Nothing live changes, by construction: the candidate is compiled and described but never
//! registered (no routes, no consumer, no version stored, no refusal listed); its rows go to a
//! rebuild's staging database ([`Staging`]: SQLite's private temporary database, gone when
//! dropped); an event it refuses is reported, never dead-lettered; and the live tables are only
//! read, at a committed batch boundary ([`Projection::at_rest`](crate::projection::Projection::at_rest)),
//! so the candidate is replayed up to exactly the position they hold and the comparison is like
//! for like.
//!
//! The candidate is handed what the live consumer is handed: every event upcast by its
//! aggregate first (an event the upcaster refuses is a failure of the run), and none of the
//! events the live consumer holds back or dropped (its parked, blocked and dropped letters), so
//! the live version compared with itself shows no difference.
//!
//! Rows are matched by primary key. A candidate with another schema is compared on what both
//! share (tables of the same name, columns of the same name), and the answer's `notes` say what
//! was left out. Both sides of a table are held in memory while compared: a dry run is an
//! operator's check of a read model, not a bulk export.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::{Admin, AdminError};
use crate::event_store::{EventStore, StoredEvent};
use crate::plugin::{HandleFailure, Plugin, ProjectionLogic, Upcaster};
use crate::projection::ProjectionError;
use crate::projection::letters::Held;
use crate::read_store::session::SqlSession;
use crate::read_store::staging::Staging;
use crate::read_store::statement::{Rows, Selection, SqlError, Value};
use crate::read_store::{ProjectionSchema, ReadStoreError, TableSchema};
use crate::runtime::loader;

/// Events read from the log per batch.
const BATCH: u32 = 500;
/// Example rows per table in the answer.
const SAMPLES: usize = 10;
/// Refused events listed in the answer; past this, a note gives the count.
const FAILURES_LISTED: usize = 100;
/// The scratch database's one generation of tables.
const SCRATCH_GENERATION: i64 = 1;

/// What a dry run found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunReport {
    pub projection: String,
    /// The candidate's sha256.
    pub sha256: String,
    /// The live version compared with; none when no projection of that name runs.
    pub live_sha256: Option<String>,
    /// The log position both sides hold: the live version's position when the dry run began
    /// (the log's head when there is no live version).
    pub position: u64,
    /// Events up to `position` the candidate subscribes to and applied.
    pub events_handled: u64,
    /// Events the candidate refused (the first [`FAILURES_LISTED`]), oldest first.
    pub failures: Vec<DryRunFailure>,
    pub tables: Vec<TableDiff>,
    /// What could not be compared like for like: schema versions, tables or columns only one
    /// side has, different keys or types, failures not listed.
    pub notes: Vec<String>,
}

/// An event the candidate refused, alone, in the scratch database.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunFailure {
    pub position: u64,
    pub aggregate_id: String,
    pub event_type: String,
    pub reason: String,
}

/// One table, candidate against live.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableDiff {
    pub table: String,
    /// Rows only the candidate has.
    pub added: u64,
    /// Rows only the live version has.
    pub removed: u64,
    /// Rows both have, with different values in the compared columns.
    pub changed: u64,
    pub unchanged: u64,
    /// The columns compared (those both sides have).
    pub columns: Vec<String>,
    /// A few of the differing rows, in key order.
    pub samples: Vec<RowSample>,
}

/// How a row differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RowChange {
    Added,
    Removed,
    Changed,
}

/// A differing row: its key and both versions of it (the side that lacks it has none).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowSample {
    pub change: RowChange,
    #[schema(value_type = Object)]
    pub key: Map<String, Json>,
    #[schema(value_type = Option<Object>)]
    pub live: Option<Map<String, Json>>,
    #[schema(value_type = Option<Object>)]
    pub candidate: Option<Map<String, Json>>,
}

/// The live version as it was read: what it is and what its tables held.
struct LiveSide {
    sha256: Option<String>,
    schema: Arc<ProjectionSchema>,
    schema_version: u32,
    tables: Vec<Rows>,
}

/// What the live consumer passes by: its letters and drops, read with its tables.
type Skipped = Option<Held>;

impl Admin {
    /// Replay the log up to the live version's position through candidate component `bytes` of
    /// projection `name`, into a scratch database, and compare its tables with the live ones.
    /// Refused like an upload when the bytes are no component or not a projection named `name`.
    pub async fn dry_run(&self, name: &str, bytes: Vec<u8>) -> Result<DryRunReport, AdminError> {
        let runtime = self.parts().runtime.clone();
        let origin = format!("dry run of {name}");
        // Compiling is CPU work for seconds: off the async threads.
        let component = tokio::task::spawn_blocking(move || loader::load(&runtime, &origin, &bytes))
            .await
            .map_err(|e| AdminError::Task(e.to_string()))??;
        let candidate = match component.plugin {
            Plugin::Projection(logic) if logic.manifest().name == name => logic,
            Plugin::Projection(logic) => {
                return Err(AdminError::WrongName {
                    expected: name.to_owned(),
                    declared: logic.manifest().name.clone(),
                });
            }
            Plugin::Aggregate(logic) => {
                return Err(AdminError::WrongName {
                    expected: format!("projection {name}"),
                    declared: format!("aggregate {}", logic.manifest().aggregate_type),
                });
            }
            // A reactor's dry run would have to send: it has none.
            Plugin::Reactor(logic) => {
                return Err(AdminError::WrongName {
                    expected: format!("projection {name}"),
                    declared: format!("reactor {}", logic.manifest().name),
                });
            }
        };
        let mut notes = Vec::new();
        let (live, position, skipped) = self.read_live(name).await?;
        match &live {
            Some(live) if live.schema_version != candidate.manifest().schema_version => notes.push(format!(
                "schema versions differ: the candidate declares {}, the live version {}",
                candidate.manifest().schema_version,
                live.schema_version
            )),
            Some(_) => {}
            None => notes.push(format!("no projection {name} runs: every row of the candidate is new")),
        }
        tracing::info!(projection = %name, sha256 = %component.sha256, position, "dry run: replaying the log into a scratch database");
        let schema = Arc::new(candidate.manifest().schema.clone());
        let staging = Staging::open(schema.clone(), SCRATCH_GENERATION).map_err(ProjectionError::from)?;
        let from = Source {
            events: &self.parts().store,
            upcaster: Upcaster::new(self.parts().registry.clone()),
            skipped: skipped.as_ref(),
        };
        let (events_handled, failures, refused) = replay(&from, &candidate, &staging, position).await?;
        if refused > failures.len() {
            notes.push(format!("the candidate refused {refused} events; the first {} are listed", failures.len()));
        }
        let scratch = read_scratch(&staging).await?;
        let tables = compare_all(&schema, scratch, live.as_ref(), &mut notes);
        Ok(DryRunReport {
            projection: name.to_owned(),
            sha256: component.sha256,
            live_sha256: live.and_then(|l| l.sha256),
            position,
            events_handled,
            failures,
            tables,
            notes,
        })
    }

    /// The live version's tables at a committed batch boundary, the position they hold and the
    /// events its consumer passed by up to there; the log's head, no tables and nothing passed
    /// by when no projection `name` runs.
    async fn read_live(&self, name: &str) -> Result<(Option<LiveSide>, u64, Skipped), AdminError> {
        let Ok(runner) = self.projections().get(name) else {
            let head = self.parts().store.head_position().await.map_err(ProjectionError::from)?;
            return Ok((None, head, None));
        };
        let store = self.parts().read_store.clone();
        let (serving, position, tables, held) = runner
            .at_rest(|serving, position| async move {
                let schema = Arc::new(serving.plugin.manifest().schema.clone());
                let tables = read_tables(SqlSession::read(&store, schema.clone(), serving.generation), schema).await;
                let held = Held::load(&store, name).await;
                (serving, position, tables, held)
            })
            .await;
        let (tables, _) = tables?;
        let held = held.map_err(ProjectionError::from)?;
        // The registry names the serving version's bytes (during a schema upgrade, the old one).
        let sha256 = self
            .registry()
            .get(name)
            .filter(|loaded| matches!(&loaded.plugin, Plugin::Projection(p) if Arc::ptr_eq(p, &serving.plugin)))
            .map(|loaded| loaded.info.sha256.clone());
        let manifest = serving.plugin.manifest();
        let live = LiveSide {
            sha256,
            schema: Arc::new(manifest.schema.clone()),
            schema_version: manifest.schema_version,
            tables,
        };
        Ok((Some(live), position, Some(held)))
    }
}

/// Every row of every table of `schema` through `session`, in the schema's order, on a
/// blocking thread (statements block on the store). Gives the session back.
async fn read_tables(
    mut session: SqlSession,
    schema: Arc<ProjectionSchema>,
) -> Result<(Vec<Rows>, SqlSession), AdminError> {
    let (session, read) = tokio::task::spawn_blocking(move || {
        let read = schema
            .tables
            .iter()
            .map(|table| {
                session.select(Selection {
                    table: table.name.clone(),
                    columns: Vec::new(),
                    filter: Vec::new(),
                    order_by: Vec::new(),
                    limit: None,
                })
            })
            .collect::<Result<Vec<_>, SqlError>>();
        (session, read)
    })
    .await
    .map_err(|e| AdminError::Task(e.to_string()))?;
    let tables = read.map_err(|e| ProjectionError::from(ReadStoreError::Backend(format!("dry run read: {e}"))))?;
    Ok((tables, session))
}

/// Every row of the scratch database.
async fn read_scratch(staging: &Staging) -> Result<Vec<Rows>, AdminError> {
    let conn = staging.take().map_err(ProjectionError::from)?;
    let session = SqlSession::staging(staging.schema().clone(), staging.generation(), conn);
    let (tables, session) = read_tables(session, staging.schema().clone()).await?;
    if let Some(conn) = session.into_staging() {
        staging.give_back(conn);
    }
    Ok(tables)
}

/// Where a dry run's events come from, and how they reach the candidate.
struct Source<'a> {
    events: &'a Arc<dyn EventStore>,
    /// The upcaster every live path uses.
    upcaster: Upcaster,
    /// The events the live consumer passed by (none when no live version runs).
    skipped: Option<&'a Held>,
}

impl Source<'_> {
    /// `events` upcast as a batch; when the batch fails, one by one, each event the upcaster
    /// refuses given back with the reason instead.
    async fn upcast(&self, events: Vec<StoredEvent>) -> (Vec<StoredEvent>, Vec<(StoredEvent, String)>) {
        if let Ok(upcast) = self.upcaster.upcast(&events).await {
            return (upcast.into_owned(), Vec::new());
        }
        let (mut ok, mut refused) = (Vec::new(), Vec::new());
        for event in events {
            match self.upcaster.upcast(std::slice::from_ref(&event)).await {
                Ok(upcast) => ok.extend(upcast.into_owned()),
                Err(fault) => refused.push((event, fault.to_string())),
            }
        }
        (ok, refused)
    }
}

/// The failures of one run, the first [`FAILURES_LISTED`] of them listed.
#[derive(Default)]
struct Refusals {
    listed: Vec<DryRunFailure>,
    count: usize,
}

impl Refusals {
    fn add(&mut self, event: StoredEvent, reason: String) {
        self.count += 1;
        if self.listed.len() < FAILURES_LISTED {
            self.listed.push(DryRunFailure {
                position: event.global_position,
                aggregate_id: event.aggregate_id,
                event_type: event.event_type,
                reason,
            });
        }
    }
}

/// Apply the log up to `upto` through `candidate` into `staging`, in the current shape, past
/// the events the live consumer passed by. A batch the candidate refuses is retried event by
/// event, and an event that still fails (or that its aggregate cannot upcast) is reported.
/// Returns the events applied, the failures listed and how many events were refused in all.
async fn replay(
    from: &Source<'_>,
    candidate: &Arc<dyn ProjectionLogic>,
    staging: &Staging,
    upto: u64,
) -> Result<(u64, Vec<DryRunFailure>, usize), AdminError> {
    let subscriptions = &candidate.manifest().subscriptions;
    let (mut after, mut handled, mut refusals) = (0, 0u64, Refusals::default());
    while after < upto {
        let batch = from.events.read_all(after, BATCH).await.map_err(ProjectionError::from)?;
        let Some(last) = batch.last().map(|e| e.global_position) else { break };
        after = last;
        let subscribed: Vec<StoredEvent> = batch
            .into_iter()
            .filter(|e| e.global_position <= upto && subscriptions.contains(&e.event_type))
            .filter(|e| !from.skipped.is_some_and(|held| held.skips(e)))
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        let (subscribed, unreadable) = from.upcast(subscribed).await;
        for (event, reason) in unreadable {
            refusals.add(event, reason);
        }
        if subscribed.is_empty() {
            continue;
        }
        match handle_scratch(candidate, staging, subscribed.clone()).await? {
            Ok(()) => {
                handled += subscribed.len() as u64;
                continue;
            }
            Err(HandleFailure::Backend(failure)) => return Err(scratch_failure(failure)),
            Err(_) => {}
        }
        for event in subscribed {
            match handle_scratch(candidate, staging, vec![event.clone()]).await? {
                Ok(()) => handled += 1,
                Err(HandleFailure::Backend(failure)) => return Err(scratch_failure(failure)),
                Err(failure) => refusals.add(event, failure.to_string()),
            }
        }
    }
    Ok((handled, refusals.listed, refusals.count))
}

fn scratch_failure(failure: String) -> AdminError {
    ProjectionError::from(ReadStoreError::Backend(format!("dry run scratch database: {failure}"))).into()
}

/// One transaction of the scratch database: the candidate's writes for `events`, committed only
/// if it succeeded. The whole call runs on a blocking thread: every statement is a direct
/// SQLite call.
async fn handle_scratch(
    candidate: &Arc<dyn ProjectionLogic>,
    staging: &Staging,
    events: Vec<StoredEvent>,
) -> Result<Result<(), HandleFailure>, AdminError> {
    let conn = staging.take().map_err(ProjectionError::from)?;
    let (schema, generation) = (staging.schema().clone(), staging.generation());
    let candidate = candidate.clone();
    let (conn, outcome) = tokio::task::spawn_blocking(move || {
        let backend = |e: rusqlite::Error| HandleFailure::Backend(format!("scratch database: {e}"));
        if let Err(e) = conn.execute_batch("BEGIN") {
            return (Some(conn), Err(backend(e)));
        }
        let (session, outcome) = candidate.handle(SqlSession::staging(schema, generation, conn), &events);
        let Some(conn) = session.into_staging() else {
            return (None, Err(HandleFailure::Backend("a scratch session lost its connection".into())));
        };
        let end = if outcome.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match conn.execute_batch(end) {
            Ok(()) => (Some(conn), outcome),
            Err(e) => (Some(conn), Err(backend(e))),
        }
    })
    .await
    .map_err(|e| AdminError::Task(e.to_string()))?;
    if let Some(conn) = conn {
        staging.give_back(conn);
    }
    Ok(outcome)
}

/// Compare each candidate table with the live table of its name; then the live tables the
/// candidate no longer has, whose rows all count as removed.
fn compare_all(
    schema: &ProjectionSchema,
    scratch: Vec<Rows>,
    live: Option<&LiveSide>,
    notes: &mut Vec<String>,
) -> Vec<TableDiff> {
    let mut diffs = Vec::new();
    for (table, rows) in schema.tables.iter().zip(scratch) {
        let live_table = live.and_then(|l| {
            let index = l.schema.tables.iter().position(|t| t.name == table.name)?;
            Some((&l.schema.tables[index], l.tables.get(index)?))
        });
        if live.is_some() && live_table.is_none() {
            notes.push(format!("table {} is new in the candidate: every row counts as added", table.name));
        }
        diffs.push(compare(table, &rows, live_table, notes));
    }
    if let Some(live) = live {
        for (table, rows) in live.schema.tables.iter().zip(&live.tables) {
            if schema.table(&table.name).is_none() {
                notes.push(format!("table {} is only in the live version: every row counts as removed", table.name));
                diffs.push(only_live(table, rows));
            }
        }
    }
    diffs
}

/// A row, by column name.
type Record = Map<String, Json>;

/// A table's rows by key (the key's values as JSON text, so keys sort and compare exactly).
struct Indexed {
    rows: BTreeMap<String, (Record, Record)>,
}

impl Indexed {
    /// Each row as (key, row), keyed by `key` columns.
    fn new(rows: &Rows, key: &[String]) -> Self {
        let mut indexed = BTreeMap::new();
        for row in &rows.rows {
            let record: Record = rows.columns.iter().cloned().zip(row.iter().map(json)).collect();
            let key_record: Record =
                key.iter().map(|k| (k.clone(), record.get(k).cloned().unwrap_or(Json::Null))).collect();
            let key_text = Json::Array(key_record.values().cloned().collect()).to_string();
            indexed.insert(key_text, (key_record, record));
        }
        Self { rows: indexed }
    }
}

fn json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(n) => Json::from(*n),
        // Decimals as their exact text, as the store gives them.
        Value::Decimal(text) | Value::Text(text) => Json::String(text.clone()),
        Value::Boolean(b) => Json::Bool(*b),
    }
}

/// `record` reduced to `columns`.
fn only(record: &Record, columns: &[String]) -> Record {
    columns.iter().filter_map(|c| record.get(c).map(|v| (c.clone(), v.clone()))).collect()
}

/// The candidate's table against the live one (none: the table is new, every row is added).
fn compare(
    table: &TableSchema,
    candidate: &Rows,
    live: Option<(&TableSchema, &Rows)>,
    notes: &mut Vec<String>,
) -> TableDiff {
    let all_columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let empty = Rows { columns: Vec::new(), rows: Vec::new() };
    let (live_table, live_rows) = match live {
        Some((schema, rows)) => (Some(schema), rows),
        None => (None, &empty),
    };
    let mut columns = all_columns.clone();
    let mut comparable = true;
    if let Some(live_table) = live_table {
        columns.retain(|c| live_table.column(c).is_some());
        let only_candidate: Vec<&str> =
            all_columns.iter().filter(|c| live_table.column(c).is_none()).map(String::as_str).collect();
        let only_live: Vec<&str> =
            live_table.columns.iter().filter(|c| table.column(&c.name).is_none()).map(|c| c.name.as_str()).collect();
        if !only_candidate.is_empty() {
            notes.push(format!(
                "table {}: not compared, only in the candidate: {}",
                table.name,
                only_candidate.join(", ")
            ));
        }
        if !only_live.is_empty() {
            notes.push(format!(
                "table {}: not compared, only in the live version: {}",
                table.name,
                only_live.join(", ")
            ));
        }
        for column in &table.columns {
            if let Some(live_column) = live_table.column(&column.name)
                && live_column.column_type != column.column_type
            {
                notes.push(format!(
                    "table {}: column {} is {:?} in the candidate, {:?} live; compared as read",
                    table.name, column.name, column.column_type, live_column.column_type
                ));
            }
        }
        if live_table.primary_key != table.primary_key {
            comparable = false;
            notes.push(format!(
                "table {}: the key differs (candidate {}, live {}): rows cannot be matched, so every live row counts as removed and every candidate row as added",
                table.name,
                table.primary_key.join(", "),
                live_table.primary_key.join(", ")
            ));
        }
    }
    let candidate_rows = Indexed::new(candidate, &table.primary_key);
    let live_key = live_table.map_or(&table.primary_key, |t| &t.primary_key);
    let live_rows = Indexed::new(live_rows, live_key);
    let mut diff = TableDiff {
        table: table.name.clone(),
        added: 0,
        removed: 0,
        changed: 0,
        unchanged: 0,
        columns: columns.clone(),
        samples: Vec::new(),
    };
    let keys: BTreeSet<&String> =
        if comparable { candidate_rows.rows.keys().chain(live_rows.rows.keys()).collect() } else { BTreeSet::new() };
    for key in keys {
        match (candidate_rows.rows.get(key), live_rows.rows.get(key)) {
            (Some((key, ours)), Some((_, theirs))) => {
                let (ours, theirs) = (only(ours, &columns), only(theirs, &columns));
                if ours == theirs {
                    diff.unchanged += 1;
                } else {
                    diff.changed += 1;
                    let change = RowChange::Changed;
                    sample(
                        &mut diff,
                        RowSample { change, key: key.clone(), live: Some(theirs), candidate: Some(ours) },
                    );
                }
            }
            (Some((key, ours)), None) => {
                diff.added += 1;
                let change = RowChange::Added;
                sample(&mut diff, RowSample { change, key: key.clone(), live: None, candidate: Some(ours.clone()) });
            }
            (None, Some((key, theirs))) => {
                diff.removed += 1;
                let change = RowChange::Removed;
                sample(&mut diff, RowSample { change, key: key.clone(), live: Some(theirs.clone()), candidate: None });
            }
            (None, None) => {}
        }
    }
    if !comparable {
        for (key, ours) in candidate_rows.rows.values() {
            diff.added += 1;
            let change = RowChange::Added;
            sample(&mut diff, RowSample { change, key: key.clone(), live: None, candidate: Some(ours.clone()) });
        }
        for (key, theirs) in live_rows.rows.values() {
            diff.removed += 1;
            let change = RowChange::Removed;
            sample(&mut diff, RowSample { change, key: key.clone(), live: Some(theirs.clone()), candidate: None });
        }
    }
    diff
}

/// Keep `row` as an example if the table has fewer than [`SAMPLES`].
fn sample(diff: &mut TableDiff, row: RowSample) {
    if diff.samples.len() < SAMPLES {
        diff.samples.push(row);
    }
}

/// A live table the candidate does not have: every row removed.
fn only_live(table: &TableSchema, rows: &Rows) -> TableDiff {
    let indexed = Indexed::new(rows, &table.primary_key);
    let samples = indexed
        .rows
        .values()
        .take(SAMPLES)
        .map(|(key, record)| RowSample {
            change: RowChange::Removed,
            key: key.clone(),
            live: Some(record.clone()),
            candidate: None,
        })
        .collect();
    TableDiff {
        table: table.name.clone(),
        added: 0,
        removed: indexed.rows.len() as u64,
        changed: 0,
        unchanged: 0,
        columns: Vec::new(),
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_store::ColumnType;
    use crate::read_store::schema::ColumnSchema;

    fn table(columns: &[(&str, ColumnType)], key: &[&str]) -> TableSchema {
        TableSchema {
            name: "t".into(),
            columns: columns
                .iter()
                .map(|(name, column_type)| ColumnSchema {
                    name: (*name).into(),
                    column_type: *column_type,
                    nullable: true,
                })
                .collect(),
            primary_key: key.iter().map(|k| (*k).to_owned()).collect(),
            indexes: Vec::new(),
        }
    }

    fn rows(columns: &[&str], rows: Vec<Vec<Value>>) -> Rows {
        Rows { columns: columns.iter().map(|c| (*c).to_owned()).collect(), rows }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn rows_are_matched_by_key_and_compared_on_shared_columns() {
        let ours = table(&[("id", ColumnType::Text), ("name", ColumnType::Text), ("n", ColumnType::Integer)], &["id"]);
        let theirs = table(&[("id", ColumnType::Text), ("name", ColumnType::Text)], &["id"]);
        let candidate = rows(
            &["id", "name", "n"],
            vec![
                vec![text("a"), text("ANN"), Value::Integer(1)],
                vec![text("b"), text("bob"), Value::Integer(2)],
                vec![text("d"), text("dan"), Value::Integer(3)],
            ],
        );
        let live = rows(
            &["id", "name"],
            vec![vec![text("a"), text("ann")], vec![text("b"), text("bob")], vec![text("c"), text("cy")]],
        );
        let mut notes = Vec::new();
        let diff = compare(&ours, &candidate, Some((&theirs, &live)), &mut notes);
        assert_eq!((diff.added, diff.removed, diff.changed, diff.unchanged), (1, 1, 1, 1));
        assert_eq!(diff.columns, ["id", "name"]);
        let changes: Vec<RowChange> = diff.samples.iter().map(|s| s.change).collect();
        assert_eq!(changes, [RowChange::Changed, RowChange::Removed, RowChange::Added]);
        assert_eq!(diff.samples[0].key["id"], "a");
        assert_eq!(diff.samples[0].live.as_ref().map(|r| r["name"].clone()), Some(Json::from("ann")));
        assert_eq!(diff.samples[0].candidate.as_ref().map(|r| r["name"].clone()), Some(Json::from("ANN")));
        assert!(notes.iter().any(|n| n.contains("only in the candidate: n")), "{notes:?}");
    }

    #[test]
    fn different_keys_count_every_row_on_both_sides() {
        let ours = table(&[("id", ColumnType::Text), ("name", ColumnType::Text)], &["id"]);
        let theirs = table(&[("id", ColumnType::Text), ("name", ColumnType::Text)], &["name"]);
        let candidate = rows(&["id", "name"], vec![vec![text("a"), text("ann")]]);
        let live = rows(&["id", "name"], vec![vec![text("a"), text("ann")], vec![text("b"), text("bob")]]);
        let mut notes = Vec::new();
        let diff = compare(&ours, &candidate, Some((&theirs, &live)), &mut notes);
        assert_eq!((diff.added, diff.removed, diff.changed, diff.unchanged), (1, 2, 0, 0));
        assert!(notes.iter().any(|n| n.contains("the key differs")), "{notes:?}");
    }

    #[test]
    fn samples_are_bounded() {
        let ours = table(&[("id", ColumnType::Integer)], &["id"]);
        let candidate = rows(&["id"], (0..50).map(|i| vec![Value::Integer(i)]).collect());
        let diff = compare(&ours, &candidate, None, &mut Vec::new());
        assert_eq!(diff.added, 50);
        assert_eq!(diff.samples.len(), SAMPLES);
    }
}
