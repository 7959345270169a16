//! Given/when/then tests of every bank account rule, through the same JSON glue the component
//! uses: typed commands for the rules, raw request bodies (`when_json`) for what clients send.

use bank_account::{AccountType, BankAccount, BankAccountCommand, BankAccountEvent, Money};
use sluice_sdk::testing::{AggregateTest, test_context};
use sluice_sdk::{Aggregate, CommandContext, CommandError, StoredEvent, runtime};

type Test = AggregateTest<BankAccount>;

fn id() -> String {
    test_context().aggregate_id
}

#[track_caller]
fn money(text: &str) -> Money {
    text.parse().unwrap_or_else(|e| panic!("test amount {text}: {e}"))
}

fn opened(balance: &str) -> BankAccountEvent {
    BankAccountEvent::AccountOpened {
        id: id(),
        account_holder: "Ada Lovelace".to_owned(),
        account_type: AccountType::Savings,
        opened_at: test_context().issued_at,
        opening_balance: money(balance),
    }
}

fn deposited(amount: &str) -> BankAccountEvent {
    BankAccountEvent::FundsDeposited { id: id(), amount: money(amount) }
}

fn withdrawn(amount: &str) -> BankAccountEvent {
    BankAccountEvent::FundsWithdrawn { id: id(), amount: money(amount) }
}

fn closed() -> BankAccountEvent {
    BankAccountEvent::AccountClosed { id: id() }
}

fn deposit(amount: &str) -> BankAccountCommand {
    BankAccountCommand::DepositFunds { amount: money(amount) }
}

fn withdraw(amount: &str) -> BankAccountCommand {
    BankAccountCommand::WithdrawFunds { amount: money(amount) }
}

/// The state the host would keep after `events`, rendered as `GET /api/aggregates/...` shows it.
/// (`AggregateTest` has no way to look at the state, so this replays through the runtime.)
#[track_caller]
fn rendered_state(events: &[BankAccountEvent]) -> String {
    let stored: Vec<StoredEvent> = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let new = runtime::to_new_event(event);
            StoredEvent {
                aggregate_type: "BankAccount".to_owned(),
                aggregate_id: id(),
                version: i as u64 + 1,
                global_position: i as u64 + 1,
                event_type: new.event_type,
                schema_version: new.schema_version,
                data: new.data,
                recorded_at: test_context().issued_at,
            }
        })
        .collect();
    let state = runtime::evolve::<BankAccount>(None, &stored).unwrap_or_else(|e| panic!("evolve: {e}"));
    runtime::render::<BankAccount>(&state).unwrap_or_else(|e| panic!("render: {e}"))
}

#[track_caller]
fn balance_after(events: &[BankAccountEvent]) -> Money {
    let state: serde_json::Value =
        serde_json::from_str(&rendered_state(events)).unwrap_or_else(|e| panic!("state is not JSON: {e}"));
    serde_json::from_value(state["balance"].clone()).unwrap_or_else(|e| panic!("balance: {e}"))
}

// ---- OpenAccount -------------------------------------------------------------------------

#[test]
fn open_account_opens_it_under_the_routes_id_at_the_commands_time() {
    Test::given_no_previous_events()
        .when(BankAccountCommand::OpenAccount {
            account_holder: "Ada Lovelace".to_owned(),
            account_type: AccountType::Savings,
            opening_balance: money("50"),
        })
        .then_expect_events(vec![opened("50")]);
}

#[test]
fn open_account_takes_the_seeds_body() {
    let ctx = CommandContext {
        aggregate_id: "5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9d10".to_owned(),
        issued_at: "2026-03-04T05:06:07Z".to_owned(),
        fresh_id: "5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9dff".to_owned(),
    };
    Test::given_no_previous_events()
        .with_context(ctx)
        .when_json("OpenAccount", r#"{"accountHolder": "John Doe", "accountType": "CURRENT", "openingBalance": 50.0}"#)
        .then_expect_events(vec![BankAccountEvent::AccountOpened {
            id: "5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9d10".to_owned(),
            account_holder: "John Doe".to_owned(),
            account_type: AccountType::Current,
            opened_at: "2026-03-04T05:06:07Z".to_owned(),
            opening_balance: money("50.0"),
        }]);
}

#[test]
fn open_account_with_a_zero_opening_balance() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada Lovelace", "accountType": "SAVINGS", "openingBalance": 0}"#)
        .then_expect_events(vec![opened("0")]);
}

