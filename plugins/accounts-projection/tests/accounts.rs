//! Given events, when a query runs, then this answer: every event handler and every query of the
//! `accounts` projection, on the SDK's in-memory store.

use accounts_projection::Accounts;
use serde_json::{Value, json};
use sluice_projection_sdk::testing::{ProjectionTest, QueryOutcome};
use sluice_projection_sdk::{Projection, QueryError};

type Test = ProjectionTest<Accounts>;

const ADA: &str = "11111111-1111-4111-8111-111111111111";
const GRACE: &str = "22222222-2222-4222-8222-222222222222";
const ALAN: &str = "33333333-3333-4333-8333-333333333333";

fn opened(id: &str, holder: &str, created: &str, balance: &str) -> String {
    format!(
        r#"{{"id":"{id}","accountHolder":"{holder}","accountType":"SAVINGS","openedAt":"{created}","openingBalance":{balance}}}"#
    )
}

fn moved(id: &str, amount: &str) -> String {
    format!(r#"{{"id":"{id}","amount":{amount}}}"#)
}

fn closed(id: &str) -> String {
    format!(r#"{{"id":"{id}"}}"#)
}

/// Ada (50), Grace (100.25) and Alan (0), opened in that order.
fn three_accounts() -> Test {
    Test::given(&[])
        .and("AccountOpenedEvent", &opened(ADA, "Ada Lovelace", "2026-01-01T10:00:00.000Z", "50"))
        .and("AccountOpenedEvent", &opened(GRACE, "Grace Hopper", "2026-01-02T10:00:00.000Z", "100.25"))
        .and("AccountOpenedEvent", &opened(ALAN, "Alan Turing", "2026-01-03T10:00:00.000Z", "0"))
}

/// A JSON number with exactly this text.
#[track_caller]
fn decimal(text: &str) -> serde_json::Number {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The accounts of query `name`'s 200 answer, after checking its message is the seed's: the
/// lookups of one account (`byId`, `byHolder`) say "bank account", the lists count them.
#[track_caller]
fn accounts(test: &mut Test, name: &str, params: &[(&str, &str)]) -> Vec<Value> {
    let body = test.query(name, params).then_expect_status(200).json();
    let accounts = body["accounts"].as_array().cloned().unwrap_or_else(|| panic!("no accounts in {body}"));
    let expected = match name {
        "byId" | "byHolder" => "Successfully returned bank account!".to_owned(),
        _ => format!("Successfully returned {} bank account(s)!", accounts.len()),
    };
    assert_eq!(body["message"], expected, "the message of {name}");
    accounts
}

/// The ids of query `name`'s 200 answer's accounts, in order.
#[track_caller]
fn ids(test: &mut Test, name: &str, params: &[(&str, &str)]) -> Vec<String> {
    accounts(test, name, params).iter().map(|a| a["id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// A balance exactly as the body spells it.
#[track_caller]
fn balance(test: &mut Test, id: &str) -> String {
    accounts(test, "byId", &[("id", id)])[0]["balance"].to_string()
}

#[track_caller]
fn expect_no_content(outcome: QueryOutcome) {
    let outcome = outcome.then_expect_status(204);
    assert_eq!(outcome.result.map(|a| a.body), Ok(String::new()));
}

#[track_caller]
fn expect_invalid(outcome: QueryOutcome) -> String {
    match outcome.result {
        Err(QueryError::Invalid(message)) => message,
        other => panic!("expected an invalid query, got {other:?}"),
    }
}

#[test]
fn declares_the_seed_routes_over_its_own_queries() {
    let manifest = Accounts::manifest();
    assert_eq!(manifest.name, "accounts");
    assert_eq!(manifest.schema_version, 1);
    assert_eq!(
        manifest.subscriptions,
        ["AccountOpenedEvent", "FundsDepositedEvent", "FundsWithdrawnEvent", "AccountClosedEvent"]
    );
    for route in &manifest.routes {
        assert!(manifest.queries.contains(&route.query), "{} names an undeclared query", route.path);
        assert!(!route.case_insensitive, "the Java seed matched routes exactly");
    }
    let paths: Vec<&str> = manifest.routes.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"/api/v1/bankAccountLookup/"));
    assert!(paths.contains(&"/api/v1/bankAccountLookup"));
    let rebuild = &manifest.rebuild_routes[0];
    assert_eq!(
        (rebuild.path.as_str(), rebuild.success_status, rebuild.success_message.as_str()),
        ("/api/v1/restoreReadDb", 201, "Read database restore request completed successfully!")
    );
}

#[test]
fn no_accounts_is_no_content() {
    expect_no_content(Test::given(&[]).query("all", &[]));
}

#[test]
fn an_opened_account_is_listed_as_the_seed_showed_it() {
    let mut test =
        Test::given(&[]).and("AccountOpenedEvent", &opened(ADA, "Ada Lovelace", "2026-01-01T10:00:00.000Z", "50"));
    let body = test.query("all", &[]).then_expect_status(200).json();
    let expected = json!({
        "message": "Successfully returned 1 bank account(s)!",
        "accounts": [{
            "id": ADA,
            "accountHolder": "Ada Lovelace",
            "creationDate": "2026-01-01T10:00:00.000Z",
            "accountType": "SAVINGS",
            "balance": decimal("50.00"),
        }],
    });
    assert_eq!(body, expected);
    assert_eq!(body["accounts"][0]["balance"].to_string(), "50.00");
}

#[test]
fn all_is_ordered_by_creation_date_then_id() {
    let same_time = "2026-01-01T09:00:00.000Z";
    let mut test = three_accounts()
        .and("AccountOpenedEvent", &opened("b", "Late B", "2026-01-04T00:00:00.000Z", "1"))
        .and("AccountOpenedEvent", &opened("z", "Early Z", same_time, "1"))
        .and("AccountOpenedEvent", &opened("y", "Early Y", same_time, "1"));
    assert_eq!(ids(&mut test, "all", &[]), ["y", "z", ADA, GRACE, ALAN, "b"]);
}

#[test]
fn by_id_finds_one_account_or_none() {
    let mut test = three_accounts();
    let found = accounts(&mut test, "byId", &[("id", GRACE)]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["accountHolder"], "Grace Hopper");
    assert_eq!(found[0]["balance"].to_string(), "100.25");
    expect_no_content(test.query("byId", &[("id", "44444444-4444-4444-8444-444444444444")]));
}

#[test]
fn by_holder_finds_every_account_of_the_holder() {
    let mut test =
        three_accounts().and("AccountOpenedEvent", &opened("ada-2", "Ada Lovelace", "2026-02-01T00:00:00.000Z", "5"));
    assert_eq!(ids(&mut test, "byHolder", &[("accountHolder", "Ada Lovelace")]), [ADA, "ada-2"]);
    expect_no_content(test.query("byHolder", &[("accountHolder", "Nobody")]));
    expect_no_content(test.query("byHolder", &[("accountHolder", "ada lovelace")]));
}

#[test]
fn deposits_add_exactly() {
    let mut test = Test::given(&[])
        .and("AccountOpenedEvent", &opened(ADA, "Ada Lovelace", "2026-01-01T10:00:00.000Z", "0"))
        .and("FundsDepositedEvent", &moved(ADA, "0.1"))
        .and("FundsDepositedEvent", &moved(ADA, "0.2"));
    assert_eq!(balance(&mut test, ADA), "0.30");
    let mut test = test.and("FundsDepositedEvent", &moved(ADA, "1.5e1"));
    assert_eq!(balance(&mut test, ADA), "15.30");
}

#[test]
fn withdrawals_subtract_exactly() {
    let mut test = three_accounts().and("FundsWithdrawnEvent", &moved(GRACE, "40.05"));
    assert_eq!(balance(&mut test, GRACE), "60.20");
    let mut test = test.and("FundsWithdrawnEvent", &moved(GRACE, "60.2"));
    assert_eq!(balance(&mut test, GRACE), "0.00");
    assert_eq!(balance(&mut test, ADA), "50.00", "other accounts are untouched");
}

#[test]
fn a_closed_account_disappears() {
    let mut test = three_accounts().and("AccountClosedEvent", &closed(GRACE));
    expect_no_content(test.query("byId", &[("id", GRACE)]));
    expect_no_content(test.query("byHolder", &[("accountHolder", "Grace Hopper")]));
    assert_eq!(ids(&mut test, "all", &[]), [ADA, ALAN]);
    let mut test = test.and("AccountClosedEvent", &closed(ADA)).and("AccountClosedEvent", &closed(ALAN));
    expect_no_content(test.query("all", &[]));
}

#[test]
fn events_for_an_account_not_in_the_table_change_nothing() {
    let mut test = three_accounts()
        .and("FundsDepositedEvent", &moved("unknown", "10"))
        .and("FundsWithdrawnEvent", &moved("unknown", "10"))
        .and("AccountClosedEvent", &closed("unknown"));
    assert_eq!(ids(&mut test, "all", &[]), [ADA, GRACE, ALAN]);
}

#[test]
fn unreadable_events_are_refused() {
    let mut test = three_accounts();
    assert!(test.apply("FundsDepositedEvent", &format!(r#"{{"id":"{ADA}","amount":"10"}}"#)).is_err());
    assert!(test.apply("FundsDepositedEvent", &moved(ADA, "0.001")).is_err_and(|e| e.contains("decimal places")));
    assert!(test.apply("AccountOpenedEvent", r#"{"id":"x"}"#).is_err());
    assert!(test.apply("AccountOpenedEvent", &opened(ADA, "Again", "2026-01-01T10:00:00.000Z", "1")).is_err());
    assert_eq!(balance(&mut test, ADA), "50.00");
}

#[test]
fn with_balance_greater_than_excludes_the_boundary() {
    let mut test = three_accounts();
    assert_eq!(ids(&mut test, "withBalance", &[("equalityType", "GREATER_THAN"), ("balance", "50")]), [GRACE]);
    assert_eq!(ids(&mut test, "withBalance", &[("equalityType", "GREATER_THAN"), ("balance", "49.99")]), [ADA, GRACE]);
    assert_eq!(
        ids(&mut test, "withBalance", &[("equalityType", "GREATER_THAN"), ("balance", "-1")]),
        [ADA, GRACE, ALAN]
    );
    expect_no_content(test.query("withBalance", &[("equalityType", "GREATER_THAN"), ("balance", "100.25")]));
}

#[test]
fn with_balance_less_than_excludes_the_boundary() {
    let mut test = three_accounts();
    assert_eq!(ids(&mut test, "withBalance", &[("equalityType", "LESS_THAN"), ("balance", "50")]), [ALAN]);
    assert_eq!(
        ids(&mut test, "withBalance", &[("equalityType", "LESS_THAN"), ("balance", "100.26")]),
        [ADA, GRACE, ALAN]
    );
    expect_no_content(test.query("withBalance", &[("equalityType", "LESS_THAN"), ("balance", "0")]));
}

#[test]
fn with_balance_compares_exact_decimals() {
    let mut test = Test::given(&[])
        .and("AccountOpenedEvent", &opened(ADA, "Ada Lovelace", "2026-01-01T10:00:00.000Z", "0"))
        .and("FundsDepositedEvent", &moved(ADA, "0.1"))
        .and("FundsDepositedEvent", &moved(ADA, "0.2"));
    expect_no_content(test.query("withBalance", &[("equalityType", "GREATER_THAN"), ("balance", "0.3")]));
    expect_no_content(test.query("withBalance", &[("equalityType", "LESS_THAN"), ("balance", "0.30")]));
    assert_eq!(ids(&mut test, "withBalance", &[("equalityType", "LESS_THAN"), ("balance", "0.31")]), [ADA]);
}

#[test]
fn with_balance_refuses_an_unknown_equality_type() {
    let mut test = three_accounts();
    for equality in ["EQUAL", "greater_than", ""] {
        let message = expect_invalid(test.query("withBalance", &[("equalityType", equality), ("balance", "1")]));
        assert!(message.contains("GREATER_THAN or LESS_THAN"), "{message}");
    }
}

#[test]
fn with_balance_refuses_a_balance_that_is_not_an_amount() {
    let mut test = three_accounts();
    for balance in ["ten", "1.005", "", "1e99"] {
        let message = expect_invalid(test.query("withBalance", &[("equalityType", "LESS_THAN"), ("balance", balance)]));
        assert!(message.starts_with("balance must be an amount of money"), "{message}");
    }
}

#[test]
fn missing_parameters_and_unknown_queries_are_refused() {
    let mut test = three_accounts();
    assert!(expect_invalid(test.query("byId", &[])).contains("id"));
    assert!(expect_invalid(test.query("byHolder", &[])).contains("accountHolder"));
    assert!(expect_invalid(test.query("withBalance", &[("balance", "1")])).contains("equalityType"));
    assert!(expect_invalid(test.query("withBalance", &[("equalityType", "LESS_THAN")])).contains("balance"));
    assert!(matches!(test.query("byBalance", &[]).result, Err(QueryError::UnknownQuery(name)) if name == "byBalance"));
}
