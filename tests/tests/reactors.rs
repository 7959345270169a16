//! Reactors end to end: the reference `account-notifier` sends one notification per deposit and
//! withdrawal to a webhook receiver served by the test (an axum server on 127.0.0.1:0) — on the
//! embedded default and on the Kafka stack. The receiver fails 30% of requests (half of them
//! after it has recorded the notification, so duplicates reach it) and the host is killed with
//! SIGKILL in the middle of a burst of commands; after deduplication by `Idempotency-Key` every
//! notification arrived exactly once, every duplicate carries the same key and body, and each
//! account's notifications arrived in the order of its events.
//!
//! Also: a reactor naming a channel the operator did not grant is refused at load with the
//! channel's name (the host runs on); a reactor gets no file, directory, environment, clock or
//! socket; a delivery that keeps failing parks, holds back its key and is retried by an
//! operator; a reactor is never rebuilt, hot reloads re-send nothing, and only an operator's
//! reset sends again (under new keys: the reset is an explicit "send again", and the outbox
//! keeps what it held). Parked deliveries are dead letters: listed by `/admin/dead-letters`
//! (and `sluice dead-letters`), retried and dropped through its routes; delivered messages are
//! pruned after the configured retention.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{
    Check, Host, HostOptions, Plugin, Stack, decimal, distinct_build, number, sluice_command, wait_until,
};

const ADMIN_TOKEN: &str = "reactors-admin";

const NOTIFIED: [&str; 2] = ["FundsDepositedEvent", "FundsWithdrawnEvent"];

/// One request the receiver recorded.
#[derive(Debug, Clone)]
struct Received {
    key: String,
    body: Value,
}

struct ReceiverState {
    rng: Mutex<fastrand::Rng>,
    /// Share of requests refused before they are recorded.
    fail_before: f64,
    /// Share of requests recorded, then answered with an error (the sender must send again).
    fail_after: f64,
    received: Mutex<Vec<Received>>,
    failed: Mutex<u64>,
    /// Refuse everything (an outage), whatever the shares say.
    down: std::sync::atomic::AtomicBool,
}

