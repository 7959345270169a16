//! Plugins that arrive at runtime on the scale-out stack (Kafka bus, MongoDB/FerretDB event
//! store, PostgreSQL read store), through the admin API:
//!
//! - a host that starts with the `BankAccount` aggregate alone (no projection, so no consumer
//!   group) gets the accounts projection uploaded: its consumer group is created and joined at
//!   runtime, it catches up, follows new deposits through Kafka, leaves with its routes when it
//!   is deleted and, uploaded again while deposits go on, resumes with every balance exact;
//! - a host that starts with the accounts projection alone (no aggregate, so no topic) gets the
//!   aggregate uploaded: its topic is created at runtime and the projection's consumer
//!   re-subscribes and applies the new events.
//!
//! Each test has its own MongoDB database, PostgreSQL database and Kafka topic prefix, and is
//! skipped (or fails, with `SLUICE_REQUIRE_SERVERS=1`) without them. FerretDB scans a collection
//! for every read, so the stack serves some tens of commands a second: the histories are small.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::under_load::{Load, caught_up, check_upload};
use sluice_e2e::{Api, Check, Host, HostOptions, LOOKUP, Ledger, Plugin, Stack, check_plugin, sha256_hex, wait_until};

const TOKEN: &str = "plugins-at-runtime-token";
/// A bound on catching up, joining a group, or a member leaving it, on the stack.
const CATCH_UP: Duration = Duration::from_secs(120);
/// Accounts opened before the projection arrives, and deposits into each.
const ACCOUNTS: usize = 8;
const DEPOSITS: usize = 3;
/// Clients depositing while the projection is removed and uploaded again, and a bound on each
/// (far more than the removal and the upload take: the clients stop once the upload is checked).
/// Commands on the stack no longer read FerretDB, so 80 each were sent before the upload.
const CLIENTS: usize = 4;
const COMMANDS_PER_CLIENT: usize = 2000;

/// The two tests share two cores with the servers: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `sluice serve` options with `plugins` on `stack`, a longer request timeout (FerretDB's pace)
/// and the admin token.
fn options(stack: &Stack, plugins: &[Plugin]) -> HostOptions {
    stack.options_with(plugins).request_timeout(Duration::from_secs(60)).admin_token(TOKEN)
}

/// The bank aggregate's topic on `stack`.
fn bank_topic(stack: &Stack) -> String {
    stack.topic("BankAccountEvents")
}

/// The accounts projection's consumer group on `stack` (`KafkaBus::projection_group`).
fn accounts_group(stack: &Stack) -> String {
    stack.topic("sluice.projection.accounts")
}

/// A client of the broker outside any group (it never subscribes), for metadata, watermarks,
/// group descriptions and a group's committed offsets.
fn observer(bootstrap: &str, group: Option<&str>) -> Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("enable.auto.commit", "false");
    if let Some(group) = group {
        config.set("group.id", group);
    }
    config.create().context("failed to create a Kafka client")
}

/// Every topic the broker knows.
async fn topics(bootstrap: &str) -> Result<Vec<String>> {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let client = observer(&bootstrap, None)?;
        let metadata = client.fetch_metadata(None, Duration::from_secs(10))?;
        Ok(metadata.topics().iter().map(|t| t.name().to_owned()).collect())
    })
    .await?
}

/// A consumer group as the broker describes it: its state (`Dead` or empty for a group that
/// does not exist) and its members' ids.
#[derive(Debug, Clone)]
struct Group {
    state: String,
    members: Vec<String>,
}

async fn describe_group(bootstrap: &str, group: &str) -> Result<Group> {
    let (bootstrap, group) = (bootstrap.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let client = observer(&bootstrap, None)?;
        let list = client.fetch_group_list(Some(&group), Duration::from_secs(10))?;
        Ok(match list.groups().iter().find(|g| g.name() == group) {
            Some(found) => Group {
                state: found.state().to_owned(),
                members: found.members().iter().map(|m| m.id().to_owned()).collect(),
            },
            None => Group { state: String::new(), members: Vec::new() },
        })
    })
    .await?
}