#[test]
fn open_account_without_an_opening_balance_opens_it_empty_as_the_seed_did() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada Lovelace", "accountType": "SAVINGS"}"#)
        .then_expect_events(vec![opened("0")]);
}

#[test]
fn open_account_ignores_fields_it_does_not_know_as_the_seed_did() {
    Test::given_no_previous_events()
        .when_json(
            "OpenAccount",
            r#"{"id": "ignored", "accountHolder": "Ada Lovelace", "accountType": "SAVINGS", "openingBalance": 0}"#,
        )
        .then_expect_events(vec![opened("0")]);
}

#[test]
fn open_account_without_a_holder_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountType": "SAVINGS", "openingBalance": 50.0}"#)
        .then_expect_invalid("missing field `accountHolder`");
}

#[test]
fn open_account_with_a_null_holder_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": null, "accountType": "SAVINGS", "openingBalance": 50.0}"#)
        .then_expect_invalid("invalid type: null");
}

#[test]
fn open_account_with_a_blank_holder_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": " \t ", "accountType": "SAVINGS", "openingBalance": 50.0}"#)
        .then_expect_invalid("account holder is required");
}

#[test]
fn open_account_with_an_unknown_account_type_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "CHECKING", "openingBalance": 50.0}"#)
        .then_expect_invalid("unknown variant `CHECKING`, expected `SAVINGS` or `CURRENT`");
}

#[test]
fn open_account_type_names_are_upper_case() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "savings", "openingBalance": 50.0}"#)
        .then_expect_invalid("unknown variant `savings`");
}

#[test]
fn open_account_without_an_account_type_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "openingBalance": 50.0}"#)
        .then_expect_invalid("missing field `accountType`");
}

#[test]
fn open_account_with_a_negative_opening_balance_is_rejected() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": -0.01}"#)
        .then_expect_rejected("The opening balance cannot be negative!");
}

#[test]
fn open_account_with_an_opening_balance_of_three_decimal_places_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": 50.125}"#)
        .then_expect_invalid("at most 2 decimal places");
}

#[test]
fn open_account_with_a_quoted_opening_balance_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": "50"}"#)
        .then_expect_invalid("expected a JSON number");
}

#[test]
fn open_account_with_malformed_json_is_invalid() {
    Test::given_no_previous_events()
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "#)
        .then_expect_invalid("EOF while parsing a value");
}

#[test]
fn a_body_that_smuggles_a_second_command_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 5}, "WithdrawFunds": {"amount": 6}"#)
        .then_expect_invalid("");
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 5}}"#)
        .then_expect_invalid("trailing characters");
}

#[test]
fn a_duplicated_amount_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 5, "amount": 6}"#)
        .then_expect_invalid("duplicate field `amount`");
}

#[test]
fn open_account_with_a_body_that_is_not_an_object_is_invalid() {
    Test::given_no_previous_events().when_json("OpenAccount", "[]").then_expect_invalid("invalid length 0");
}

#[test]
fn opening_an_open_account_again_is_rejected() {
    Test::given(vec![opened("50")])
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": 1}"#)
        .then_expect_rejected("has already been opened");
}

#[test]
fn opening_a_closed_account_again_is_rejected() {
    Test::given(vec![opened("0"), closed()])
        .when_json("OpenAccount", r#"{"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": 1}"#)
        .then_expect_rejected("has already been opened");
}

// ---- DepositFunds ------------------------------------------------------------------------

#[test]
fn deposit_funds() {
    Test::given(vec![opened("50")]).when(deposit("10.5")).then_expect_events(vec![deposited("10.5")]);
}

#[test]
fn deposit_funds_takes_the_seeds_body() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 10.5}"#)
        .then_expect_events(vec![deposited("10.5")]);
}