/// A webhook receiver on 127.0.0.1:0, in this process.
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(fail_before: f64, fail_after: f64) -> Result<Self> {
        let state = Arc::new(ReceiverState {
            rng: Mutex::new(fastrand::Rng::with_seed(0x5e_ed)),
            fail_before,
            fail_after,
            received: Mutex::new(Vec::new()),
            failed: Mutex::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let app = axum::Router::new().route("/notify", axum::routing::post(notify)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("failed to bind the receiver")?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, state })
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_down(&self, down: bool) {
        self.state.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn failed(&self) -> u64 {
        *self.state.failed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A config file granting channel `notifications` = this receiver, with fast retries.
    fn config(&self, dir: &tempfile::TempDir) -> Result<String> {
        self.config_with(dir, 40)
    }

    /// The same, with `attempts` calls per message before it parks.
    fn config_with(&self, dir: &tempfile::TempDir, attempts: u32) -> Result<String> {
        self.config_full(dir, attempts, "")
    }

    /// The same, with more `[delivery]` lines.
    fn config_full(&self, dir: &tempfile::TempDir, attempts: u32, delivery: &str) -> Result<String> {
        let path = dir.path().join("sluice.toml");
        let text = format!(
            "[channels.notifications]\nwebhook = \"http://{}/notify\"\ntimeout_ms = 2000\n\
             headers = {{ X-Test = \"reactors\" }}\n\n[delivery]\nattempts = {attempts}\nbackoff_ms = 5\nmax_backoff_ms = 100\n\
             {delivery}\n",
            self.addr
        );
        std::fs::write(&path, text).context("failed to write the config file")?;
        Ok(path.display().to_string())
    }
}

async fn notify(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: String) -> StatusCode {
    let roll = state.rng.lock().unwrap_or_else(PoisonError::into_inner).f64();
    let fail = || *state.failed.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    if roll < state.fail_before || state.down.load(std::sync::atomic::Ordering::SeqCst) {
        fail();
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let extra = headers.get("x-test").and_then(|v| v.to_str().ok()) == Some("reactors");
    let Ok(body) = serde_json::from_str::<Value>(&body) else { return StatusCode::BAD_REQUEST };
    if !extra {
        // The configured headers must travel with every request.
        return StatusCode::BAD_REQUEST;
    }
    state.received.lock().unwrap_or_else(PoisonError::into_inner).push(Received { key, body });
    if roll < state.fail_before + state.fail_after {
        fail();
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// Every deposit and withdrawal in the accounts' streams, by global position: (account, event
/// type, amount as decimal text).
async fn notifiable_events(host: &Host, ids: &[String]) -> Result<BTreeMap<u64, (String, String, String)>> {
    let mut expected = BTreeMap::new();
    for id in ids {
        for event in host.events("BankAccount", id).await? {
            let event_type = event["eventType"].as_str().unwrap_or_default().to_owned();
            if NOTIFIED.contains(&event_type.as_str()) {
                let position = sluice_e2e::u64_field(&event, "position")?;
                expected.insert(position, (id.clone(), event_type, decimal(&event["data"]["amount"])?));
            }
        }
    }
    Ok(expected)
}

/// The notifications as delivered: checks keys and duplicates, and answers the first arrival of
/// each key, in arrival order.
fn deduplicated(received: &[Received]) -> Result<Vec<Received>> {
    let mut first: HashMap<&str, &Value> = HashMap::new();
    let mut unique = Vec::new();
    for r in received {
        ensure!(!r.key.is_empty(), "a notification arrived without an Idempotency-Key: {}", r.body);
        match first.get(r.key.as_str()) {
            Some(body) => ensure!(*body == &r.body, "key {} carried two bodies: {body} and {}", r.key, r.body),
            None => {
                first.insert(&r.key, &r.body);
                unique.push(r.clone());
            }
        }
    }
    Ok(unique)
}

async fn every_notification_arrives_once_despite_a_crash(options: HostOptions) -> Result<()> {
    let receiver = Receiver::start(0.15, 0.15).await?;
    let dir = tempfile::tempdir()?;
    let mut host = Host::start(options.arg("--config").arg(receiver.config(&dir)?).admin_token(ADMIN_TOKEN)).await?;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(host.open_account(&format!("holder {n}"), "1000").await?);
    }
    // One client per account, deposits and withdrawals alternating, until the host dies.
    let api = host.api().clone();
    let clients: Vec<_> = ids
        .iter()
        .map(|id| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move {
                for n in 0u32.. {
                    let (path, amount) = if n % 2 == 0 { ("depositFunds", "2.50") } else { ("withdrawFunds", "1.25") };
                    let body = json!({ "amount": number(amount) });
                    match api.put_json(&format!("/api/v1/{path}/{id}"), &body).await {
                        Ok(reply) if reply.status == 200 => {}
                        _ => return n,
                    }
                }
                u32::MAX
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    host.kill()?;
    let mut sent = 0;
    for client in clients {
        sent += client.await?;
    }
    ensure!(sent > 20, "only {sent} commands were answered before the kill");
    host.restart().await?;
    for id in &ids {
        host.deposit(id, "0.01").await?;
    }
    let expected = notifiable_events(&host, &ids).await?;
    let unique = wait_until("every deposit and withdrawal was notified", Duration::from_secs(120), || async {
        let unique = deduplicated(&receiver.received())?;
        Ok(if unique.len() >= expected.len() {
            Check::Done(unique)
        } else {
            Check::NotYet(format!("{} of {} notified", unique.len(), expected.len()))
        })
    })
    .await?;
    // Late duplicates (a redelivery in flight) must still agree: look once more after a pause.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received();
    let unique_again = deduplicated(&received)?;
    ensure!(unique_again.len() == unique.len(), "a new key arrived after all were in: {}", unique_again.len());
    ensure!(unique.len() == expected.len(), "{} notifications for {} events", unique.len(), expected.len());
    let mut last_by_account: HashMap<String, u64> = HashMap::new();
    for r in &unique {
        let position = sluice_e2e::u64_field(&r.body, "position")?;
        let (account, event_type, amount) =
            expected.get(&position).with_context(|| format!("a notification for no such event: {}", r.body))?;
        ensure!(r.key == format!("account-notifier:{position}:0"), "key {} for position {position}", r.key);
        ensure!(r.body["accountId"] == account.as_str(), "wrong account: {}", r.body);
        ensure!(r.body["event"] == event_type.as_str(), "wrong event: {}", r.body);
        ensure!(decimal(&r.body["amount"])? == *amount, "wrong amount: {} (expected {amount})", r.body);
        if let Some(previous) = last_by_account.insert(account.clone(), position) {
            ensure!(previous < position, "account {account}: position {position} arrived after {previous}");
        }
    }
    let duplicates = received.len() - unique.len();
    ensure!(
        receiver.failed() > 0 && duplicates > 0,
        "the receiver never failed after recording: no duplicate was tested"
    );
    eprintln!(
        "{} notifications, {} requests, {duplicates} duplicates, {} failed",
        unique.len(),
        received.len(),
        receiver.failed()
    );
    // The reactor's listing: a consumer with a position, nothing parked.
    let outbox = host.admin_get("/admin/reactors/account-notifier/outbox").await?.expect_status(200)?;
    ensure!(outbox.body["counts"]["parked"] == 0, "parked deliveries: {outbox}");
    Ok(())
}

#[tokio::test]
async fn notifications_survive_a_crash_on_the_embedded_default() -> Result<()> {
    every_notification_arrives_once_despite_a_crash(HostOptions::with_plugins(&[
        Plugin::BankAccount,
        Plugin::AccountNotifier,
    ]))
    .await
}

#[tokio::test]
async fn notifications_survive_a_crash_on_kafka() -> Result<()> {
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    every_notification_arrives_once_despite_a_crash(stack.options_with(&[Plugin::BankAccount, Plugin::AccountNotifier]))
        .await
}

#[tokio::test]
async fn a_reactor_naming_an_ungranted_channel_is_refused_and_the_host_runs_on() -> Result<()> {
    let host = Host::start(
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountNotifier]).admin_token(ADMIN_TOKEN),
    )
    .await?;
    let (plugins, refused) = host.admin_plugins().await?;
    ensure!(plugins.iter().all(|p| p["name"] != "account-notifier"), "the reactor was loaded: {plugins:?}");
    let refusal = refused
        .iter()
        .find(|r| r["source"] == "account_notifier.wasm")
        .with_context(|| format!("no refusal listed: {refused:?}"))?;
    let reason = refusal["reason"].as_str().unwrap_or_default();
    ensure!(reason.contains("\"notifications\"") && reason.contains("not granted"), "reason: {reason}");
    // The host runs on: commands work.
    let id = host.open_account("Ada", "5").await?;
    host.deposit(&id, "1").await?;
    // An upload is refused the same way, naming the channel.
    let upload = host.admin_put_wasm("account-notifier", Plugin::AccountNotifier.bytes()?).await?;
    upload.check_error(422, &["channel_not_granted"])?;
    ensure!(upload.body.to_string().contains("notifications"), "upload refusal: {upload}");
    Ok(())
}

#[tokio::test]
async fn a_reactor_gets_no_file_environment_clock_or_socket() -> Result<()> {
    let receiver = Receiver::start(0.0, 0.0).await?;
    let dir = tempfile::tempdir()?;
    let host = Host::start(
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::SnoopReactor])
            .arg("--config")
            .arg(receiver.config(&dir)?)
            .env("SLUICE_SECRET_FOR_SNOOPS", "do not leak"),
    )
    .await?;
    let id = host.open_account("Ada", "5").await?;
    host.deposit(&id, "1").await?;
    let seen = wait_until("the snoop reported", Duration::from_secs(30), || async {
        let received = receiver.received();
        Ok(match received.first() {
            Some(r) => Check::Done(r.body.clone()),
            None => Check::NotYet("nothing yet".into()),
        })
    })
    .await?;
    let refused = |field: &str| seen[field].as_str().is_some_and(|s| s.starts_with("refused"));
    ensure!(refused("file"), "a file was read: {seen}");
    ensure!(refused("dir"), "a directory was listed: {seen}");
    ensure!(refused("socket"), "a socket connected: {seen}");
    ensure!(seen["env"] == json!([]), "the environment leaked: {seen}");
    ensure!(seen["nowSecs"] == 0, "the clock is not frozen at the epoch: {seen}");
    Ok(())
}

#[tokio::test]
async fn a_parked_delivery_is_retried_and_only_a_reset_resends() -> Result<()> {
    let receiver = Receiver::start(0.0, 0.0).await?;
    let dir = tempfile::tempdir()?;
    let host = Host::start(
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountNotifier])
            .arg("--config")
            .arg(receiver.config_with(&dir, 2)?)
            .admin_token(ADMIN_TOKEN),
    )
    .await?;
    let id = host.open_account("Ada", "5").await?;
    // The receiver is down: the first deposit's notification parks after its 2 calls, and holds
    // back the second one (same key).
    receiver.set_down(true);
    let first = host.deposit(&id, "1").await?;
    let second = host.deposit(&id, "2").await?;
    let parked = wait_until("the first notification parked", Duration::from_secs(30), || async {
        let listing =
            host.admin_get("/admin/reactors/account-notifier/outbox?state=parked").await?.expect_status(200)?;
        Ok(match listing.body["messages"].as_array() {
            Some(messages) if !messages.is_empty() => Check::Done(messages.clone()),
            _ => Check::NotYet(listing.to_string()),
        })
    })
    .await?;
    let parked_id = format!("account-notifier:{first}:0");
    ensure!(parked.len() == 1 && parked[0]["id"] == parked_id.as_str(), "parked: {parked:?}");
    ensure!(parked[0]["attempts"] == 2 && parked[0]["lastError"].is_string(), "parked: {parked:?}");
    let pending = host.admin_get("/admin/reactors/account-notifier/outbox?state=pending").await?.expect_status(200)?;
    ensure!(pending.body["messages"][0]["position"] == second, "the second is not held back: {pending}");
    ensure!(receiver.received().is_empty(), "delivered while down: {:?}", receiver.received());

    // A bad state is a 400; an unknown message a 404.
    host.admin_get("/admin/reactors/account-notifier/outbox?state=lost").await?.check_error(400, &["bad_query"])?;
    let path = "/admin/reactors/account-notifier/outbox/nope/retry";
    host.admin_post(path, &json!({})).await?.check_error(404, &["unknown_message"])?;

    // Up again, the operator retries it: both arrive, in order.
    receiver.set_down(false);
    let path = format!("/admin/reactors/account-notifier/outbox/{parked_id}/retry");
    host.admin_post(&path, &json!({})).await?.expect_status(200)?;
    let positions =
        |received: &[Received]| -> Vec<u64> { received.iter().filter_map(|r| r.body["position"].as_u64()).collect() };
    wait_until("both notifications arrived", Duration::from_secs(30), || async {
        let got = positions(&receiver.received());
        Ok(if got.len() >= 2 { Check::Done(()) } else { Check::NotYet(format!("{got:?}")) })
    })
    .await?;
    ensure!(positions(&receiver.received()) == vec![first, second], "order: {:?}", receiver.received());

    // A reactor never replays: its rebuild is refused, and a rebuild of everything passes it by.
    let rebuild = host.admin_post("/admin/projections/account-notifier/rebuild", &json!({})).await?;
    rebuild.check_error(409, &["not_replayable"])?;
    ensure!(receiver.received().len() == 2, "a rebuild re-sent: {:?}", receiver.received());

    // The operator's reset: every notification after position 0 is sent again, under new keys
    // (the reset's generation joins the ids), with the same bodies.
    let reset = host.admin_post("/admin/reactors/account-notifier/reset", &json!({ "position": 0 })).await?;
    let reset = reset.expect_status(200)?;
    ensure!(reset.body["position"] == 0 && reset.body["generation"] == 1, "reset answered otherwise: {reset}");
    wait_until("the reset re-sent both", Duration::from_secs(30), || async {
        let got = receiver.received();
        Ok(if got.len() >= 4 { Check::Done(()) } else { Check::NotYet(format!("{got:?}")) })
    })
    .await?;
    let received = receiver.received();
    ensure!(positions(&received) == vec![first, second, first, second], "after the reset: {received:?}");
    ensure!(received[0].body == received[2].body && received[1].body == received[3].body, "bodies: {received:?}");
    ensure!(received[0].key == parked_id, "the first key: {received:?}");
    ensure!(received[2].key == format!("account-notifier:r1:{first}:0"), "no new key after the reset: {received:?}");
    ensure!(received[3].key == format!("account-notifier:r1:{second}:0"), "no new key after the reset: {received:?}");
    // The outbox kept what it delivered before the reset, beside what the reset sent again.
    let delivered = wait_until("the outbox records all four", Duration::from_secs(10), || async {
        let listing =
            host.admin_get("/admin/reactors/account-notifier/outbox?state=delivered").await?.expect_status(200)?;
        Ok(match listing.body["counts"]["delivered"].as_u64() {
            Some(4) => Check::Done(listing),
            _ => Check::NotYet(listing.to_string()),
        })
    })
    .await?;
    let ids: Vec<&str> =
        delivered.body["messages"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    ensure!(ids.contains(&parked_id.as_str()), "the reset dropped the outbox: {ids:?}");
    let unknown = host.admin_post("/admin/reactors/BankAccount/reset", &json!({})).await?;
    unknown.check_error(404, &["unknown_reactor"])?;

    // Hot reloads re-send nothing: a new build of the aggregate, then of the reactor itself,
    // and the next deposit is the only new notification.
    let aggregate = distinct_build(&Plugin::BankAccount.bytes()?, "reactors-reload");
    host.admin_put_wasm("BankAccount", aggregate).await?.expect_status(200)?;
    let reactor = distinct_build(&Plugin::AccountNotifier.bytes()?, "reactors-reload");
    host.admin_put_wasm("account-notifier", reactor).await?.expect_status(200)?;
    let third = host.deposit(&id, "3").await?;
    wait_until("the third deposit was notified", Duration::from_secs(30), || async {
        let got = positions(&receiver.received());
        Ok(if got.contains(&third) { Check::Done(()) } else { Check::NotYet(format!("{got:?}")) })
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = positions(&receiver.received());
    ensure!(received == vec![first, second, first, second, third], "after the reloads: {received:?}");
    Ok(())
}

#[tokio::test]
async fn parked_deliveries_are_dead_letters_retried_once_or_dropped() -> Result<()> {
    let receiver = Receiver::start(0.0, 0.0).await?;
    let dir = tempfile::tempdir()?;
    let host = Host::start(
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection, Plugin::AccountNotifier])
            .arg("--config")
            .arg(receiver.config_with(&dir, 2)?)
            .admin_token(ADMIN_TOKEN),
    )
    .await?;
    let id = host.open_account("Ada", "5").await?;
    // The webhook refuses: the first deposit's notification parks, the second waits behind it.
    receiver.set_down(true);
    let first = host.deposit(&id, "1").await?;
    let second = host.deposit(&id, "2").await?;
    let message_id = format!("account-notifier:{first}:0");
    let letter_id = format!("delivery:{message_id}");
    let listed = wait_until("the parked delivery is a dead letter", Duration::from_secs(30), || async {
        let listing = host.admin_get("/admin/dead-letters").await?.expect_status(200)?;
        Ok(match listing.body["deliveries"].as_array() {
            Some(deliveries) if !deliveries.is_empty() => Check::Done(deliveries.clone()),
            _ => Check::NotYet(listing.to_string()),
        })
    })
    .await?;
    ensure!(listed.len() == 1, "one parked delivery: {listed:?}");
    let letter = &listed[0];
    ensure!(letter["kind"] == "delivery" && letter["id"] == letter_id.as_str(), "{letter}");
    ensure!(letter["consumer"] == "account-notifier" && letter["messageId"] == message_id.as_str(), "{letter}");
    ensure!(letter["channel"] == "notifications" && letter["key"] == id.as_str(), "{letter}");
    ensure!(letter["position"] == first && letter["attempts"] == 2 && letter["state"] == "parked", "{letter}");
    ensure!(letter["reason"].as_str().is_some_and(|r| !r.is_empty()), "no reason: {letter}");
    for time in ["recordedAt", "parkedAt"] {
        let at = letter[time].as_str().with_context(|| format!("no {time}: {letter}"))?;
        ensure!(at.len() >= 20 && at.contains('T') && at.ends_with('Z'), "{time} is not RFC 3339 UTC: {letter}");
    }
    // By consumer: the reactor's letters are its own; a projection has no parked delivery.
    let mine = host.admin_get("/admin/dead-letters?consumer=account-notifier").await?.expect_status(200)?;
    ensure!(mine.body["deliveries"].as_array().is_some_and(|d| d.len() == 1), "{mine}");
    let other = host.admin_get("/admin/dead-letters?consumer=accounts").await?.expect_status(200)?;
    ensure!(other.body["deliveries"] == json!([]), "{other}");
    // The event letters' list is apart, and typed.
    ensure!(mine.body["letters"] == json!([]), "{mine}");
    // The CLI lists it, against the running host.
    let cli = sluice_command(&["dead-letters", "--url", host.base_url(), "--token", ADMIN_TOKEN])?;
    let line = cli.lines().find(|l| l.contains(&letter_id)).with_context(|| format!("the CLI lists none: {cli}"))?;
    let cli_letter: Value = serde_json::from_str(line)?;
    ensure!(cli_letter["kind"] == "delivery" && cli_letter["channel"] == "notifications", "{cli_letter}");

    // Ids are told apart: neither kind's id reaches the other.
    host.admin_post("/admin/dead-letters/delivery:account-notifier:999:0/retry", &json!({}))
        .await?
        .check_error(404, &["unknown_dead_letter"])?;
    host.admin_post("/admin/dead-letters/delivery:nobody:1:0/retry", &json!({}))
        .await?
        .check_error(404, &["unknown_dead_letter"])?;
    host.admin_post("/admin/dead-letters/not-a-letter/retry", &json!({})).await?.check_error(400, &["bad_query"])?;

    // The webhook recovers and the operator retries: delivered once, under the message id, with
    // the one it held back after it.
    receiver.set_down(false);
    let retried = host.admin_post(&format!("/admin/dead-letters/{letter_id}/retry"), &json!({})).await?;
    let retried = retried.expect_status(200)?;
    ensure!(retried.body["state"] == "pending" && retried.body["kind"] == "delivery", "{retried}");
    let positions =
        |received: &[Received]| -> Vec<u64> { received.iter().filter_map(|r| r.body["position"].as_u64()).collect() };
    wait_until("both notifications arrived", Duration::from_secs(30), || async {
        let got = positions(&receiver.received());
        Ok(if got.len() >= 2 { Check::Done(()) } else { Check::NotYet(format!("{got:?}")) })
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received();
    ensure!(positions(&received) == vec![first, second], "delivered once each, in order: {received:?}");
    ensure!(received[0].key == message_id, "the retry's Idempotency-Key: {received:?}");
    let after = host.admin_get("/admin/dead-letters").await?.expect_status(200)?;
    ensure!(after.body["deliveries"] == json!([]), "still listed: {after}");
    // Retrying it again: it is no longer parked.
    host.admin_post(&format!("/admin/dead-letters/{letter_id}/retry"), &json!({}))
        .await?
        .check_error(409, &["message_not_parked"])?;

    // A drop: the webhook refuses again, the third deposit parks, the operator drops it (who and
    // when recorded); it is never sent, and the fourth, of the same key, goes on.
    receiver.set_down(true);
    let third = host.deposit(&id, "3").await?;
    let third_letter = format!("delivery:account-notifier:{third}:0");
    wait_until("the third notification parked", Duration::from_secs(30), || async {
        let listing = host.admin_get("/admin/dead-letters?consumer=account-notifier").await?.expect_status(200)?;
        let parked = listing.body["deliveries"].as_array().is_some_and(|d| d.iter().any(|l| l["id"] == third_letter));
        Ok(if parked { Check::Done(()) } else { Check::NotYet(listing.to_string()) })
    })
    .await?;
    let dropped = host.admin_delete(&format!("/admin/dead-letters/{third_letter}?by=tester")).await?;
    let dropped = dropped.expect_status(200)?;
    ensure!(dropped.body["dropped"]["droppedBy"] == "tester", "{dropped}");
    ensure!(
        dropped.body["dropped"]["droppedAt"].is_string() && dropped.body["dropped"]["state"] == "dropped",
        "{dropped}"
    );
    receiver.set_down(false);
    let fourth = host.deposit(&id, "4").await?;
    wait_until("the fourth deposit was notified", Duration::from_secs(30), || async {
        let got = positions(&receiver.received());
        Ok(if got.contains(&fourth) { Check::Done(()) } else { Check::NotYet(format!("{got:?}")) })
    })
    .await?;
    ensure!(positions(&receiver.received()) == vec![first, second, fourth], "{:?}", receiver.received());
    let listing = host.admin_get("/admin/dead-letters").await?.expect_status(200)?;
    ensure!(listing.body["deliveries"] == json!([]), "{listing}");
    let audit = listing.body["droppedDeliveries"].as_array().context("no droppedDeliveries")?;
    ensure!(
        audit.len() == 1 && audit[0]["id"] == third_letter.as_str() && audit[0]["droppedBy"] == "tester",
        "{audit:?}"
    );

    // The CLI retries a delivery letter by its id too.
    receiver.set_down(true);
    let fifth = host.deposit(&id, "5").await?;
    let fifth_letter = format!("delivery:account-notifier:{fifth}:0");
    wait_until("the fifth notification parked", Duration::from_secs(30), || async {
        let listing = host.admin_get("/admin/dead-letters").await?.expect_status(200)?;
        let parked = listing.body["deliveries"].as_array().is_some_and(|d| d.iter().any(|l| l["id"] == fifth_letter));
        Ok(if parked { Check::Done(()) } else { Check::NotYet(listing.to_string()) })
    })
    .await?;
    receiver.set_down(false);
    let retried =
        sluice_command(&["dead-letters", "retry", &fifth_letter, "--url", host.base_url(), "--token", ADMIN_TOKEN])?;
    ensure!(retried.contains("\"pending\""), "the CLI's retry: {retried}");
    wait_until("the fifth deposit was notified", Duration::from_secs(30), || async {
        let got = positions(&receiver.received());
        Ok(if got.contains(&fifth) { Check::Done(()) } else { Check::NotYet(format!("{got:?}")) })
    })
    .await?;
    let keys: Vec<String> = receiver.received().into_iter().map(|r| r.key).collect();
    ensure!(keys.last().is_some_and(|k| *k == format!("account-notifier:{fifth}:0")), "{keys:?}");
    Ok(())
}

#[tokio::test]
async fn delivered_messages_are_pruned_after_their_retention() -> Result<()> {
    let receiver = Receiver::start(0.0, 0.0).await?;
    let dir = tempfile::tempdir()?;
    let host = Host::start(
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountNotifier])
            .arg("--config")
            .arg(receiver.config_full(&dir, 2, "retention_secs = 2")?)
            .admin_token(ADMIN_TOKEN),
    )
    .await?;
    let id = host.open_account("Ada", "5").await?;
    for amount in ["1", "2", "3"] {
        host.deposit(&id, amount).await?;
    }
    // Delivered, and recorded as delivered…
    wait_until("three notifications delivered", Duration::from_secs(30), || async {
        let listing =
            host.admin_get("/admin/reactors/account-notifier/outbox?state=delivered").await?.expect_status(200)?;
        Ok(match listing.body["counts"]["delivered"].as_u64() {
            Some(3) => Check::Done(()),
            _ => Check::NotYet(listing.to_string()),
        })
    })
    .await?;
    ensure!(receiver.received().len() == 3, "{:?}", receiver.received());
    // …then pruned once older than the retention; nothing is sent again.
    wait_until("the delivered messages are pruned", Duration::from_secs(30), || async {
        let listing =
            host.admin_get("/admin/reactors/account-notifier/outbox?state=delivered").await?.expect_status(200)?;
        let counts = &listing.body["counts"];
        Ok(if counts["delivered"] == 0 && counts["pending"] == 0 {
            Check::Done(())
        } else {
            Check::NotYet(listing.to_string())
        })
    })
    .await?;
    ensure!(receiver.received().len() == 3, "pruning re-sent: {:?}", receiver.received());
    Ok(())
}

/// The messages of `topic` from its beginning, until `expected` arrived and it is quiet:
/// (key, `idempotency-key` header, payload).
async fn read_channel_topic(bootstrap: &str, topic: &str, expected: usize) -> Result<Vec<(String, String, Value)>> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("check-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .context("failed to create a consumer")?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut assignment = TopicPartitionList::new();
        for found in metadata.topics() {
            for partition in found.partitions() {
                assignment.add_partition_offset(&topic, partition.id(), Offset::Beginning)?;
            }
        }
        ensure!(assignment.count() > 0, "topic {topic} has no partitions");
        consumer.assign(&assignment)?;
        let mut messages = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut quiet_since = std::time::Instant::now();
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(message) => {
                    let message = message?;
                    let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                    let id = message
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == "idempotency-key"))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    messages.push((key, id, serde_json::from_slice(message.payload().unwrap_or_default())?));
                    quiet_since = std::time::Instant::now();
                }
                None if messages.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) => break,
                None => {}
            }
        }
        Ok(messages)
    })
    .await?
}

