//! The `AccountOpenedEvent` schema change (1: `createdDate`, 2: `openedAt`), given/then: the
//! upcaster alone, and commands on streams whose history was written at schema version 1, as
//! the host runs them (older events upcast before evolve).

use bank_account::{AccountType, BankAccount, BankAccountCommand, BankAccountEvent, Money};
use sluice_sdk::testing::{AggregateTest, UpcastTest};
use sluice_sdk::{DomainEvent, StoredEvent, runtime};

const OPENED_V1: &str = r#"{"id":"acc-1","accountHolder":"Ada Lovelace","accountType":"SAVINGS","createdDate":"2025-12-31T23:59:59.000Z","openingBalance":10.50}"#;

#[track_caller]
fn money(text: &str) -> Money {
    text.parse().unwrap_or_else(|e| panic!("test amount {text}: {e}"))
}

fn opened_v2() -> BankAccountEvent {
    BankAccountEvent::AccountOpened {
        id: "acc-1".to_owned(),
        account_holder: "Ada Lovelace".to_owned(),
        account_type: AccountType::Savings,
        opened_at: "2025-12-31T23:59:59.000Z".to_owned(),
        opening_balance: money("10.50"),
    }
}

#[test]
fn account_opened_is_at_schema_version_2_and_reads_from_1() {
    assert_eq!(BankAccountEvent::current_schema_version("AccountOpenedEvent"), 2);
    assert_eq!(BankAccountEvent::oldest_schema_version("AccountOpenedEvent"), 1);
    for unchanged in ["FundsDepositedEvent", "FundsWithdrawnEvent", "AccountClosedEvent"] {
        assert_eq!(BankAccountEvent::current_schema_version(unchanged), 1, "{unchanged}");
        assert_eq!(BankAccountEvent::oldest_schema_version(unchanged), 1, "{unchanged}");
    }
}

#[test]
fn a_version_1_account_opened_is_upcast_with_created_date_renamed_opened_at() {
    UpcastTest::<BankAccount>::given_stored("AccountOpenedEvent", 1, OPENED_V1).then_expect(opened_v2());
}

#[test]
fn the_upcast_keeps_the_amounts_exact_json_text() {
    let upcast = UpcastTest::<BankAccount>::given_stored("AccountOpenedEvent", 1, OPENED_V1)
        .into_result()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(upcast.schema_version, 2);
    assert!(upcast.data.contains(r#""openingBalance":10.50"#), "{}", upcast.data);
    assert!(upcast.data.contains(r#""openedAt":"2025-12-31T23:59:59.000Z""#), "{}", upcast.data);
    assert!(!upcast.data.contains("createdDate"), "{}", upcast.data);
}

#[test]
fn a_current_event_passes_unchanged() {
    let current = runtime::to_new_event(&opened_v2());
    let upcast = UpcastTest::<BankAccount>::given_stored("AccountOpenedEvent", 2, &current.data)
        .into_result()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((upcast.schema_version, upcast.data), (2, current.data));
}

#[test]
fn versions_the_plugin_does_not_know_are_refused() {
    UpcastTest::<BankAccount>::given_stored("AccountOpenedEvent", 3, OPENED_V1).then_expect_error("1..=2");
    UpcastTest::<BankAccount>::given_stored("AccountOpenedEvent", 0, OPENED_V1).then_expect_error("1..=2");
    UpcastTest::<BankAccount>::given_stored("FundsDepositedEvent", 2, r#"{"id":"acc-1","amount":1}"#)
        .then_expect_error("1..=1");
}

#[test]
fn a_version_1_event_without_created_date_cannot_be_upcast() {
    UpcastTest::<BankAccount>::given_stored(
        "AccountOpenedEvent",
        1,
        r#"{"id":"acc-1","accountHolder":"Ada","accountType":"SAVINGS","openingBalance":1}"#,
    )
    .then_expect_error("createdDate");
}

#[test]
fn commands_on_a_stream_opened_at_version_1_see_the_upcast_account() {
    AggregateTest::<BankAccount>::given_stored(&[
        ("AccountOpenedEvent", 1, OPENED_V1),
        ("FundsDepositedEvent", 1, r#"{"id":"acc-1","amount":5}"#),
    ])
    .when(BankAccountCommand::WithdrawFunds { amount: money("15.50") })
    .then_expect_events(vec![BankAccountEvent::FundsWithdrawn { id: "acc-1".to_owned(), amount: money("15.50") }]);

    AggregateTest::<BankAccount>::given_stored(&[("AccountOpenedEvent", 1, OPENED_V1)])
        .when(BankAccountCommand::WithdrawFunds { amount: money("10.51") })
        .then_expect_rejected("insufficient");
}

#[test]
fn the_state_of_an_upcast_history_keeps_the_seeds_created_date() {
    let stored = StoredEvent {
        aggregate_type: "BankAccount".to_owned(),
        aggregate_id: "acc-1".to_owned(),
        version: 1,
        global_position: 1,
        event_type: "AccountOpenedEvent".to_owned(),
        schema_version: 1,
        data: OPENED_V1.to_owned(),
        recorded_at: "2025-12-31T23:59:59.000Z".to_owned(),
    };
    let upcast = runtime::upcast::<BankAccount>(std::slice::from_ref(&stored)).unwrap_or_else(|e| panic!("{e}"));
    let current: Vec<StoredEvent> = upcast
        .into_iter()
        .map(|e| StoredEvent { schema_version: e.schema_version, data: e.data, ..stored.clone() })
        .collect();
    let state = runtime::evolve::<BankAccount>(None, &current).unwrap_or_else(|e| panic!("{e}"));
    let rendered = runtime::render::<BankAccount>(&state).unwrap_or_else(|e| panic!("{e}"));
    assert!(rendered.contains(r#""createdDate":"2025-12-31T23:59:59.000Z""#), "{rendered}");
    assert!(rendered.contains(r#""balance":10.50"#), "{rendered}");
}
