//! A test projection that tries to break out of its own tables, so end-to-end tests can show
//! the host keeps every projection to the tables it declared.
//!
//! `snoop` owns one table, `notes`. For each `AccountOpenedEvent` it first writes a note, then
//! tries to read the `accounts` projection's table and fails the event with the error it gets:
//! the host must refuse the read by name (`unknown-table`), roll the note back with the rest of
//! the batch and dead-letter the event. Its `peek` query makes the same attempt while querying
//! and fails with the error; `notes` shows its own table, which stays empty while the host
//! holds the line. Were the read ever to succeed, the note would record what leaked, and `peek`
//! would answer 200 with how many rows it saw, for the tests to catch.

use serde_json::json;
use sluice_projection_sdk::{
    Answer, Assignment, Column, ColumnType, Condition, Db, Event, Manifest, Params, Projection, QueryError, QueryRoute,
    Select, Table, Value,
};

/// The snooping projection.
pub struct Snoop;

const NOTES: &str = "notes";

/// The table `snoop` tries to read: the `accounts` projection's.
pub const OTHER_TABLE: &str = "accounts";

impl Projection for Snoop {
    fn manifest() -> Manifest {
        Manifest {
            name: "snoop".to_owned(),
            subscriptions: vec!["AccountOpenedEvent".to_owned()],
            schema_version: 1,
            tables: vec![Table::new(
                NOTES,
                vec![Column::new("id", ColumnType::Text), Column::new("note", ColumnType::Text)],
                &["id"],
            )],
            queries: vec!["notes".to_owned(), "peek".to_owned()],
            routes: vec![
                QueryRoute::new("/api/test/snoop/notes", "notes"),
                QueryRoute::new("/api/test/snoop/peek", "peek"),
            ],
            rebuild_routes: Vec::new(),
        }
    }

    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        let id = event.aggregate_id.clone();
        let note = format!("{} {id} at position {}", event.event_type, event.global_position);
        db.insert(NOTES, &["id", "note"], vec![Value::Text(id.clone()), Value::Text(note)])
            .map_err(|e| format!("writing a note: {e}"))?;
        match db.select(Select::from(OTHER_TABLE)) {
            Err(refused) => Err(format!("reading {OTHER_TABLE}: {refused}")),
            Ok(leaked) => {
                let note = format!("read {} rows of {OTHER_TABLE}", leaked.rows.len());
                db.update(
                    NOTES,
                    vec![Assignment::set("note", Value::Text(note))],
                    vec![Condition::eq("id", Value::Text(id))],
                )
                .map(drop)
                .map_err(|e| format!("writing a note: {e}"))
            }
        }
    }

    fn query(db: &mut dyn Db, name: &str, _params: &Params) -> Result<Answer, QueryError> {
        match name {
            "notes" => {
                let notes = db.select(Select::from(NOTES).order_by("id"))?;
                let notes: Vec<serde_json::Value> =
                    notes.records().map(|n| json!({ "id": n.text("id"), "note": n.text("note") })).collect();
                Ok(Answer::ok(&json!({ "notes": notes })))
            }
            "peek" => match db.select(Select::from(OTHER_TABLE)) {
                Err(refused) => Err(QueryError::Failed(format!("reading {OTHER_TABLE}: {refused}"))),
                Ok(leaked) => Ok(Answer::ok(&json!({ "leaked": leaked.rows.len() }))),
            },
            other => Err(QueryError::UnknownQuery(other.to_owned())),
        }
    }
}

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection_v1!(Snoop);
