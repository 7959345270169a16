//! End to end: dead letters per consumer, with the `hostile` test projection (it traps, spins,
//! hogs memory or refuses the events of aggregates whose id starts with `trap-`, `loop-`,
//! `bomb-` or `fail-`) beside the accounts projection, on the embedded stores (SQLite) and on
//! the Kafka stack with PostgreSQL and with MariaDB read stores.
//!
//! Each scenario proves one promise: failing events park after the bounded attempts with their
//! reason while the host stays up, later events of the same aggregate are held back behind them
//! and everything else flows (every consumer's lag returns to 0); a host killed in the middle of
//! a failing call, three times, still ends with the event parked; a fixed version hot-swapped in
//! and a retry apply the letters in order, and the read model then equals a rebuild; a drop is
//! skipped, released and audited; a consumer past its letter limit pauses until resumed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sluice_e2e::{Check, Host, HostOptions, PLUGINS_DIR, Plugin, Server, Stack, sluice_command, wait_until};

const TOKEN: &str = "letters-token";
const HOSTILE: &str = "hostile_projection.wasm";
const FIXED: &str = "hostile_projection_fixed.wasm";
/// Long enough for the slowest scenario: a spinning projection call runs to the host's call
/// time limit (`[limits] plugin_timeout_ms`) once for its batch and once per attempt.
const SETTLE: Duration = Duration::from_secs(180);

fn component(file: &str) -> Result<Vec<u8>> {
    let path = Path::new(PLUGINS_DIR).join(file);
    std::fs::read(&path).with_context(|| format!("failed to read {} (built by tests/build.rs)", path.display()))
}

/// Where a test's stores live.
#[derive(Clone, Copy, Debug)]
enum Place {
    Embedded,
    KafkaPostgres,
    KafkaMariaDb,
}

/// Options for `place` with a config file of `config` (written in a fresh folder kept by the
/// returned guard), or `None` when the place's servers are not configured.
fn options(place: Place, config: &str) -> Result<Option<(HostOptions, tempfile::TempDir)>> {
    Ok(options_and_read_store(place, config)?.map(|(options, folder, _)| (options, folder)))
}

/// [`options`], with the read store's URL when it is a server's (none: the host's own SQLite
/// file).
fn options_and_read_store(
    place: Place,
    config: &str,
) -> Result<Option<(HostOptions, tempfile::TempDir, Option<String>)>> {
    let folder = tempfile::tempdir().context("failed to create a config folder")?;
    let file = folder.path().join("sluice.toml");
    std::fs::write(&file, config).context("failed to write the config")?;
    let plugins = [Plugin::BankAccount, Plugin::AccountsProjection];
    let (base, read_store) = match place {
        Place::Embedded => (HostOptions::with_plugins(&plugins), None),
        Place::KafkaPostgres | Place::KafkaMariaDb => {
            let Some(mut stack) = Stack::fresh()? else { return Ok(None) };
            if matches!(place, Place::KafkaMariaDb) {
                let Some(mariadb) = Server::MariaDb.fresh_database_url()? else { return Ok(None) };
                stack.read_store = mariadb;
            }
            (stack.options_with(&plugins), Some(stack.read_store.clone()))
        }
    };
    let options = base.arg("--config").arg(file.to_string_lossy().into_owned()).admin_token(TOKEN);
    Ok(Some((options, folder, read_store)))
}

/// Start a host and install the hostile projection through the admin API.
async fn hostile_host(options: HostOptions) -> Result<Host> {
    let host = Host::start(options).await?;
    host.admin_put_wasm("hostile", component(HOSTILE)?).await?.expect_status(201)?;
    Ok(host)
}

/// Open `id` through the generic API; answers the event's position.
async fn open(host: &Host, id: &str) -> Result<u64> {
    let body = json!({ "accountHolder": id, "accountType": "SAVINGS", "openingBalance": 5 });
    let reply = host.command("BankAccount", id, "OpenAccount", &body, None).await?.expect_status(200)?;
    reply.u64_field("position")
}

/// Deposit into `id`; answers the event's position.
async fn deposit(host: &Host, id: &str) -> Result<u64> {
    let reply = host.command("BankAccount", id, "DepositFunds", &json!({ "amount": 1 }), None).await?;
    reply.expect_status(200)?.u64_field("position")
}

