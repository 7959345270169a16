//! A bank account's life through the seed routes and the generic API, as a client sees it:
//! every answer, the state at every version, the event stream, `If-Match`, and a restart.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sluice_e2e::{Api, Host, HostOptions, Reply, check_stream, decimal, number};
use uuid::Uuid;

const BANK: &str = "BankAccount";

/// The current state of an account (200), as the `state` object.
async fn account(api: &Api, id: &str, version: Option<u64>) -> Result<(u64, Value)> {
    let reply = api.state(BANK, id, version).await?.expect_status(200)?;
    ensure!(reply.body["aggregateType"] == BANK, "wrong aggregateType: {reply}");
    ensure!(reply.body["id"] == id, "wrong id: {reply}");
    let version = reply.u64_field("version")?;
    Ok((version, reply.body["state"].clone()))
}

/// Checks balance (exactly, as a decimal) and whether the account is active.
fn check_account(state: &Value, balance: &str, active: bool) -> Result<()> {
    let actual = decimal(&state["balance"]).with_context(|| format!("balance of {state}"))?;
    ensure!(actual == balance, "balance is {actual}, expected {balance}: {state}");
    ensure!(state["active"] == active, "active is {}, expected {active}: {state}", state["active"]);
    Ok(())
}

/// A seed command answer: `{"message", "id", "version", "position"}`.
fn check_seed_answer(reply: &Reply, id: &str, version: u64) -> Result<u64> {
    ensure!(reply.str_field("message").is_ok_and(|m| !m.is_empty()), "no message: {reply}");
    ensure!(reply.body["id"] == id, "wrong id: {reply}");
    ensure!(reply.u64_field("version")? == version, "expected version {version}: {reply}");
    reply.u64_field("position")
}

/// A generic command answer: `{"id", "version", "position", "events": [...]}` with one event.
fn check_generic_answer(reply: &Reply, id: &str, version: u64, event_type: &str) -> Result<u64> {
    ensure!(reply.body["id"] == id, "wrong id: {reply}");
    ensure!(reply.u64_field("version")? == version, "expected version {version}: {reply}");
    let position = reply.u64_field("position")?;
    let events = reply.body["events"].as_array().context("no events list")?;
    ensure!(events.len() == 1, "expected one event: {reply}");
    ensure!(events[0]["eventType"] == event_type, "expected {event_type}: {reply}");
    ensure!(sluice_e2e::u64_field(&events[0], "version")? == version, "event version: {reply}");
    ensure!(sluice_e2e::u64_field(&events[0], "position")? == position, "event position: {reply}");
    Ok(position)
}

