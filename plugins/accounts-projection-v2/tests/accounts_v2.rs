//! Given events, when a query runs, then this answer: version 2 of the `accounts` projection
//! declares what version 1 does but one schema version later with one more column, answers the
//! same accounts, and marks every answer as its own.

use accounts_projection::Accounts;
use accounts_projection_v2::{AccountsV2, SCHEMA_VERSION};
use serde_json::{Value, json};
use sluice_projection_sdk::testing::{ProjectionTest, QueryOutcome};
use sluice_projection_sdk::{ColumnType, Projection, QueryError};

const ADA: &str = "11111111-1111-4111-8111-111111111111";
const GRACE: &str = "22222222-2222-4222-8222-222222222222";

fn opened(id: &str, holder: &str, created: &str, balance: &str) -> (&'static str, String) {
    let data = format!(
        r#"{{"id":"{id}","accountHolder":"{holder}","accountType":"SAVINGS","openedAt":"{created}","openingBalance":{balance}}}"#
    );
    ("AccountOpenedEvent", data)
}

fn deposited(id: &str, amount: &str) -> (&'static str, String) {
    ("FundsDepositedEvent", format!(r#"{{"id":"{id}","amount":{amount}}}"#))
}

fn withdrawn(id: &str, amount: &str) -> (&'static str, String) {
    ("FundsWithdrawnEvent", format!(r#"{{"id":"{id}","amount":{amount}}}"#))
}

fn closed(id: &str) -> (&'static str, String) {
    ("AccountClosedEvent", format!(r#"{{"id":"{id}"}}"#))
}

/// Ada opens with 50 and moves money three times; Grace opens with 100.25 and never does.
fn history() -> Vec<(&'static str, String)> {
    vec![
        opened(ADA, "Ada Lovelace", "2026-01-01T10:00:00.000Z", "50"),
        opened(GRACE, "Grace Hopper", "2026-01-02T10:00:00.000Z", "100.25"),
        deposited(ADA, "0.1"),
        deposited(ADA, "0.2"),
        withdrawn(ADA, "10"),
    ]
}

/// The same events, applied by projection `P`.
#[track_caller]
fn given<P: Projection>(events: &[(&'static str, String)]) -> ProjectionTest<P> {
    let mut test = ProjectionTest::<P>::given(&[]);
    for (event_type, data) in events {
        test = test.and(event_type, data);
    }
    test
}

/// A JSON number with exactly this text.
#[track_caller]
fn decimal(text: &str) -> serde_json::Number {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A 200 answer's body.
#[track_caller]
fn body(outcome: QueryOutcome) -> Value {
    outcome.then_expect_status(200).json()
}

/// The body without what only version 2 says: its `schemaVersion` and each `transactions`.
fn as_version_1(mut body: Value) -> Value {
    if let Some(object) = body.as_object_mut() {
        object.remove("schemaVersion");
    }
    if let Some(accounts) = body["accounts"].as_array_mut() {
        for account in accounts.iter_mut().filter_map(Value::as_object_mut) {
            account.remove("transactions");
        }
    }
    body
}

#[test]
fn declares_what_version_1_does_one_schema_version_later() {
    let (v1, v2) = (Accounts::manifest(), AccountsV2::manifest());
    assert_eq!(v2.name, v1.name);
    assert_eq!(v2.schema_version, v1.schema_version + 1);
    assert_eq!(v2.schema_version, SCHEMA_VERSION);
    assert_eq!(v2.subscriptions, v1.subscriptions);
    assert_eq!(v2.queries, v1.queries);
    assert_eq!(v2.routes, v1.routes);
    assert_eq!(v2.rebuild_routes, v1.rebuild_routes);
}

#[test]
fn its_table_has_one_more_column_counting_transactions() {
    let (v1, v2) = (Accounts::manifest(), AccountsV2::manifest());
    assert_eq!(v2.tables.len(), 1);
    let (old, new) = (&v1.tables[0], &v2.tables[0]);
    assert_eq!(
        (new.name.as_str(), &new.primary_key, &new.indexes),
        (old.name.as_str(), &old.primary_key, &old.indexes)
    );
    let (extra, same) = new.columns.split_last().unwrap_or_else(|| panic!("no columns"));
    assert_eq!(same, old.columns.as_slice());
    assert_eq!((extra.name.as_str(), extra.column_type, extra.nullable), ("transactions", ColumnType::Integer, false));
}

#[test]
fn every_answer_carries_its_schema_version_and_counts_transactions() {
    let mut test = given::<AccountsV2>(&history());
    let all = body(test.query("all", &[]));
    assert_eq!(
        all,
        json!({
            "message": "Successfully returned 2 bank account(s)!",
            "accounts": [
                {
                    "id": ADA,
                    "accountHolder": "Ada Lovelace",
                    "creationDate": "2026-01-01T10:00:00.000Z",
                    "accountType": "SAVINGS",
                    "balance": decimal("40.30"),
                    "transactions": 3,
                },
                {
                    "id": GRACE,
                    "accountHolder": "Grace Hopper",
                    "creationDate": "2026-01-02T10:00:00.000Z",
                    "accountType": "SAVINGS",
                    "balance": decimal("100.25"),
                    "transactions": 0,
                },
            ],
            "schemaVersion": 2,
        })
    );
    assert_eq!(all["accounts"][0]["balance"].to_string(), "40.30", "exact decimal text");
    for (query, params) in [
        ("byId", vec![("id", GRACE)]),
        ("byHolder", vec![("accountHolder", "Ada Lovelace")]),
        ("withBalance", vec![("equalityType", "GREATER_THAN"), ("balance", "1")]),
    ] {
        assert_eq!(body(test.query(query, &params))["schemaVersion"], 2, "{query}");
    }
}

#[test]
fn answers_the_same_accounts_as_version_1() {
    let mut events = history();
    events.extend([opened("gone", "Alan Turing", "2026-01-03T10:00:00.000Z", "1"), closed("gone")]);
    let mut v1 = given::<Accounts>(&events);
    let mut v2 = given::<AccountsV2>(&events);
    let queries: [(&str, Vec<(&str, &str)>); 5] = [
        ("all", vec![]),
        ("byId", vec![("id", ADA)]),
        ("byHolder", vec![("accountHolder", "Grace Hopper")]),
        ("withBalance", vec![("equalityType", "LESS_THAN"), ("balance", "40.31")]),
        ("withBalance", vec![("equalityType", "GREATER_THAN"), ("balance", "40.30")]),
    ];
    for (query, params) in queries {
        let (old, new) = (body(v1.query(query, &params)), body(v2.query(query, &params)));
        assert!(old.get("schemaVersion").is_none(), "version 1 says no schema version: {old}");
        assert_eq!(as_version_1(new), old, "{query} {params:?}");
    }
}

#[test]
fn no_accounts_is_no_content_and_refusals_are_version_1s() {
    let mut test = given::<AccountsV2>(&[opened(ADA, "Ada Lovelace", "2026-01-01T10:00:00.000Z", "1"), closed(ADA)]);
    let outcome = test.query("all", &[]).then_expect_status(204);
    assert_eq!(outcome.result.map(|a| a.body), Ok(String::new()));
    let mut v1 = given::<Accounts>(&[]);
    for (query, params) in [
        ("byId", vec![]),
        ("withBalance", vec![("equalityType", "SIDEWAYS"), ("balance", "1")]),
        ("withBalance", vec![("equalityType", "LESS_THAN"), ("balance", "1.005")]),
        ("byBalance", vec![]),
    ] {
        let refused = test.query(query, &params).result;
        assert!(matches!(refused, Err(QueryError::Invalid(_) | QueryError::UnknownQuery(_))), "{refused:?}");
        assert_eq!(refused, v1.query(query, &params).result, "{query} {params:?}");
    }
}

#[test]
fn unreadable_events_are_refused_and_change_nothing() {
    let mut test = given::<AccountsV2>(&history()[..1]);
    assert!(test.apply("FundsDepositedEvent", &format!(r#"{{"id":"{ADA}","amount":"10"}}"#)).is_err());
    assert!(test.apply("FundsWithdrawnEvent", &format!(r#"{{"id":"{ADA}","amount":0.001}}"#)).is_err());
    let ada = &body(test.query("byId", &[("id", ADA)]))["accounts"][0];
    assert_eq!((ada["balance"].to_string().as_str(), &ada["transactions"]), ("50.00", &json!(0)));
}
