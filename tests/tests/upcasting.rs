//! Upcasting end to end: `AccountOpenedEvent`s written at schema version 1 (`createdDate`,
//! before the bank account plugin moved to version 2's `openedAt`) straight into the event
//! store, then the real host with the real plugins: commands on those streams, their state
//! (also as of an earlier version), the `accounts` projection fed by the embedded bus or by
//! Kafka (the events written while the host runs, so they travel through the relay and the
//! Kafka consumer), and its rebuild all see the current shape; the events route shows the events as
//! stored, and with `?upcast=true` as current; the stored rows never change.
//!
//! A dry run of the live `accounts` projection against itself over such a log upcasts the same
//! way and passes by the events the live consumer parked, so it finds no difference; without a
//! live consumer, an event its aggregate cannot upcast is one of the dry run's failures.
//!
//! On SQLite (embedded bus) and on the scale-out stack (FerretDB, Kafka, PostgreSQL).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_e2e::stored::{self, RawEvent};
use sluice_e2e::{Api, Check, Host, HostOptions, Plugin, Stack, decimal, number, wait_until};

const BANK: &[Plugin] = &[Plugin::BankAccount, Plugin::AccountsProjection];
const ADA: &str = "00000000-0000-4000-8000-00000000a001";
const BOB: &str = "00000000-0000-4000-8000-00000000b002";
const ADA_OPENED: &str = "2025-06-01T10:00:00.000Z";
const BOB_OPENED: &str = "2025-06-02T11:30:00.000Z";
const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "upcast-token";