/// The parked letters of `hostile`, once there are `count`.
async fn parked(host: &Host, count: usize) -> Result<Vec<Value>> {
    parked_until(host, &format!("hostile has {count} parked letters"), |letters| letters.len() == count).await
}

/// The parked letters of `hostile`, once `done` holds for them.
async fn parked_until(host: &Host, what: &str, done: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>> {
    wait_until(what, SETTLE, || async {
        let reply = host.admin_get("/admin/dead-letters?consumer=hostile").await?.expect_status(200)?;
        let letters = reply.body["letters"].as_array().cloned().unwrap_or_default();
        Ok(if done(&letters) { Check::Done(letters) } else { Check::NotYet(reply.to_string()) })
    })
    .await
}

/// The letter of aggregate `id` among `letters`.
fn letter_of<'a>(letters: &'a [Value], id: &str) -> Result<&'a Value> {
    letters.iter().find(|l| l["aggregateId"] == id).with_context(|| format!("no letter for {id} in {letters:?}"))
}

/// The positions of the events held back behind `letter`.
fn blocked(letter: &Value) -> Vec<u64> {
    letter["blockedBehind"]
        .as_array()
        .map_or_else(Vec::new, |b| b.iter().filter_map(|e| e["position"].as_u64()).collect())
}

/// The hostile read model: each stream's applied positions, comma-separated, in order.
async fn streams(host: &Host) -> Result<BTreeMap<String, String>> {
    let reply = host.get("/api/test/hostile/streams").await?.expect_status(200)?;
    let streams = reply.body["streams"].as_object().with_context(|| format!("no streams in {reply}"))?;
    Ok(streams.iter().map(|(id, positions)| (id.clone(), positions.as_str().unwrap_or_default().to_owned())).collect())
}