#[tokio::test]
async fn a_kafka_topic_channel_carries_the_key_and_the_idempotency_key() -> Result<()> {
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[channels.notifications]\nkafka_topic = \"notifications\"\n")?;
    let host = Host::start(
        stack
            .options_with(&[Plugin::BankAccount, Plugin::AccountNotifier])
            .arg("--config")
            .arg(config.display().to_string()),
    )
    .await?;
    let id = host.open_account("Ada", "5").await?;
    let first = host.deposit(&id, "1.50").await?;
    let second = host.deposit(&id, "2").await?;
    // On the host's bus the channel's topic takes the bus's prefix.
    let messages = read_channel_topic(&stack.kafka, &stack.topic("notifications"), 2).await?;
    let unique: BTreeMap<String, (String, Value)> =
        messages.into_iter().map(|(key, id, payload)| (id, (key, payload))).collect();
    ensure!(unique.len() == 2, "messages: {unique:?}");
    for (position, amount) in [(first, "1.5"), (second, "2")] {
        let (key, payload) = unique
            .get(&format!("account-notifier:{position}:0"))
            .with_context(|| format!("no message for position {position}: {unique:?}"))?;
        ensure!(key == &id && payload["accountId"] == id.as_str(), "key {key}, payload {payload}");
        ensure!(decimal(&payload["amount"])? == amount, "amount in {payload}");
    }
    Ok(())
}