/// Two accounts opened and one deposit, as the plugin's schema version 1 wrote them.
fn version_1_history() -> Vec<RawEvent> {
    let opened = |id: &str, holder: &str, at: &str, balance: &str| {
        RawEvent::new("BankAccount", id, 1, "AccountOpenedEvent", 1).data(&format!(
            r#"{{"id":"{id}","accountHolder":"{holder}","accountType":"SAVINGS","createdDate":"{at}","openingBalance":{balance}}}"#
        ))
    };
    vec![
        opened(ADA, "Ada Lovelace", ADA_OPENED, "10.50"),
        opened(BOB, "Bob Babbage", BOB_OPENED, "3"),
        RawEvent::new("BankAccount", ADA, 2, "FundsDepositedEvent", 1).data(&format!(r#"{{"id":"{ADA}","amount":5}}"#)),
    ]
}

/// The lookup answer once it reflects `position`: accounts by id, as (holder, creation date,
/// exact balance).
async fn lookup(api: &Api, position: u64) -> Result<std::collections::BTreeMap<String, (String, String, String)>> {
    let what = format!("the accounts lookup reflects position {position}");
    let reply = wait_until(&what, WAIT, || async {
        let request =
            api.request(Method::GET, "/api/v1/bankAccountLookup/").header("Sluice-Position", position.to_string());
        let reply = api.send(request).await?;
        match reply.status.as_u16() {
            200 => Ok(Check::Done(reply)),
            404 | 503 => Ok(Check::NotYet(reply.to_string())),
            _ => bail!("the lookup answered {reply}"),
        }
    })
    .await?;
    let list = reply.body["accounts"].as_array().ok_or_else(|| anyhow!("no accounts in {reply}"))?;
    let mut accounts = std::collections::BTreeMap::new();
    for account in list {
        let id = account["id"].as_str().ok_or_else(|| anyhow!("no id in {account}"))?;
        let field = |name: &str| account[name].as_str().unwrap_or_default().to_owned();
        accounts.insert(id.to_owned(), (field("accountHolder"), field("creationDate"), decimal(&account["balance"])?));
    }
    Ok(accounts)
}

fn account(holder: &str, created: &str, balance: &str) -> (String, String, String) {
    (holder.to_owned(), created.to_owned(), balance.to_owned())
}

/// `GET /api/aggregates/BankAccount/{id}/events`, as stored or upcast.
async fn events(api: &Api, id: &str, upcast: bool) -> Result<Vec<Value>> {
    let query = if upcast { "?upcast=true" } else { "" };
    let reply = api.get(&format!("/api/aggregates/BankAccount/{id}/events{query}")).await?.expect_status(200)?;
    reply.body["events"].as_array().cloned().ok_or_else(|| anyhow!("no events in {reply}"))
}

/// Everything a host on a store holding [`version_1_history`] (its last event at `v1_head`, with
/// `others` accounts opened by the host besides) must show; answers the position of the last
/// command it ran.
async fn check_current_shape_everywhere(api: &Api, v1_head: u64, others: usize) -> Result<u64> {
    // The projection (fed by whichever bus) read the version 1 events upcast: had it been handed
    // `createdDate`, it could not have read them, and would have dead-lettered them.
    let accounts = lookup(api, v1_head).await?;
    ensure!(
        accounts.get(ADA) == Some(&account("Ada Lovelace", ADA_OPENED, "15.5"))
            && accounts.get(BOB) == Some(&account("Bob Babbage", BOB_OPENED, "3"))
            && accounts.len() == 2 + others,
        "the read model of the version 1 events: {accounts:?}"
    );

    // State by replay, now and as of version 1.
    let state = api.state("BankAccount", ADA, None).await?.expect_status(200)?;
    ensure!(state.body["state"]["createdDate"] == ADA_OPENED, "state: {state}");
    ensure!(decimal(&state.body["state"]["balance"])? == "15.5", "state: {state}");
    let then = api.state("BankAccount", ADA, Some(1)).await?.expect_status(200)?;
    ensure!(then.body["version"] == 1, "temporal state: {then}");
    ensure!(then.body["state"]["createdDate"] == ADA_OPENED, "temporal state: {then}");
    ensure!(decimal(&then.body["state"]["balance"])? == "10.5", "temporal state: {then}");

    // The events route: as stored by default, current with ?upcast=true, positions the same.
    let as_stored = events(api, ADA, false).await?;
    let upcast = events(api, ADA, true).await?;
    ensure!(as_stored.len() == 2 && upcast.len() == 2, "two events: {as_stored:?} / {upcast:?}");
    let (stored_opened, current_opened) = (&as_stored[0], &upcast[0]);
    ensure!(stored_opened["schemaVersion"] == 1, "as stored: {stored_opened}");
    ensure!(stored_opened["data"]["createdDate"] == ADA_OPENED, "as stored: {stored_opened}");
    ensure!(stored_opened["data"].get("openedAt").is_none(), "as stored: {stored_opened}");
    ensure!(current_opened["schemaVersion"] == 2, "upcast: {current_opened}");
    ensure!(current_opened["data"]["openedAt"] == ADA_OPENED, "upcast: {current_opened}");
    ensure!(current_opened["data"].get("createdDate").is_none(), "upcast: {current_opened}");
    ensure!(current_opened["data"]["openingBalance"] == number("10.50"), "exact amount kept: {current_opened}");
    for key in ["position", "version", "eventType", "aggregateId", "recordedAt"] {
        ensure!(stored_opened[key] == current_opened[key], "{key} differs: {stored_opened} / {current_opened}");
    }
    ensure!(as_stored[1] == upcast[1], "a current event is the same either way: {as_stored:?} / {upcast:?}");
    api.get(&format!("/api/aggregates/BankAccount/{ADA}/events?upcast=maybe"))
        .await?
        .check_error(400, &["bad_query"])?;

    // Commands on the version 1 streams decide on the upcast history.
    let withdraw = |amount: &str| json!({ "amount": number(amount) });
    let refused = api.put_json(&format!("/api/v1/withdrawFunds/{ADA}"), &withdraw("15.51")).await?;
    ensure!(refused.status == 400, "more than the balance: {refused}");
    api.put_json(&format!("/api/v1/withdrawFunds/{ADA}"), &withdraw("15.50")).await?.expect_status(200)?;
    let carol = api.open_account("Carol Shaw", "7").await?;
    let carol_events = events(api, &carol, false).await?;
    ensure!(carol_events[0]["schemaVersion"] == 2, "new events are written at version 2: {carol_events:?}");
    ensure!(carol_events[0]["data"]["openedAt"].is_string(), "new events have openedAt: {carol_events:?}");
    let last = carol_events[0]["position"].as_u64().with_context(|| format!("no position: {carol_events:?}"))?;

    let accounts = lookup(api, last).await?;
    ensure!(accounts.len() == 3 + others, "Carol's account too: {accounts:?}");
    ensure!(accounts[ADA] == account("Ada Lovelace", ADA_OPENED, "0"), "Ada withdrew all: {accounts:?}");

    // A rebuild reads the log from the start again, through the upcaster.
    api.send_raw(Method::POST, "/api/v1/restoreReadDb", Vec::new()).await?.expect_status(201)?;
    let rebuilt = lookup(api, last).await?;
    ensure!(rebuilt == accounts, "the rebuild equals the live read model: {rebuilt:?} / {accounts:?}");
    Ok(last)
}

/// A dry run of the live `accounts` component against itself: every event it handles reaches
/// it upcast (a version 1 `AccountOpenedEvent` it were handed as stored fails it), the events the
/// live consumer parked are passed by as live, so nothing differs and nothing fails.
async fn check_dry_run_of_itself(api: &Api, handled_at_least: u64) -> Result<()> {
    let component =
        std::fs::read(Plugin::AccountsProjection.path()).context("failed to read the accounts component")?;
    let request = api
        .admin_request(Method::POST, "/admin/plugins/accounts/dry-run")
        .header(reqwest::header::CONTENT_TYPE, sluice_e2e::WASM)
        .body(component);
    let report = api.send(request).await?.expect_status(200)?;
    ensure!(report.body["failures"] == json!([]), "no failure expected: {report}");
    ensure!(
        report.body["eventsHandled"].as_u64().is_some_and(|n| n >= handled_at_least),
        "at least {handled_at_least} events handled: {report}"
    );
    let tables = report.body["tables"].as_array().ok_or_else(|| anyhow!("no tables in {report}"))?;
    ensure!(!tables.is_empty(), "tables compared: {report}");
    for table in tables {
        ensure!(
            table["added"] == 0 && table["removed"] == 0 && table["changed"] == 0,
            "no difference expected: {report}"
        );
        ensure!(table["unchanged"].as_u64().is_some_and(|n| n > 0), "rows compared: {report}");
    }
    Ok(())
}

/// How many partition offsets the `accounts` consumer has stored in the read store at `url`.
async fn kafka_offsets(url: &str) -> Result<i64> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.with_context(|| format!("failed to open {url}"))?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sluice_offsets WHERE projection = 'accounts'")
        .fetch_one(&mut conn)
        .await
        .context("failed to count the offsets")?;
    conn.close().await?;
    Ok(count)
}

/// The events written before the start are still there as written.
fn check_unchanged(written: &[RawEvent], positions: &[u64], found: &[stored::Stored]) -> Result<()> {
    for (event, position) in written.iter().zip(positions) {
        let (_, stored) = found
            .iter()
            .find(|(p, _)| p == position)
            .ok_or_else(|| anyhow!("the event at position {position} is gone"))?;
        ensure!(stored == event, "the event at position {position} changed: {stored:?}, written {event:?}");
    }
    Ok(())
}

#[tokio::test]
async fn version_1_events_in_sqlite_are_read_in_their_current_shape_and_stay_as_stored() -> Result<()> {
    // A first start creates the store; the old events go in while the host is down.
    let mut host = Host::start(HostOptions::with_plugins(BANK).admin_token(TOKEN)).await?;
    host.stop().await?;
    let db = stored::sqlite_path(&host.data_dir());
    let written = version_1_history();
    let positions = stored::sqlite_append(&db, &written)?;
    ensure!(positions == [1, 2, 3], "written at {positions:?}");
    host.restart().await?;

    let last = check_current_shape_everywhere(host.api(), 3, 0).await?;
    // Three version 1 events, a withdrawal and Carol's opening.
    check_dry_run_of_itself(host.api(), last).await?;

    host.stop().await?;
    let found = stored::sqlite_events(&db)?;
    check_unchanged(&written, &positions, &found)?;
    ensure!(found.iter().filter(|(_, e)| e.schema_version == 2).count() == 1, "one event at version 2: {found:?}");
    Ok(())
}

/// The version 1 events are written into MongoDB while the host runs, after the `accounts`
/// consumer has stored Kafka offsets (it applied an account opened through the API from the
/// bus): so they travel event store, relay, Kafka, consumer, not a catch-up from the log.
#[tokio::test]
async fn version_1_events_in_mongodb_reach_kafka_projections_in_their_current_shape() -> Result<()> {
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let mut host = Host::start(stack.options_with(BANK)).await?;
    host.api().open_account("Dan Ingalls", "1").await?;
    lookup(host.api(), 1).await?;
    ensure!(kafka_offsets(&stack.read_store).await? > 0, "the accounts consumer has no Kafka offsets yet");

    let written = version_1_history();
    let positions = stored::mongo_append(&stack.mongodb, &written).await?;
    ensure!(positions == [2, 3, 4], "written at {positions:?}");
    check_current_shape_everywhere(host.api(), 4, 1).await?;

    host.stop().await?;
    let found = stored::mongo_events(&stack.mongodb).await?;
    check_unchanged(&written, &positions, &found)?;
    Ok(())
}

/// An event its aggregate's upcaster cannot read (a version 1 `AccountOpenedEvent` without its
/// `createdDate`) is parked for the `accounts` projection like an event it keeps refusing: the
/// consumer moves past it, the other accounts flow, and a retry runs the upcaster again and
/// fails for the same reason.
#[tokio::test]
async fn an_event_the_upcaster_cannot_read_is_parked_and_the_other_accounts_flow() -> Result<()> {
    const CAROL: &str = "00000000-0000-4000-8000-00000000c004";
    let mut host = Host::start(HostOptions::with_plugins(BANK).admin_token(TOKEN)).await?;
    host.stop().await?;
    let mut written = version_1_history();
    let unreadable = RawEvent::new("BankAccount", CAROL, 1, "AccountOpenedEvent", 1).data(&format!(
        r#"{{"id":"{CAROL}","accountHolder":"Carol Shaw","accountType":"SAVINGS","openingBalance":1}}"#
    ));
    written.insert(1, unreadable);
    let positions = stored::sqlite_append(&stored::sqlite_path(&host.data_dir()), &written)?;
    ensure!(positions == [1, 2, 3, 4], "written at {positions:?}");
    host.restart().await?;

    // The projection reaches position 4 past the event it cannot be handed.
    let accounts = lookup(host.api(), 4).await?;
    let expected = [
        (ADA.to_owned(), account("Ada Lovelace", ADA_OPENED, "15.5")),
        (BOB.to_owned(), account("Bob Babbage", BOB_OPENED, "3")),
    ]
    .into();
    ensure!(accounts == expected, "the readable accounts: {accounts:?}");

    let listing = host.admin_get("/admin/dead-letters?consumer=accounts").await?.expect_status(200)?;
    let letters = listing.body["letters"].as_array().cloned().unwrap_or_default();
    let [letter] = letters.as_slice() else { bail!("one letter expected: {listing}") };
    ensure!(letter["position"] == 2 && letter["aggregateId"] == CAROL, "{letter}");
    ensure!(letter["schemaVersion"] == 1 && letter["eventType"] == "AccountOpenedEvent", "{letter}");
    let reason = letter["reason"].as_str().unwrap_or_default();
    ensure!(reason.contains("upcast") && reason.contains("createdDate"), "the reason says why: {letter}");

    let id = letter["id"].as_i64().context("letter id")?;
    let again =
        host.api().admin_post(&format!("/admin/dead-letters/{id}/retry"), &json!({})).await?.expect_status(200)?;
    ensure!(again.body["applied"] == json!([]), "{again}");
    ensure!(again.body["failed"]["reason"].as_str().is_some_and(|r| r.contains("createdDate")), "{again}");
    ensure!(lookup(host.api(), 4).await? == expected, "a failed retry changed the read model");

    // The dry run passes the parked event by, as the live consumer does: no failure.
    check_dry_run_of_itself(host.api(), 3).await?;

    // With no live consumer to pass it by, the dry run meets the event its aggregate cannot
    // upcast, and reports it as a failure.
    host.api().admin_delete("/admin/plugins/accounts").await?.expect_status(200)?;
    let component =
        std::fs::read(Plugin::AccountsProjection.path()).context("failed to read the accounts component")?;
    let request = host
        .api()
        .admin_request(Method::POST, "/admin/plugins/accounts/dry-run")
        .header(reqwest::header::CONTENT_TYPE, sluice_e2e::WASM)
        .body(component);
    let report = host.api().send(request).await?.expect_status(200)?;
    let failures = report.body["failures"].as_array().cloned().unwrap_or_default();
    let [failure] = failures.as_slice() else { bail!("one failure expected: {report}") };
    ensure!(failure["position"] == 2 && failure["aggregateId"] == CAROL, "{report}");
    ensure!(failure["reason"].as_str().is_some_and(|r| r.contains("createdDate")), "{report}");
    ensure!(report.body["eventsHandled"] == 3, "the readable events are handled: {report}");
    Ok(())
}