#[test]
fn deposit_into_a_closed_account_is_rejected() {
    Test::given(vec![opened("50"), closed()])
        .when(deposit("10"))
        .then_expect_rejected("Funds cannot be deposited into a closed account!");
}

#[test]
fn deposit_of_zero_is_rejected() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 0}"#)
        .then_expect_rejected("The deposit amount must be greater than 0!");
}

#[test]
fn deposit_of_negative_zero_is_rejected() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": -0.0}"#)
        .then_expect_rejected("The deposit amount must be greater than 0!");
}

#[test]
fn deposit_of_a_negative_amount_is_rejected() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": -10.5}"#)
        .then_expect_rejected("The deposit amount must be greater than 0!");
}

#[test]
fn deposit_of_a_non_numeric_amount_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": "abc"}"#)
        .then_expect_invalid(r#"invalid type: string "abc", expected a JSON number"#);
}

#[test]
fn deposit_of_a_numeric_string_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": "10.5"}"#)
        .then_expect_invalid("expected a JSON number");
}

#[test]
fn deposit_of_a_boolean_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": true}"#)
        .then_expect_invalid("invalid type: boolean `true`, expected a JSON number");
}

#[test]
fn deposit_of_null_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": null}"#)
        .then_expect_invalid("expected a JSON number");
}

#[test]
fn deposit_without_an_amount_is_invalid() {
    Test::given(vec![opened("50")]).when_json("DepositFunds", "{}").then_expect_invalid("missing field `amount`");
}

#[test]
fn deposit_of_three_decimal_places_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 10.005}"#)
        .then_expect_invalid("10.005 has too many decimal places: an amount of money has at most 2 decimal places");
}

#[test]
fn deposit_of_trailing_zeros_beyond_two_places_is_the_same_amount() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 10.500}"#)
        .then_expect_events(vec![deposited("10.5")]);
}

#[test]
fn deposit_in_scientific_notation_is_read_exactly() {
    // Jackson writes large doubles this way (`1.0E7`), so the seed's clients may too.
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 1.0E7}"#)
        .then_expect_events(vec![deposited("10000000")]);
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 1055e-2}"#)
        .then_expect_events(vec![deposited("10.55")]);
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 1e-3}"#)
        .then_expect_invalid("at most 2 decimal places");
}

#[test]
fn deposit_of_an_amount_beyond_money_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 1000000000000000}"#)
        .then_expect_invalid("too large");
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 1e400}"#)
        .then_expect_invalid("is not an exact amount of money");
    Test::given(vec![opened("50")])
        .when_json("DepositFunds", r#"{"amount": 123456789012345678901234567890123456789}"#)
        .then_expect_invalid("is not an exact amount of money");
}

#[test]
fn deposit_that_would_take_the_balance_beyond_money_is_rejected() {
    Test::given(vec![opened("999999999999999.99")])
        .when(deposit("0.01"))
        .then_expect_rejected("Deposit declined, the balance cannot exceed 999999999999999.99!");
}

#[test]
fn deposit_into_an_account_never_opened_is_not_found() {
    Test::given_no_previous_events().when(deposit("10")).then_expect_error(CommandError::NotFound(format!(
        "Incorrect account ID provided, no bank account {} exists!",
        id()
    )));
}

// ---- WithdrawFunds -----------------------------------------------------------------------