#[tokio::test]
async fn seed_routes_run_an_account_from_open_to_close() -> Result<()> {
    let host = Host::start(HostOptions::default()).await?;
    host.healthy().await?;

    // Open: 201, a fresh UUID, version 1. 0.1 + 0.2 is the classic float trap.
    let open = json!({"accountHolder": "Ada Lovelace", "accountType": "SAVINGS", "openingBalance": number("0.1")});
    let reply = host.post_json("/api/v1/openBankAccount", &open).await?.expect_status(201)?;
    let id = reply.str_field("id")?.to_owned();
    Uuid::parse_str(&id).with_context(|| format!("id {id:?} is not a UUID"))?;
    let mut positions = vec![check_seed_answer(&reply, &id, 1)?];

    let (version, state) = account(&host, &id, None).await?;
    assert_eq!(version, 1);
    check_account(&state, "0.1", true)?;
    assert_eq!(state["accountHolder"], "Ada Lovelace");
    assert_eq!(state["accountType"], "SAVINGS");

    let steps: [(&str, &str, &str); 3] = [
        ("/api/v1/depositFunds", "0.2", "0.3"),
        ("/api/v1/depositFunds", "100.5", "100.8"),
        ("/api/v1/withdrawFunds", "20.25", "80.55"),
    ];
    for (index, (route, amount, balance)) in steps.iter().enumerate() {
        let version = index as u64 + 2;
        let reply =
            host.put_json(&format!("{route}/{id}"), &json!({"amount": number(amount)})).await?.expect_status(200)?;
        positions.push(check_seed_answer(&reply, &id, version)?);
        let (now, state) = account(&host, &id, None).await?;
        assert_eq!(now, version);
        check_account(&state, balance, true)?;
    }

    // A refusal changes nothing.
    let reply = host.put_json(&format!("/api/v1/withdrawFunds/{id}"), &json!({"amount": 1000})).await?;
    reply.check_error(400, &["rejected"])?;

    let reply = host.delete(&format!("/api/v1/closeBankAccount/{id}")).await?.expect_status(200)?;
    positions.push(check_seed_answer(&reply, &id, 5)?);
    let (version, state) = account(&host, &id, None).await?;
    assert_eq!(version, 5);
    assert_eq!(state["active"], false, "closed account still active: {state}");

    // A closed account refuses everything, as a business rule.
    for reply in [
        host.put_json(&format!("/api/v1/depositFunds/{id}"), &json!({"amount": 1})).await?,
        host.put_json(&format!("/api/v1/withdrawFunds/{id}"), &json!({"amount": 1})).await?,
        host.delete(&format!("/api/v1/closeBankAccount/{id}")).await?,
    ] {
        reply.check_error(400, &["rejected"])?;
    }

    // History: the state as of each version.
    for (version, balance) in [(1, "0.1"), (2, "0.3"), (3, "100.8"), (4, "80.55")] {
        let (at, state) = account(&host, &id, Some(version)).await?;
        assert_eq!(at, version, "?version={version} answered another version");
        check_account(&state, balance, true)?;
    }
    let (_, state) = account(&host, &id, Some(5)).await?;
    assert_eq!(state["active"], false);

    // The audit log: five events, in order, with their data.
    let events = host.events(BANK, &id).await?;
    check_stream(&events, BANK, &id)?;
    let types: Vec<&str> = events.iter().filter_map(|e| e["eventType"].as_str()).collect();
    assert_eq!(
        types,
        [
            "AccountOpenedEvent",
            "FundsDepositedEvent",
            "FundsDepositedEvent",
            "FundsWithdrawnEvent",
            "AccountClosedEvent"
        ]
    );
    let event_positions: Vec<u64> = events.iter().filter_map(|e| e["position"].as_u64()).collect();
    assert_eq!(event_positions, positions, "positions answered by the commands");
    let opened = &events[0]["data"];
    assert_eq!(opened["accountHolder"], "Ada Lovelace");
    assert_eq!(opened["accountType"], "SAVINGS");
    assert_eq!(decimal(&opened["openingBalance"])?, "0.1");
    for (index, amount) in [(1, "0.2"), (2, "100.5"), (3, "20.25")] {
        assert_eq!(decimal(&events[index]["data"]["amount"])?, amount, "event {index}");
    }
    Ok(())
}

#[tokio::test]
async fn generic_route_does_what_the_seed_routes_do() -> Result<()> {
    let host = Host::start(HostOptions::default()).await?;

    // The same account twice: once through the seed routes, once through the generic API.
    let seed_id = host.open_account("Grace Hopper", "50").await?;
    let id = Uuid::new_v4().to_string();
    let open = json!({"accountHolder": "Grace Hopper", "accountType": "SAVINGS", "openingBalance": 50});
    let reply = host.command(BANK, &id, "OpenAccount", &open, None).await?.expect_status(200)?;
    check_generic_answer(&reply, &id, 1, "AccountOpenedEvent")?;

    let steps = [
        ("DepositFunds", "/api/v1/depositFunds", "12.34", "FundsDepositedEvent"),
        ("WithdrawFunds", "/api/v1/withdrawFunds", "2.3", "FundsWithdrawnEvent"),
    ];
    for (index, (command, route, amount, event_type)) in steps.into_iter().enumerate() {
        let version = index as u64 + 2;
        let body = json!({"amount": number(amount)});
        let reply = host.command(BANK, &id, command, &body, None).await?.expect_status(200)?;
        check_generic_answer(&reply, &id, version, event_type)?;
        let reply = host.put_json(&format!("{route}/{seed_id}"), &body).await?.expect_status(200)?;
        check_seed_answer(&reply, &seed_id, version)?;
    }
    // An empty body is `{}`: CloseAccount needs nothing.
    let reply = host
        .send_raw(reqwest::Method::POST, &format!("/api/aggregates/{BANK}/{id}/commands/CloseAccount"), "")
        .await?
        .expect_status(200)?;
    check_generic_answer(&reply, &id, 4, "AccountClosedEvent")?;
    let reply = host.delete(&format!("/api/v1/closeBankAccount/{seed_id}")).await?.expect_status(200)?;
    check_seed_answer(&reply, &seed_id, 4)?;

    for version in 1..=4 {
        let (_, generic) = account(&host, &id, Some(version)).await?;
        let (_, seed) = account(&host, &seed_id, Some(version)).await?;
        for field in ["accountHolder", "accountType", "active"] {
            assert_eq!(generic[field], seed[field], "{field} at version {version}");
        }
        assert_eq!(decimal(&generic["balance"])?, decimal(&seed["balance"])?, "balance at version {version}");
    }
    let (_, state) = account(&host, &id, Some(3)).await?;
    check_account(&state, "60.04", true)?;

    let generic = host.events(BANK, &id).await?;
    let seed = host.events(BANK, &seed_id).await?;
    check_stream(&generic, BANK, &id)?;
    check_stream(&seed, BANK, &seed_id)?;
    let types = |events: &[Value]| events.iter().map(|e| e["eventType"].clone()).collect::<Vec<_>>();
    assert_eq!(types(&generic), types(&seed));
    Ok(())
}