fn joined(positions: &[u64]) -> String {
    positions.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Wait until every consumer runs with no lag; answers them by name.
async fn consumers_caught_up(host: &Host) -> Result<BTreeMap<String, Value>> {
    wait_until("every consumer runs with no lag", SETTLE, || async {
        let reply = host.admin_get("/admin/consumers").await?.expect_status(200)?;
        let consumers = reply.body["consumers"].as_array().cloned().unwrap_or_default();
        let done = consumers.len() == 2 && consumers.iter().all(|c| c["status"] == "running" && c["lag"] == 0);
        Ok(if done {
            Check::Done(consumers.into_iter().map(|c| (c["name"].as_str().unwrap_or_default().to_owned(), c)).collect())
        } else {
            Check::NotYet(reply.to_string())
        })
    })
    .await
}

const HOSTILE_CONFIG: &str = "[dead_letters]\nattempts = 3\nbackoff_ms = 50\n";

/// Trap, endless loop, memory bomb and a refusal on one aggregate: each parks after three
/// attempts with its reason, the refused aggregate's later events wait behind it, the others
/// flow, and the host serves throughout.
async fn hostile_consumers_park_and_the_rest_flows(place: Place) -> Result<()> {
    let Some((options, _config)) = options(place, HOSTILE_CONFIG)? else { return Ok(()) };
    let host = hostile_host(options).await?;
    let mut ok = vec![open(&host, "ok-1").await?];
    let fail = [open(&host, "fail-1").await?, deposit(&host, "fail-1").await?];
    for hostile in ["trap-1", "loop-1", "bomb-1"] {
        open(&host, hostile).await?;
    }
    ok.push(deposit(&host, "ok-1").await?);
    let fail_later = deposit(&host, "fail-1").await?;
    ok.push(deposit(&host, "ok-1").await?);

    // Every event met (on Kafka the partitions interleave): then the letters are complete.
    let consumers = consumers_caught_up(&host).await?;
    let letters = parked(&host, 4).await?;
    for (id, cause) in [
        ("trap-1", "trapped"),
        ("loop-1", "time limit"),
        ("bomb-1", "memory"),
        ("fail-1", "refuses AccountOpenedEvent"),
    ] {
        let letter = letter_of(&letters, id)?;
        ensure!(letter["attempts"] == 3, "{id} parked after {} attempts: {letter}", letter["attempts"]);
        let reason = letter["reason"].as_str().unwrap_or_default();
        ensure!(reason.contains(cause), "{id}'s reason does not say {cause:?}: {letter}");
        ensure!(letter["consumer"] == "hostile" && letter["eventType"] == "AccountOpenedEvent", "{letter}");
        ensure!(letter["pluginSha256"] == sluice_e2e::sha256_hex(&component(HOSTILE)?), "sha256: {letter}");
        // The bank account opens accounts at AccountOpenedEvent's schema version 2 (docs/upcasting.md).
        ensure!(letter["schemaVersion"] == 2 && letter["firstFailedAt"].is_string(), "{letter}");
    }
    let fail_letter = letter_of(&letters, "fail-1")?;
    ensure!(fail_letter["position"] == fail[0], "the head is the opening: {fail_letter}");
    ensure!(blocked(fail_letter) == vec![fail[1], fail_later], "held back behind it: {fail_letter}");

    ensure!(consumers["hostile"]["position"] == consumers["accounts"]["position"], "{consumers:?}");
    let model = streams(&host).await?;
    ensure!(model == BTreeMap::from([("ok-1".to_owned(), joined(&ok))]), "only ok-1 applied, in order: {model:?}");
    host.healthy().await?;
    ensure!(
        host.get("/api/projections/accounts/queries/all").await?.expect_status(200)?.body["accounts"]
            .as_array()
            .is_some_and(|a| a.len() == 5),
        "the accounts projection did not see every opening"
    );
    Ok(())
}

#[tokio::test]
async fn hostile_consumers_park_and_the_rest_flows_embedded() -> Result<()> {
    hostile_consumers_park_and_the_rest_flows(Place::Embedded).await
}

#[tokio::test]
async fn hostile_consumers_park_and_the_rest_flows_kafka_postgres() -> Result<()> {
    hostile_consumers_park_and_the_rest_flows(Place::KafkaPostgres).await
}

#[tokio::test]
async fn hostile_consumers_park_and_the_rest_flows_kafka_mariadb() -> Result<()> {
    hostile_consumers_park_and_the_rest_flows(Place::KafkaMariaDb).await
}

/// A projection call that spins with no end in sight (its time limit is ten minutes here, longer
/// than the test): only a kill ends it, so the attempts at the event can grow only by being
/// counted before each call. The host is killed (SIGKILL) inside the batch's call and then inside
/// each counted attempt, the count read from the read store while the host is down; after the
/// third the restarted host parks the event without calling the plugin again (a call would spin
/// until the test gave up), and the rest flows.
async fn a_crash_loop_ends_parked(place: Place) -> Result<()> {
    let config = "[dead_letters]\nattempts = 3\nbackoff_ms = 50\n[limits]\nplugin_timeout_ms = 600000\n";
    let Some((options, _config, read_store)) = options_and_read_store(place, config)? else { return Ok(()) };
    let mut host = hostile_host(options).await?;
    let read_store =
        read_store.unwrap_or_else(|| format!("sqlite://{}?mode=ro", host.data_dir().join("read.db").display()));
    // One event applied first: on Kafka the consumer then has offsets, and a restart goes
    // through the bus rather than a catch-up from the log.
    let first = open(&host, "ok-0").await?;
    consumers_caught_up(&host).await?;
    let spinning = open(&host, "loop-1").await?;
    // Inside the batch's call, which is not an attempt at the event yet (or, if the event has
    // not arrived, before it: either way no attempt is counted).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    host.kill()?;
    for attempt in 1..=3 {
        host.restart().await?;
        wait_until(&format!("attempt {attempt} at the spinning event is counted"), SETTLE, || async {
            let counted = attempts_counted(&read_store, spinning).await?;
            Ok(if counted >= attempt { Check::Done(()) } else { Check::NotYet(format!("{counted} counted")) })
        })
        .await?;
        ensure!(parked_now(&host).await?.is_empty(), "parked before the kills were done");
        host.kill()?;
        let counted = attempts_counted(&read_store, spinning).await?;
        ensure!(counted == attempt, "{counted} attempts counted after kill {attempt}");
    }
    host.restart().await?;
    let ok = open(&host, "ok-1").await?;
    let letters = parked(&host, 1).await?;
    let letter = letter_of(&letters, "loop-1")?;
    ensure!(letter["position"] == spinning && letter["attempts"] == 3, "{letter}");
    consumers_caught_up(&host).await?;
    let model = streams(&host).await?;
    let wanted = BTreeMap::from([("ok-0".to_owned(), first.to_string()), ("ok-1".to_owned(), ok.to_string())]);
    ensure!(model == wanted, "{model:?}");
    Ok(())
}

/// The attempts the read store at `url` counts for `hostile` at the event at `position` (0
/// before the first).
async fn attempts_counted(url: &str, position: u64) -> Result<u32> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.with_context(|| format!("failed to open {url}"))?;
    let placeholder = if url.starts_with("postgres") { "$1" } else { "?" };
    let sql = format!("SELECT attempts FROM sluice_letters WHERE consumer = 'hostile' AND position = {placeholder}");
    let row = sqlx::query(&sql)
        .bind(i64::try_from(position)?)
        .fetch_optional(&mut conn)
        .await
        .context("failed to read the attempts")?;
    conn.close().await?;
    Ok(match row {
        Some(row) => u32::try_from(row.try_get::<i64, _>(0)?)?,
        None => 0,
    })
}