/// Per partition of `topic`: the group's committed offset (-1 for none) and the high watermark.
async fn group_progress(bootstrap: &str, group: &str, topic: &str) -> Result<BTreeMap<i32, (i64, i64)>> {
    let (bootstrap, group, topic) = (bootstrap.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let client = observer(&bootstrap, Some(&group))?;
        let timeout = Duration::from_secs(10);
        let metadata = client.fetch_metadata(Some(&topic), timeout)?;
        let mut partitions = TopicPartitionList::new();
        for found in metadata.topics() {
            for partition in found.partitions() {
                partitions.add_partition(&topic, partition.id());
            }
        }
        ensure!(partitions.count() > 0, "topic {topic} has no partitions");
        let committed = client.committed_offsets(partitions, timeout)?;
        let mut progress = BTreeMap::new();
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(n) => n,
                _ => -1,
            };
            let (_, high) = client.fetch_watermarks(&topic, element.partition(), timeout)?;
            progress.insert(element.partition(), (offset, high));
        }
        Ok(progress)
    })
    .await?
}

/// Waits until the accounts group is `Stable` with exactly one member (this host's consumer).
async fn joined(stack: &Stack) -> Result<Group> {
    wait_until("the accounts consumer group is stable with one member", CATCH_UP, || async {
        let group = describe_group(&stack.kafka, &accounts_group(stack)).await?;
        Ok(if group.state == "Stable" && group.members.len() == 1 {
            Check::Done(group)
        } else {
            Check::NotYet(format!("{group:?}"))
        })
    })
    .await
}

/// Waits until the accounts group has committed, on every partition of the bank topic, the
/// high watermark: its consumer read every published event from Kafka.
async fn consumed_everything(stack: &Stack) -> Result<BTreeMap<i32, (i64, i64)>> {
    wait_until("the accounts group has committed every partition's end", CATCH_UP, || async {
        let progress = group_progress(&stack.kafka, &accounts_group(stack), &bank_topic(stack)).await?;
        let published: i64 = progress.values().map(|(_, high)| high).sum();
        // A partition nothing was published to has no committed offset (-1), and needs none.
        Ok(if published > 0 && progress.values().all(|(committed, high)| (*committed).max(0) == *high) {
            Check::Done(progress)
        } else {
            Check::NotYet(format!("committed and high watermark per partition: {progress:?}"))
        })
    })
    .await
}

/// Open `ACCOUNTS` accounts and deposit `DEPOSITS` times into each, from one client.
async fn some_history(api: &Api, ledger: &mut Ledger) -> Result<()> {
    for n in 0..ACCOUNTS {
        let id = ledger.open(api, &format!("holder {n}"), "100").await?;
        for k in 0..DEPOSITS {
            ledger.deposit(api, &id, ["0.25", "10", "3.5"][k % 3]).await?;
        }
    }
    Ok(())
}

/// The read model shows the ledger, through the seed route (`Sluice-Position` header) and the
/// generic query (`position` parameter), both as of the ledger's last position.
async fn check_read_model(api: &Api, ledger: &Ledger) -> Result<()> {
    ledger.wait_for_lookup(api, CATCH_UP).await?;
    let balances = api.balances_by_query(ledger.last_position()).await?;
    ensure!(balances == ledger.balances(), "generic query {balances:?}, expected {:?}", ledger.balances());
    Ok(())
}

