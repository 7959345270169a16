//! The snoop projection on the SDK's in-memory store, which keeps the host's rule that a
//! projection sees only its own tables: the read of `accounts` is refused by name, in `handle`
//! and in a query, and a store that let it through would be caught.

use serde_json::json;
use sluice_projection_sdk::testing::{MemoryDb, ProjectionTest};
use sluice_projection_sdk::{
    Column, ColumnType, Db, Event, Params, Projection, QueryError, Select, SqlError, Table, Value,
};
use snoop_projection::{OTHER_TABLE, Snoop};

const OPENED: &str = r#"{"id":"acc-1","accountHolder":"Ada","accountType":"SAVINGS","createdDate":"2026-01-01T00:00:00.000Z","openingBalance":50}"#;

fn opened_event() -> Event {
    Event {
        aggregate_type: "BankAccount".to_owned(),
        aggregate_id: "acc-1".to_owned(),
        version: 1,
        global_position: 7,
        event_type: "AccountOpenedEvent".to_owned(),
        schema_version: 1,
        data: OPENED.to_owned(),
        recorded_at: "2026-01-01T00:00:00Z".to_owned(),
    }
}

/// Handle one event as the host does, inside a transaction: a failure leaves the tables as they
/// were. (`ProjectionTest` applies writes directly, so a failed handler's earlier writes stay.)
fn handle_in_transaction(db: &mut MemoryDb, event: &Event) -> Result<(), String> {
    let before = db.clone();
    let result = Snoop::handle(db, event);
    if result.is_err() {
        *db = before;
    }
    result
}

/// The `notes` query's answer, read-only as on the host.
#[track_caller]
fn notes(db: &mut MemoryDb) -> serde_json::Value {
    db.set_read_only(true);
    let answer = Snoop::query(db, "notes", &Params::default());
    db.set_read_only(false);
    match answer {
        Ok(answer) if answer.status == 200 => serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}")),
        other => panic!("expected 200 from notes, got {other:?}"),
    }
}

/// A store that wrongly lets `snoop` see the `accounts` table too, holding one account.
fn leaky_store() -> MemoryDb {
    let accounts = Table::new(
        OTHER_TABLE,
        vec![Column::new("id", ColumnType::Text), Column::new("balance", ColumnType::Decimal)],
        &["id"],
    );
    let mut tables = Snoop::manifest().tables;
    tables.push(accounts);
    let mut db = MemoryDb::new(tables);
    db.insert(OTHER_TABLE, &["id", "balance"], vec![Value::text("acc-0"), Value::decimal("10.00")])
        .unwrap_or_else(|e| panic!("{e}"));
    db
}

#[test]
fn declares_only_its_own_table() {
    let manifest = Snoop::manifest();
    assert_eq!(manifest.name, "snoop");
    assert_eq!(manifest.subscriptions, ["AccountOpenedEvent"]);
    let tables: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tables, ["notes"]);
    let routes: Vec<(&str, &str)> = manifest.routes.iter().map(|r| (r.path.as_str(), r.query.as_str())).collect();
    assert_eq!(routes, [("/api/test/snoop/notes", "notes"), ("/api/test/snoop/peek", "peek")]);
    assert!(manifest.rebuild_routes.is_empty());
}

#[test]
fn a_store_of_its_own_tables_refuses_accounts_by_name() {
    let mut db = MemoryDb::new(Snoop::manifest().tables);
    match db.select(Select::from(OTHER_TABLE)) {
        Err(SqlError::UnknownTable(message)) => assert!(message.contains(OTHER_TABLE), "{message}"),
        other => panic!("expected unknown-table, got {other:?}"),
    }
}

#[test]
fn handling_fails_with_the_refusal() {
    let mut test = ProjectionTest::<Snoop>::given(&[]);
    let error = test.apply("AccountOpenedEvent", OPENED).err().unwrap_or_else(|| panic!("the read should fail"));
    assert_eq!(error, "reading accounts: unknown table: accounts is not a table of this projection");
    assert_eq!(test.apply("FundsDepositedEvent", r#"{"id":"acc-1","amount":1}"#), Ok(()), "not subscribed");
}

#[test]
fn a_refused_event_leaves_no_note_when_rolled_back() {
    let mut db = MemoryDb::new(Snoop::manifest().tables);
    assert_eq!(notes(&mut db), json!({ "notes": [] }));
    assert!(handle_in_transaction(&mut db, &opened_event()).is_err_and(|e| e.contains("unknown table")));
    assert_eq!(notes(&mut db), json!({ "notes": [] }));
}

#[test]
fn notes_lists_its_own_table() {
    let mut db = MemoryDb::new(Snoop::manifest().tables);
    db.insert("notes", &["id", "note"], vec![Value::text("b"), Value::text("second")])
        .unwrap_or_else(|e| panic!("{e}"));
    db.insert("notes", &["id", "note"], vec![Value::text("a"), Value::text("first")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(notes(&mut db), json!({ "notes": [{ "id": "a", "note": "first" }, { "id": "b", "note": "second" }] }));
}

#[test]
fn peek_fails_with_the_refusal() {
    let mut test = ProjectionTest::<Snoop>::given(&[]);
    match test.query("peek", &[]).result {
        Err(QueryError::Failed(message)) => assert!(message.contains("unknown table: accounts"), "{message}"),
        other => panic!("expected the read to fail, got {other:?}"),
    }
}

#[test]
fn unknown_queries_are_refused() {
    let mut test = ProjectionTest::<Snoop>::given(&[]);
    assert!(matches!(test.query("accounts", &[]).result, Err(QueryError::UnknownQuery(_))));
}

#[test]
fn a_store_that_let_the_read_through_would_be_caught() {
    let mut db = leaky_store();
    assert_eq!(handle_in_transaction(&mut db, &opened_event()), Ok(()));
    assert_eq!(notes(&mut db), json!({ "notes": [{ "id": "acc-1", "note": "read 1 rows of accounts" }] }));
    let peek = Snoop::query(&mut db, "peek", &Params::default()).map(|a| (a.status, a.body));
    assert_eq!(peek, Ok((200, r#"{"leaked":1}"#.to_owned())));
}
