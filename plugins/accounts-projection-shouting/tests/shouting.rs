//! Given events, when a query runs, then this answer: the shouting candidate declares what
//! version 1 does and keeps the same accounts, with every holder's name upper-cased.

use accounts_projection::Accounts;
use accounts_projection_shouting::AccountsShouting;
use serde_json::Value;
use sluice_projection_sdk::Projection;
use sluice_projection_sdk::testing::ProjectionTest;

const ADA: &str = "11111111-1111-4111-8111-111111111111";

fn history() -> Vec<(&'static str, String)> {
    vec![
        (
            "AccountOpenedEvent",
            format!(
                r#"{{"id":"{ADA}","accountHolder":"Ada Lovelace","accountType":"SAVINGS","openedAt":"2026-01-01T10:00:00.000Z","openingBalance":50}}"#
            ),
        ),
        ("FundsDepositedEvent", format!(r#"{{"id":"{ADA}","amount":0.1}}"#)),
        ("FundsWithdrawnEvent", format!(r#"{{"id":"{ADA}","amount":10}}"#)),
    ]
}

#[track_caller]
fn all<P: Projection>() -> Value {
    let mut test = ProjectionTest::<P>::given(&[]);
    for (event_type, data) in history() {
        test = test.and(event_type, &data);
    }
    test.query("all", &[]).then_expect_status(200).json()
}

#[test]
fn declares_what_version_1_does() {
    let (v1, shouting) = (Accounts::manifest(), AccountsShouting::manifest());
    assert_eq!(shouting.name, v1.name);
    assert_eq!(shouting.schema_version, v1.schema_version);
    assert_eq!(shouting.subscriptions, v1.subscriptions);
    assert_eq!(shouting.tables, v1.tables);
    assert_eq!(shouting.queries, v1.queries);
    assert_eq!(shouting.routes, v1.routes);
}

#[test]
fn holder_names_are_upper_cased_and_nothing_else_changes() {
    let (v1, shouting) = (all::<Accounts>(), all::<AccountsShouting>());
    assert_eq!(v1["accounts"][0]["accountHolder"], "Ada Lovelace");
    assert_eq!(shouting["accounts"][0]["accountHolder"], "ADA LOVELACE");
    let mut expected = v1;
    expected["accounts"][0]["accountHolder"] = "ADA LOVELACE".into();
    assert_eq!(shouting, expected);
}