/// The projection is gone: its seed routes and the generic query answer 404, and the admin API
/// no longer lists it.
async fn check_gone(api: &Api, some_id: &str) -> Result<()> {
    for path in [LOOKUP.to_owned(), format!("{LOOKUP}byId/{some_id}")] {
        api.get(&path).await?.check_error(404, &["route_not_found"]).with_context(|| format!("GET {path}"))?;
    }
    api.get("/api/projections/accounts/queries/all").await?.check_error(404, &["unknown_projection"])?;
    let listed = api.admin_plugin("accounts").await?;
    ensure!(listed.is_none(), "accounts still listed after its removal: {listed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_uploaded_at_runtime_joins_its_group_leaves_and_resumes_exactly() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let host = Host::start(options(&stack, &[Plugin::BankAccount])).await?;

    // The aggregate alone: no projection, no consumer, no consumer group.
    let (plugins, _) = host.admin_plugins().await?;
    let names: Vec<&str> = plugins.iter().filter_map(|p| p["name"].as_str()).collect();
    ensure!(names == ["BankAccount"], "plugins at the start: {plugins:?}");
    let consumers = host.admin_get("/admin/consumers").await?.expect_status(200)?;
    ensure!(consumers.body["consumers"].as_array().is_some_and(Vec::is_empty), "consumers: {consumers}");
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger).await?;
    host.get(LOOKUP).await?.check_error(404, &["route_not_found"])?;
    let before = describe_group(&stack.kafka, &accounts_group(&stack)).await?;
    ensure!(before.members.is_empty(), "the accounts group has members before the projection exists: {before:?}");
    eprintln!("before the upload, the accounts group is {before:?}");

    // Uploaded: created, caught up from the event store, and a member of its own group.
    let component = Plugin::AccountsProjection.bytes()?;
    let reply = host.admin_put_wasm("accounts", component.clone()).await?.expect_status(201)?;
    check_upload(&reply, "created", &component)?;
    check_read_model(&host, &ledger).await?;
    let plugin = caught_up(&host, "accounts", CATCH_UP).await?;
    check_plugin(&plugin, "accounts", "projection")?;
    ensure!(plugin["sha256"] == sha256_hex(&component), "another component runs: {plugin}");
    ensure!(plugin["position"].as_u64() >= Some(ledger.last_position()), "position behind the history: {plugin}");
    let group = joined(&stack).await?;
    eprintln!("after the upload, the accounts group is {group:?}");

    // New deposits reach it through Kafka: read-your-writes on each, and the group's committed
    // offsets reach the end of every partition.
    for id in ledger.ids() {
        let position = ledger.deposit(&host, &id, "1.01").await?;
        let balances = host.balances_by_query(position).await?;
        let expected = ledger.balances();
        ensure!(balances[&id] == expected[&id], "{id} at position {position}: {balances:?}, expected {expected:?}");
    }
    check_read_model(&host, &ledger).await?;
    let progress = consumed_everything(&stack).await?;
    eprintln!("the accounts group committed (offset, high watermark) per partition: {progress:?}");

    // Deposits go on from several clients while the projection is removed and uploaded again.
    let load = Load::start(host.api(), &ledger.ids(), CLIENTS, COMMANDS_PER_CLIENT);
    wait_until("the load has begun", CATCH_UP, || async {
        Ok(if load.answered() >= 10 { Check::Done(()) } else { Check::NotYet(format!("{}", load.answered())) })
    })
    .await?;
    let reply = host.admin_delete("/admin/plugins/accounts").await?.expect_status(200)?;
    ensure!(reply.body["removed"] == "accounts", "expected `removed: accounts`: {reply}");
    let during_removal = load.answered();
    check_gone(&host, &ledger.ids()[0]).await?;
    // Its consumer leaves the group (after the session timeout: the member is static).
    wait_until("the removed projection's consumer has left its group", CATCH_UP, || async {
        let group = describe_group(&stack.kafka, &accounts_group(&stack)).await?;
        Ok(if group.members.is_empty() { Check::Done(()) } else { Check::NotYet(format!("{group:?}")) })
    })
    .await?;
    // Still away after those seconds of deposits.
    ensure!(load.answered() > during_removal, "no deposit was answered while the projection was away");
    check_gone(&host, &ledger.ids()[0]).await?;

    let reply = host.admin_put_wasm("accounts", component.clone()).await?.expect_status(201)?;
    check_upload(&reply, "created", &component)?;
    let at_upload = load.answered();
    ensure!(
        load.running() > 0,
        "every client had sent its {COMMANDS_PER_CLIENT} deposits before the upload: not under load"
    );
    joined(&stack).await?;
    wait_until("deposits go on after the upload", CATCH_UP, || async {
        let answered = load.answered();
        Ok(if answered >= at_upload + 10 || load.running() == 0 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{answered}"))
        })
    })
    .await?;
    let commands = load.finish(&mut ledger).await?;
    eprintln!(
        "{commands} deposits from {CLIENTS} clients: {during_removal} answered when the removal was, \
         {at_upload} when the upload was"
    );

    // Resumed: every acknowledged deposit exactly once, from Kafka to the end of the topic.
    check_read_model(&host, &ledger).await?;
    let plugin = caught_up(&host, "accounts", CATCH_UP).await?;
    ensure!(plugin["sha256"] == sha256_hex(&component), "another component runs: {plugin}");
    ensure!(host.balances_by_replay(&ledger.ids()).await? == ledger.balances(), "replayed balances differ");
    let progress = consumed_everything(&stack).await?;
    eprintln!("after resuming, the accounts group committed (offset, high watermark): {progress:?}");
    ensure!(!host.log().contains("consumer stopped after an error"), "a consumer failed:\n{}", host.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregate_uploaded_at_runtime_gets_its_topic_and_the_projection_follows_it() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let host = Host::start(options(&stack, &[Plugin::AccountsProjection])).await?;

    // The projection alone: its routes answer (no account yet), no topic exists.
    let plugin = host.admin_plugin("accounts").await?.context("accounts is not listed")?;
    check_plugin(&plugin, "accounts", "projection")?;
    eprintln!("the projection without an aggregate: {plugin}");
    let reply = host.get(LOOKUP).await?;
    ensure!(reply.status == 204, "{LOOKUP} without any account answered {reply}");
    let topic = bank_topic(&stack);
    let known = topics(&stack.kafka).await?;
    ensure!(!known.contains(&topic), "{topic} exists before its aggregate is loaded");
    host.post_json(
        "/api/v1/openBankAccount",
        &serde_json::json!({ "accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": 1 }),
    )
    .await?
    .check_error(404, &["route_not_found"])?;

    // The aggregate arrives: its topic is created, and its routes take commands.
    let component = Plugin::BankAccount.bytes()?;
    let reply = host.admin_put_wasm("BankAccount", component.clone()).await?.expect_status(201)?;
    ensure!(reply.body["created"] == true, "expected `created: true`: {reply}");
    check_plugin(&reply.body["plugin"], "BankAccount", "aggregate")?;
    ensure!(reply.body["plugin"]["sha256"] == sha256_hex(&component), "another component: {reply}");
    let known = topics(&stack.kafka).await?;
    ensure!(known.contains(&topic), "{topic} does not exist once the aggregate's upload is answered: {known:?}");

    // The projection's consumer re-subscribes: it joins its group and applies the new events.
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger).await?;
    check_read_model(&host, &ledger).await?;
    joined(&stack).await?;
    for id in ledger.ids() {
        let position = ledger.deposit(&host, &id, "0.07").await?;
        let balances = host.balances_by_query(position).await?;
        ensure!(balances[&id] == ledger.balances()[&id], "{id} at position {position}: {balances:?}");
    }
    check_read_model(&host, &ledger).await?;
    let plugin = caught_up(&host, "accounts", CATCH_UP).await?;
    ensure!(plugin["position"].as_u64() >= Some(ledger.last_position()), "position behind: {plugin}");
    let progress = consumed_everything(&stack).await?;
    eprintln!("the accounts group committed (offset, high watermark) per partition: {progress:?}");
    ensure!(host.balances_by_replay(&ledger.ids()).await? == ledger.balances(), "replayed balances differ");
    if host.log().contains("consumer stopped after an error") {
        bail!("a consumer failed:\n{}", host.log());
    }
    Ok(())
}
