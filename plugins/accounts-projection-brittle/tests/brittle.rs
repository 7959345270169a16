//! Given events, when each is applied, then this result: the brittle candidate applies every
//! bank account event as version 1 does except withdrawals, which it refuses with its reason.

use accounts_projection::Accounts;
use accounts_projection_brittle::{AccountsBrittle, REFUSAL};
use sluice_projection_sdk::Projection;
use sluice_projection_sdk::testing::ProjectionTest;

const ADA: &str = "11111111-1111-4111-8111-111111111111";

fn opened() -> String {
    format!(
        r#"{{"id":"{ADA}","accountHolder":"Ada Lovelace","accountType":"SAVINGS","openedAt":"2026-01-01T10:00:00.000Z","openingBalance":50}}"#
    )
}

#[test]
fn declares_what_version_1_does() {
    let (v1, brittle) = (Accounts::manifest(), AccountsBrittle::manifest());
    assert_eq!(brittle.name, v1.name);
    assert_eq!(brittle.schema_version, v1.schema_version);
    assert_eq!(brittle.subscriptions, v1.subscriptions);
    assert_eq!(brittle.tables, v1.tables);
}

#[test]
fn withdrawals_are_refused_and_everything_else_applies_as_in_version_1() {
    let deposit = format!(r#"{{"id":"{ADA}","amount":0.1}}"#);
    let withdrawal = format!(r#"{{"id":"{ADA}","amount":10}}"#);
    let mut brittle = ProjectionTest::<AccountsBrittle>::given(&[("AccountOpenedEvent", opened().as_str())]);
    assert_eq!(brittle.apply("FundsDepositedEvent", &deposit), Ok(()));
    assert_eq!(brittle.apply("FundsWithdrawnEvent", &withdrawal), Err(REFUSAL.to_owned()));
    let mut v1 = ProjectionTest::<Accounts>::given(&[
        ("AccountOpenedEvent", opened().as_str()),
        ("FundsDepositedEvent", deposit.as_str()),
    ]);
    let (ours, theirs) = (brittle.query("all", &[]).json(), v1.query("all", &[]).json());
    assert_eq!(ours, theirs);
    assert_eq!(ours["accounts"][0]["balance"].to_string(), "50.10");
}
