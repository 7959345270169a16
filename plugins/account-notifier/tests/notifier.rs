//! Given an event, then these notifications: the reactor's behaviour, natively.

use account_notifier::AccountNotifier;
use serde_json::json;
use sluice_sdk::testing::ReactorTest;

const ACCOUNT: &str = "6f1c1a52-1d0e-4c55-9d7e-3d6c2a1b0c01";

fn amount(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("a number")
}

#[test]
fn a_deposit_notifies_its_account_with_the_exact_amount() {
    ReactorTest::<AccountNotifier>::given_event(
        "BankAccount",
        ACCOUNT,
        42,
        "FundsDepositedEvent",
        &format!(r#"{{"id":"{ACCOUNT}","amount":10.25}}"#),
    )
    .then_sends(&[(
        "notifications",
        ACCOUNT,
        json!({"accountId": ACCOUNT, "event": "FundsDepositedEvent", "amount": amount("10.25"), "position": 42}),
    )]);
}

#[test]
fn a_withdrawal_notifies_too() {
    ReactorTest::<AccountNotifier>::given_event(
        "BankAccount",
        ACCOUNT,
        7,
        "FundsWithdrawnEvent",
        &format!(r#"{{"id":"{ACCOUNT}","amount":3}}"#),
    )
    .then_sends(&[(
        "notifications",
        ACCOUNT,
        json!({"accountId": ACCOUNT, "event": "FundsWithdrawnEvent", "amount": amount("3"), "position": 7}),
    )]);
}

#[test]
fn opening_an_account_sends_nothing() {
    ReactorTest::<AccountNotifier>::given_event(
        "BankAccount",
        ACCOUNT,
        1,
        "AccountOpenedEvent",
        r#"{"id":"x","accountHolder":"Ada","openingBalance":5}"#,
    )
    .then_sends_nothing();
}

#[test]
fn a_deposit_without_an_amount_is_refused() {
    ReactorTest::<AccountNotifier>::given_event("BankAccount", ACCOUNT, 3, "FundsDepositedEvent", r#"{"id":"x"}"#)
        .then_refuses("has no amount");
}