async fn parked_now(host: &Host) -> Result<Vec<Value>> {
    let reply = host.admin_get("/admin/dead-letters?consumer=hostile").await?.expect_status(200)?;
    Ok(reply.body["letters"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn a_crash_loop_ends_parked_embedded() -> Result<()> {
    a_crash_loop_ends_parked(Place::Embedded).await
}

#[tokio::test]
async fn a_crash_loop_ends_parked_kafka_postgres() -> Result<()> {
    a_crash_loop_ends_parked(Place::KafkaPostgres).await
}

#[tokio::test]
async fn a_crash_loop_ends_parked_kafka_mariadb() -> Result<()> {
    a_crash_loop_ends_parked(Place::KafkaMariaDb).await
}

/// A projection that refuses two aggregates' events is replaced by its fixed build (hot); a
/// retry with the broken build fails and changes nothing, the retry with the fixed one applies
/// every letter in order, later events flow straight through, and the read model equals what a
/// rebuild with the fixed version makes.
async fn fix_and_retry(place: Place) -> Result<()> {
    let Some((options, _config)) = options(place, "[dead_letters]\nattempts = 2\nbackoff_ms = 20\n")? else {
        return Ok(());
    };
    let host = hostile_host(options).await?;
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (id, opens) in [("ok-1", true), ("fail-1", true), ("fail-1", false), ("fail-2", true), ("ok-1", false)] {
        let position = if opens { open(&host, id).await? } else { deposit(&host, id).await? };
        expected.entry(id.to_owned()).or_default().push(position);
    }
    let position = deposit(&host, "fail-2").await?;
    expected.entry("fail-2".to_owned()).or_default().push(position);
    consumers_caught_up(&host).await?;
    let letters = parked(&host, 2).await?;
    let fail_1 = letter_of(&letters, "fail-1")?.clone();
    ensure!(blocked(&fail_1) == expected["fail-1"][1..], "{fail_1}");

    // Retried with the broken version: it fails again, nothing moves.
    let id = fail_1["id"].as_i64().context("letter id")?;
    let again = host.admin_post(&format!("/admin/dead-letters/{id}/retry"), &json!({})).await?.expect_status(200)?;
    ensure!(again.body["applied"] == json!([]) && again.body["failed"]["attempts"] == 3, "{again}");
    ensure!(!streams(&host).await?.contains_key("fail-1"), "a failed retry applied something");

    let fixed = component(FIXED)?;
    host.admin_put_wasm("hostile", fixed.clone()).await?.expect_status(200)?;
    let retried = host.admin_post("/admin/consumers/hostile/retry", &json!({})).await?.expect_status(200)?;
    let mut letter_positions: Vec<u64> = expected["fail-1"].iter().chain(&expected["fail-2"]).copied().collect();
    letter_positions.sort_unstable();
    let mut applied: Vec<u64> =
        retried.body["applied"].as_array().context("applied")?.iter().filter_map(Value::as_u64).collect();
    ensure!(retried.body["failed"].is_null(), "{retried}");
    applied.sort_unstable();
    ensure!(applied == letter_positions, "retry applied {applied:?}, not {letter_positions:?}");
    ensure!(parked_now(&host).await?.is_empty(), "letters left after the retry");

    // Released: the next event of fail-1 is applied straight away.
    let position = deposit(&host, "fail-1").await?;
    expected.entry("fail-1".to_owned()).or_default().push(position);
    consumers_caught_up(&host).await?;
    let wanted: BTreeMap<String, String> = expected.iter().map(|(id, p)| (id.clone(), joined(p))).collect();
    ensure!(streams(&host).await? == wanted, "in order: {:?} vs {wanted:?}", streams(&host).await?);

    // A rebuild with the fixed version makes the same read model.
    host.admin_post("/admin/projections/hostile/rebuild", &json!({})).await?.expect_status(200)?;
    ensure!(streams(&host).await? == wanted, "after a rebuild: {:?} vs {wanted:?}", streams(&host).await?);
    let plugin = host.admin_plugin("hostile").await?.context("hostile is listed")?;
    ensure!(plugin["sha256"] == sluice_e2e::sha256_hex(&fixed), "{plugin}");
    Ok(())
}

#[tokio::test]
async fn fix_and_retry_embedded() -> Result<()> {
    fix_and_retry(Place::Embedded).await
}

#[tokio::test]
async fn fix_and_retry_kafka_postgres() -> Result<()> {
    fix_and_retry(Place::KafkaPostgres).await
}

#[tokio::test]
async fn fix_and_retry_kafka_mariadb() -> Result<()> {
    fix_and_retry(Place::KafkaMariaDb).await
}

/// With room for one parked letter, the second failure pauses the consumer (later events wait,
/// whatever their aggregate); a drop skips its event, is audited and releases the events behind
/// it; the pause outlives a restart; a resume through the CLI lets the paused event park and the
/// rest flow.
async fn drop_pause_and_resume(place: Place) -> Result<()> {
    let config = "[dead_letters]\nattempts = 1\nbackoff_ms = 10\npause_after = 1\n";
    let Some((options, _config)) = options(place, config)? else { return Ok(()) };
    let mut host = hostile_host(options).await?;
    let opened = open(&host, "fail-1").await?;
    let deposited = deposit(&host, "fail-1").await?;
    let letters = parked_until(&host, "fail-1 parked with its deposit behind it", |letters| {
        letters.len() == 1 && blocked(&letters[0]) == vec![deposited]
    })
    .await?;
    let letter = letter_of(&letters, "fail-1")?.clone();
    // Aggregates of their own (on Kafka, maybe partitions of their own): the one whose failure
    // pauses the consumer, then one that must wait for the resume.
    let paused_at = open(&host, "fail-2").await?;
    let plugin = wait_until("hostile is paused", SETTLE, || async {
        let plugin = host.admin_plugin("hostile").await?.context("hostile is listed")?;
        Ok(if plugin["status"] == "paused: dead letters" {
            Check::Done(plugin)
        } else {
            Check::NotYet(plugin.to_string())
        })
    })
    .await?;
    let ok = open(&host, "ok-1").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(!streams(&host).await?.contains_key("ok-1"), "a paused consumer went on");
    ensure!(plugin["lag"].as_u64().is_some_and(|lag| lag > 0), "a paused consumer has lag: {plugin}");

    // The fixed version, then the drop: the opening is skipped, the deposit behind it applied.
    host.admin_put_wasm("hostile", component(FIXED)?).await?.expect_status(200)?;
    let id = letter["id"].as_i64().context("letter id")?;
    let dropped = host.admin_delete(&format!("/admin/dead-letters/{id}?by=tester")).await?.expect_status(200)?;
    ensure!(dropped.body["applied"] == json!([deposited]) && dropped.body["failed"].is_null(), "{dropped}");
    ensure!(streams(&host).await?.get("fail-1") == Some(&deposited.to_string()), "released in order");
    let listing = host.admin_get("/admin/dead-letters?consumer=hostile").await?.expect_status(200)?;
    let audit = &listing.body["dropped"][0];
    ensure!(
        audit["position"] == opened && audit["droppedBy"] == "tester" && audit["droppedAt"].is_string(),
        "{listing}"
    );
    host.admin_delete(&format!("/admin/dead-letters/{id}")).await?.check_error(404, &["unknown_dead_letter"])?;
    host.admin_delete("/admin/dead-letters/nine").await?.check_error(400, &["bad_query"])?;

    // The pause outlives the host: with no letter parked now (the drop freed its place), a host
    // that forgot it would park the paused event and go on; this one is paused from its start.
    host.restart().await?;
    for _ in 0..3 {
        let plugin = host.admin_plugin("hostile").await?.context("hostile is listed")?;
        ensure!(plugin["status"] == "paused: dead letters", "paused after a restart: {plugin}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(!streams(&host).await?.contains_key("ok-1"), "a paused consumer went on after a restart");
    ensure!(parked_now(&host).await?.is_empty(), "a paused consumer parked after a restart");

    // Resume through the CLI against the running host: the paused event parks, the rest flows.
    let remote = ["--url", host.base_url(), "--token", TOKEN];
    let resumed = sluice_command(&[&["dead-letters", "resume", "hostile"][..], &remote[..]].concat())?;
    ensure!(resumed.contains("\"wasPaused\":true"), "{resumed}");
    let letters = parked(&host, 1).await?;
    ensure!(letter_of(&letters, "fail-2")?["position"] == paused_at, "{letters:?}");
    consumers_caught_up(&host).await?;
    ensure!(streams(&host).await?.get("ok-1") == Some(&ok.to_string()), "ok-1 after the resume");
    let listed = sluice_command(&[&["dead-letters", "list", "--consumer", "hostile"][..], &remote[..]].concat())?;
    ensure!(listed.lines().count() == 1 && listed.contains("\"aggregateId\":\"fail-2\""), "{listed}");
    // And a retry through the CLI, with the fixed version serving.
    let retried = sluice_command(&[&["dead-letters", "retry", "--consumer", "hostile"][..], &remote[..]].concat())?;
    ensure!(retried.contains(&format!("\"applied\":[{paused_at}]")), "{retried}");
    ensure!(streams(&host).await?.get("fail-2") == Some(&paused_at.to_string()), "fail-2 after the retry");
    Ok(())
}

#[tokio::test]
async fn drop_pause_and_resume_embedded() -> Result<()> {
    drop_pause_and_resume(Place::Embedded).await
}

#[tokio::test]
async fn drop_pause_and_resume_kafka_postgres() -> Result<()> {
    drop_pause_and_resume(Place::KafkaPostgres).await
}

#[tokio::test]
async fn drop_pause_and_resume_kafka_mariadb() -> Result<()> {
    drop_pause_and_resume(Place::KafkaMariaDb).await
}

/// The `letters` of a `GET /admin/dead-letters` query.
async fn listed(host: &Host, query: &str) -> Result<Vec<Value>> {
    let reply = host.admin_get(&format!("/admin/dead-letters?{query}")).await?.expect_status(200)?;
    Ok(reply.body["letters"].as_array().cloned().unwrap_or_default())
}

/// The id of `letter`, as the CLI takes it.
fn id_of(letter: &Value) -> Result<String> {
    Ok(letter["id"].as_i64().with_context(|| format!("no id in {letter}"))?.to_string())
}

/// The listing's `aggregate` and `aggregateType` filters; the CLI's `retry ID`, `retry --consumer
/// --aggregate --aggregate-type` and `drop` against a running host; then `retry ID` and `drop`
/// without `--url`, on the stores of the stopped host; the restarted host shows the outcome.
#[tokio::test]
async fn cli_retry_and_drop_on_a_running_and_a_stopped_host() -> Result<()> {
    let Some((options, config)) = options(Place::Embedded, "[dead_letters]\nattempts = 1\nbackoff_ms = 10\n")? else {
        return Ok(());
    };
    let mut host = hostile_host(options).await?;
    let f1 = [open(&host, "fail-1").await?, deposit(&host, "fail-1").await?];
    let (f2, f3, f4) = (open(&host, "fail-2").await?, open(&host, "fail-3").await?, open(&host, "fail-4").await?);
    let ok = open(&host, "ok-1").await?;
    let letters = parked_until(&host, "four letters, fail-1's deposit behind its opening", |letters| {
        letters.len() == 4 && letters.iter().any(|l| l["aggregateId"] == "fail-1" && blocked(l) == [f1[1]])
    })
    .await?;
    let [l1, l2, l3, l4] = ["fail-1", "fail-2", "fail-3", "fail-4"].map(|id| letter_of(&letters, id).cloned());
    let (l1, l2, l3, l4) = (l1?, l2?, l3?, l4?);

    // The listing's filters: by id, and by id and type.
    let one = listed(&host, "consumer=hostile&aggregate=fail-1").await?;
    ensure!(one.len() == 1 && one[0]["position"] == f1[0] && blocked(&one[0]) == [f1[1]], "{one:?}");
    let typed = listed(&host, "aggregate=fail-1&aggregateType=BankAccount").await?;
    ensure!(typed.len() == 1 && typed[0]["id"] == l1["id"], "{typed:?}");
    let other_type = listed(&host, "aggregate=fail-1&aggregateType=Post").await?;
    ensure!(other_type.is_empty(), "another type's letters: {other_type:?}");
    host.admin_get("/admin/dead-letters?aggregateKind=x").await?.check_error(400, &["bad_query"])?;

    // Against the running host: a retry by id with the broken version fails again.
    let remote = ["--url", host.base_url(), "--token", TOKEN];
    let again = sluice_command(&[&["dead-letters", "retry", &id_of(&l1)?][..], &remote[..]].concat())?;
    let again: Value = serde_json::from_str(again.trim()).context("retry answer")?;
    ensure!(again["applied"] == json!([]) && again["failed"]["aggregateId"] == "fail-1", "{again}");

    // With the fixed version, one aggregate's sequence by consumer, id and type.
    host.admin_put_wasm("hostile", component(FIXED)?).await?.expect_status(200)?;
    let sequence = ["--consumer", "hostile", "--aggregate", "fail-1", "--aggregate-type", "BankAccount"];
    let retried = sluice_command(&[&["dead-letters", "retry"][..], &sequence[..], &remote[..]].concat())?;
    let retried: Value = serde_json::from_str(retried.trim()).context("retry answer")?;
    ensure!(retried["applied"] == json!(f1) && retried["failed"].is_null(), "{retried}");
    let dropped =
        sluice_command(&[&["dead-letters", "drop", &id_of(&l2)?, "--by", "remote-tester"][..], &remote[..]].concat())?;
    let dropped: Value = serde_json::from_str(dropped.trim()).context("drop answer")?;
    ensure!(dropped["dropped"]["position"] == f2 && dropped["dropped"]["droppedBy"] == "remote-tester", "{dropped}");

    // Without --url, on the stopped host's stores.
    host.stop().await?;
    let (data, plugins) = (host.data_dir(), host.plugins_dir());
    let config_file = config.path().join("sluice.toml");
    let local: [&str; 6] = [
        "--data-dir",
        data.to_str().context("data dir")?,
        "--plugins",
        plugins.to_str().context("plugins dir")?,
        "--config",
        config_file.to_str().context("config file")?,
    ];
    let retried = sluice_command(&[&["dead-letters", "retry", &id_of(&l3)?][..], &local[..]].concat())?;
    let retried: Value = serde_json::from_str(retried.trim()).context("local retry answer")?;
    ensure!(retried["applied"] == json!([f3]) && retried["failed"].is_null(), "{retried}");
    let dropped =
        sluice_command(&[&["dead-letters", "drop", &id_of(&l4)?, "--by", "local-tester"][..], &local[..]].concat())?;
    let dropped: Value = serde_json::from_str(dropped.trim()).context("local drop answer")?;
    ensure!(dropped["dropped"]["position"] == f4 && dropped["dropped"]["droppedBy"] == "local-tester", "{dropped}");
    let left = sluice_command(&[&["dead-letters", "list", "--consumer", "hostile"][..], &local[..]].concat())?;
    ensure!(left.trim().is_empty(), "letters left: {left}");

    host.restart().await?;
    consumers_caught_up(&host).await?;
    let wanted = BTreeMap::from([
        ("fail-1".to_owned(), joined(&f1)),
        ("fail-3".to_owned(), f3.to_string()),
        ("ok-1".to_owned(), ok.to_string()),
    ]);
    ensure!(streams(&host).await? == wanted, "{:?} vs {wanted:?}", streams(&host).await?);
    let listing = host.admin_get("/admin/dead-letters?consumer=hostile").await?.expect_status(200)?;
    let audit: Vec<(Value, Value)> = listing.body["dropped"]
        .as_array()
        .context("dropped")?
        .iter()
        .map(|d| (d["position"].clone(), d["droppedBy"].clone()))
        .collect();
    ensure!(audit == [(json!(f2), json!("remote-tester")), (json!(f4), json!("local-tester"))], "{listing}");
    let filtered = host.admin_get("/admin/dead-letters?aggregate=fail-4").await?.expect_status(200)?;
    ensure!(filtered.body["dropped"].as_array().is_some_and(|d| d.len() == 1), "{filtered}");
    Ok(())
}

/// `hostile`'s status on `host`, once `done` holds for it.
async fn status_until(host: &Host, what: &str, done: impl Fn(&str) -> bool) -> Result<String> {
    wait_until(what, SETTLE, || async {
        let plugin = host.admin_plugin("hostile").await?.context("hostile is listed")?;
        let status = plugin["status"].as_str().unwrap_or_default().to_owned();
        Ok(if done(&status) { Check::Done(status) } else { Check::NotYet(plugin.to_string()) })
    })
    .await
}

/// Two hosts on one stack (Kafka, MongoDB, PostgreSQL) share `hostile`'s consumer group and read
/// store: a pause reached on one is taken up by the other (the paused host leaves the group, and
/// the host that gets its partitions finds the pause in the read store); a resume on one host
/// lifts it on both; letters parked by either are retried through the other; and an event of an
/// aggregate released there is applied, not held back behind the letter that is gone.
#[tokio::test]
async fn two_hosts_share_the_pause_and_the_letters_kafka_postgres() -> Result<()> {
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let folder = tempfile::tempdir().context("failed to create a config folder")?;
    let file = folder.path().join("sluice.toml");
    std::fs::write(&file, "[dead_letters]\nattempts = 1\nbackoff_ms = 10\npause_after = 1\n")?;
    let options = || {
        stack
            .options_with(&[Plugin::BankAccount, Plugin::AccountsProjection])
            .arg("--config")
            .arg(file.to_string_lossy().into_owned())
            .admin_token(TOKEN)
    };
    let (a, b) = (hostile_host(options()).await?, hostile_host(options()).await?);
    let f1 = [open(&a, "fail-1").await?, deposit(&a, "fail-1").await?];
    parked_until(&a, "fail-1 parked with its deposit behind it", |letters| {
        letters.len() == 1 && blocked(&letters[0]) == [f1[1]]
    })
    .await?;

    // The second failure pauses whichever host meets it; the other takes up the pause.
    let f2 = open(&b, "fail-2").await?;
    for host in [&a, &b] {
        status_until(host, "hostile is paused on both hosts", |s| s == "paused: dead letters").await?;
    }
    let ok = open(&a, "ok-1").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(!streams(&a).await?.contains_key("ok-1"), "a paused consumer went on");

    // A resume on one host lifts the pause on both: the paused event parks, the rest flows.
    let resumed = a.admin_post("/admin/consumers/hostile/resume", &json!({})).await?.expect_status(200)?;
    ensure!(resumed.body["wasPaused"] == true, "{resumed}");
    for host in [&a, &b] {
        status_until(host, "hostile runs again on both hosts", |s| s == "running").await?;
    }
    let letters = parked(&a, 2).await?;
    ensure!(letter_of(&letters, "fail-2")?["position"] == f2, "{letters:?}");
    wait_until("ok-1 is applied", SETTLE, || async {
        let model = streams(&a).await?;
        Ok(if model.get("ok-1") == Some(&ok.to_string()) {
            Check::Done(())
        } else {
            Check::NotYet(format!("{model:?}"))
        })
    })
    .await?;

    // The fixed version on both, then a retry through the other host than the one that resumed.
    for host in [&a, &b] {
        host.admin_put_wasm("hostile", component(FIXED)?).await?.expect_status(200)?;
    }
    let retried = b.admin_post("/admin/consumers/hostile/retry", &json!({})).await?.expect_status(200)?;
    ensure!(retried.body["applied"] == json!([f1[0], f1[1], f2]) && retried.body["failed"].is_null(), "{retried}");
    // fail-1's next event reaches whichever host holds its partition, which may have parked its
    // first: it is applied, not held back behind a letter the other host retried.
    let later = deposit(&a, "fail-1").await?;
    wait_until("fail-1's next deposit is applied", SETTLE, || async {
        let model = streams(&b).await?;
        let wanted = joined(&[f1[0], f1[1], later]);
        Ok(if model.get("fail-1") == Some(&wanted) { Check::Done(()) } else { Check::NotYet(format!("{model:?}")) })
    })
    .await?;
    ensure!(parked_now(&a).await?.is_empty(), "letters left: {:?}", parked_now(&a).await?);
    let held = a.admin_get("/admin/dead-letters?consumer=hostile").await?.expect_status(200)?;
    ensure!(held.body["letters"] == json!([]), "{held}");
    Ok(())
}