#[test]
fn withdraw_funds() {
    Test::given(vec![opened("50")])
        .when_json("WithdrawFunds", r#"{"amount": 10.5}"#)
        .then_expect_events(vec![withdrawn("10.5")]);
}

#[test]
fn withdraw_exactly_the_balance() {
    Test::given(vec![opened("50"), deposited("0.25")])
        .when(withdraw("50.25"))
        .then_expect_events(vec![withdrawn("50.25")]);
}

#[test]
fn withdraw_more_than_the_balance_is_rejected() {
    Test::given(vec![opened("50"), deposited("0.25")])
        .when(withdraw("50.26"))
        .then_expect_rejected("Withdrawal declined, insufficient funds!");
}

#[test]
fn withdraw_counts_every_past_withdrawal() {
    Test::given(vec![opened("50"), withdrawn("20"), withdrawn("30")])
        .when(withdraw("0.01"))
        .then_expect_rejected("Withdrawal declined, insufficient funds!");
}

#[test]
fn withdraw_from_a_closed_account_is_rejected() {
    Test::given(vec![opened("50"), closed()])
        .when(withdraw("10"))
        .then_expect_rejected("Funds cannot be withdrawn from a closed account!");
}

#[test]
fn withdraw_of_zero_is_rejected() {
    Test::given(vec![opened("50")])
        .when_json("WithdrawFunds", r#"{"amount": 0.00}"#)
        .then_expect_rejected("The withdrawal amount must be greater than 0!");
}

#[test]
fn withdraw_of_a_negative_amount_is_rejected() {
    // With the seed's rules alone this would have been a deposit in disguise.
    Test::given(vec![opened("50")])
        .when_json("WithdrawFunds", r#"{"amount": -100}"#)
        .then_expect_rejected("The withdrawal amount must be greater than 0!");
}

#[test]
fn withdraw_of_a_non_numeric_amount_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("WithdrawFunds", r#"{"amount": "abc"}"#)
        .then_expect_invalid("expected a JSON number");
    Test::given(vec![opened("50")])
        .when_json("WithdrawFunds", r#"{"amount": [10]}"#)
        .then_expect_invalid("expected a JSON number");
}

#[test]
fn withdraw_of_three_decimal_places_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("WithdrawFunds", r#"{"amount": 10.005}"#)
        .then_expect_invalid("at most 2 decimal places");
}

#[test]
fn withdraw_from_an_account_never_opened_is_not_found() {
    match Test::given_no_previous_events().when(withdraw("10")).into_result() {
        Err(CommandError::NotFound(message)) => assert!(message.contains(&id()), "{message}"),
        other => panic!("expected not found, got {other:?}"),
    }
}

// ---- CloseAccount ------------------------------------------------------------------------

#[test]
fn close_account() {
    Test::given(vec![opened("50")]).when_json("CloseAccount", "{}").then_expect_events(vec![closed()]);
}

#[test]
fn close_account_with_money_left_closes_it_as_the_seed_did() {
    Test::given(vec![opened("50"), deposited("10")])
        .when(BankAccountCommand::CloseAccount {})
        .then_expect_events(vec![closed()]);
}

#[test]
fn close_a_closed_account_is_rejected() {
    Test::given(vec![opened("50"), closed()])
        .when_json("CloseAccount", "{}")
        .then_expect_rejected("The bank account has already been closed!");
}

#[test]
fn close_an_account_never_opened_is_not_found() {
    match Test::given_no_previous_events().when_json("CloseAccount", "{}").into_result() {
        Err(CommandError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

// ---- Commands the aggregate does not know ------------------------------------------------

#[test]
fn an_unknown_command_is_invalid() {
    Test::given(vec![opened("50")])
        .when_json("TransferFunds", r#"{"amount": 1}"#)
        .then_expect_invalid("unknown variant `TransferFunds`");
}

// ---- State -------------------------------------------------------------------------------

#[test]
fn balances_are_exact_decimals() {
    // In binary floating point 0.1 + 0.2 is 0.30000000000000004.
    assert_eq!(balance_after(&[opened("0"), deposited("0.1"), deposited("0.2")]), money("0.3"));
    Test::given(vec![opened("0"), deposited("0.1"), deposited("0.2")])
        .when(withdraw("0.3"))
        .then_expect_events(vec![withdrawn("0.3")]);
    assert_eq!(balance_after(&[opened("0.3"), withdrawn("0.1"), withdrawn("0.2")]), Money::ZERO, "nothing left over");
}

#[test]
fn state_renders_as_the_account() {
    assert_eq!(
        rendered_state(&[opened("50.0"), deposited("10.25"), withdrawn("0.25")]),
        format!(
            r#"{{"id":"{}","accountHolder":"Ada Lovelace","accountType":"SAVINGS","balance":60.00,"active":true,"createdDate":"{}"}}"#,
            id(),
            test_context().issued_at
        )
    );
}

#[test]
fn a_closed_account_renders_inactive() {
    assert!(rendered_state(&[opened("1"), closed()]).contains(r#""active":false"#));
}

#[test]
fn an_account_never_opened_renders_as_null() {
    assert_eq!(rendered_state(&[]), "null");
}

// ---- The contract with the host and the projection ---------------------------------------

#[test]
fn events_are_written_with_the_seeds_names_and_fields() {
    let written = runtime::to_new_event(&opened("50.0"));
    assert_eq!(written.event_type, "AccountOpenedEvent");
    assert_eq!(written.schema_version, 2, "openedAt since schema version 2");
    assert_eq!(
        written.data,
        format!(
            r#"{{"id":"{}","accountHolder":"Ada Lovelace","accountType":"SAVINGS","openedAt":"{}","openingBalance":50.0}}"#,
            id(),
            test_context().issued_at
        )
    );
    let written = runtime::to_new_event(&deposited("10.5"));
    assert_eq!(
        (written.event_type.as_str(), written.data),
        ("FundsDepositedEvent", format!(r#"{{"id":"{}","amount":10.5}}"#, id()))
    );
}

#[test]
fn the_manifest_declares_every_command_and_event_the_code_has() {
    let manifest = BankAccount::manifest();
    assert_eq!(manifest.aggregate_type, "BankAccount");
    assert_eq!(manifest.topic, "BankAccountEvents");

    let events: Vec<String> = [opened("0"), deposited("1"), withdrawn("1"), closed()]
        .iter()
        .map(|event| runtime::to_new_event(event).event_type)
        .collect();
    assert_eq!(manifest.events, events);

    let commands: Vec<(String, bool)> = [
        BankAccountCommand::OpenAccount {
            account_holder: "Ada".to_owned(),
            account_type: AccountType::Savings,
            opening_balance: Money::ZERO,
        },
        deposit("1"),
        withdraw("1"),
        BankAccountCommand::CloseAccount {},
    ]
    .iter()
    .map(|command| {
        let (name, _) = runtime::to_tagged(command).unwrap_or_else(|e| panic!("{e}"));
        let creates = name == "OpenAccount";
        (name, creates)
    })
    .collect();
    let declared: Vec<(String, bool)> = manifest.commands.into_iter().map(|c| (c.name, c.creates)).collect();
    assert_eq!(declared, commands);

    for route in &manifest.routes {
        assert!(declared.iter().any(|(name, _)| *name == route.command), "route to unknown {}", route.command);
    }
}

#[test]
fn the_manifest_mounts_the_seeds_routes() {
    use sluice_sdk::{IdSource, Method};

    let routes: Vec<_> = BankAccount::manifest()
        .routes
        .into_iter()
        .map(|r| (r.method, r.path, r.command, r.id, r.success_status, r.success_message, r.case_insensitive))
        .collect();
    let path_id = || IdSource::PathParam("id".to_owned());
    assert_eq!(
        routes,
        vec![
            (
                Method::Post,
                "/api/v1/openBankAccount".to_owned(),
                "OpenAccount".to_owned(),
                IdSource::NewUuid,
                201,
                "Bank account creation request completed successfully!".to_owned(),
                false
            ),
            (
                Method::Put,
                "/api/v1/depositFunds/{id}".to_owned(),
                "DepositFunds".to_owned(),
                path_id(),
                200,
                "Deposit funds request completed successfully!".to_owned(),
                false
            ),
            (
                Method::Put,
                "/api/v1/withdrawFunds/{id}".to_owned(),
                "WithdrawFunds".to_owned(),
                path_id(),
                200,
                "Withdraw funds request completed successfully!".to_owned(),
                false
            ),
            (
                Method::Delete,
                "/api/v1/closeBankAccount/{id}".to_owned(),
                "CloseAccount".to_owned(),
                path_id(),
                200,
                "Bank account closure request successfully completed!".to_owned(),
                false
            ),
        ]
    );
}