#[tokio::test]
async fn if_match_guards_the_expected_version() -> Result<()> {
    let host = Host::start(HostOptions::default()).await?;
    let id = Uuid::new_v4().to_string();
    let open = json!({"accountHolder": "Edsger Dijkstra", "accountType": "CURRENT", "openingBalance": 10});

    // 0: the stream must not exist yet.
    let reply = host.command(BANK, &id, "OpenAccount", &open, Some(0)).await?.expect_status(200)?;
    check_generic_answer(&reply, &id, 1, "AccountOpenedEvent")?;
    let deposit = json!({"amount": 5});

    let reply = host.command(BANK, &id, "DepositFunds", &deposit, Some(1)).await?.expect_status(200)?;
    check_generic_answer(&reply, &id, 2, "FundsDepositedEvent")?;

    for stale in [0, 1, 3, 99] {
        let reply = host.command(BANK, &id, "DepositFunds", &deposit, Some(stale)).await?;
        reply.check_error(409, &["conflict"])?;
        assert_eq!(reply.u64_field("expectedVersion")?, stale, "{reply}");
        assert_eq!(reply.u64_field("actualVersion")?, 2, "{reply}");
    }
    let (version, state) = account(&host, &id, None).await?;
    assert_eq!(version, 2, "a conflict appended something");
    check_account(&state, "15", true)?;

    let reply = host.command(BANK, &id, "WithdrawFunds", &deposit, Some(2)).await?.expect_status(200)?;
    check_generic_answer(&reply, &id, 3, "FundsWithdrawnEvent")?;
    check_stream(&host.events(BANK, &id).await?, BANK, &id)?;
    Ok(())
}

#[tokio::test]
async fn accounts_survive_a_restart_and_a_crash() -> Result<()> {
    let mut host = Host::start(HostOptions::default()).await?;
    let id = host.open_account("Barbara Liskov", "20.5").await?;
    host.put_json(&format!("/api/v1/depositFunds/{id}"), &json!({"amount": number("0.75")}))
        .await?
        .expect_status(200)?;
    let before = host.events(BANK, &id).await?;

    // Graceful: SIGTERM, exit 0, same data folder.
    host.restart().await?;
    host.healthy().await?;
    assert_eq!(host.events(BANK, &id).await?, before, "events changed across a restart");
    let (version, state) = account(&host, &id, None).await?;
    assert_eq!(version, 2);
    check_account(&state, "21.25", true)?;

    // The stream goes on where it stopped.
    let reply =
        host.put_json(&format!("/api/v1/withdrawFunds/{id}"), &json!({"amount": 1})).await?.expect_status(200)?;
    check_seed_answer(&reply, &id, 3)?;

    // A crash: whatever was acknowledged is still there.
    host.kill()?;
    assert!(!host.is_running());
    host.restart().await?;
    let (version, state) = account(&host, &id, None).await?;
    assert_eq!(version, 3);
    check_account(&state, "20.25", true)?;
    let events = host.events(BANK, &id).await?;
    check_stream(&events, BANK, &id)?;
    assert_eq!(&events[..2], &before[..], "older events changed across a crash");

    let status = host.stop().await?;
    assert!(status.success(), "sluice exited with {status} on SIGTERM");
    Ok(())
}
