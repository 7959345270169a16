//! The scale-out stack: MongoDB (FerretDB) event store, Kafka bus, PostgreSQL read store. The
//! seed's bank flow lands in Kafka keyed by account in version order; a host killed in a burst
//! resumes publishing without a gap and its read model equals a fresh rebuild; two hosts on one
//! stack never overdraw and agree on the read model, also while hosts join and leave mid-burst.
//!
//! Each test uses its own MongoDB database, SQL database (PostgreSQL, once MariaDB) and Kafka
//! topic prefix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use sluice_e2e::{Api, Host, HostOptions, Plugin, Server, Stack, decimal, number, race_withdrawals, sluice_command};

/// The seed's bank domain, which every test here but the two-domain one loads.
const BANK: &[Plugin] = &[Plugin::BankAccount, Plugin::AccountsProjection];
/// The bank aggregate's topic, without this test's prefix ([`Stack::topic`] adds it).
const BANK_TOPIC: &str = "BankAccountEvents";

/// The bank domain on the stack's event store and `read_store` with the embedded bus (no Kafka).
fn embedded_bus(stack: &Stack, read_store: &str) -> HostOptions {
    HostOptions::with_plugins(BANK).arg("--event-store").arg(&stack.mongodb).arg("--read-store").arg(read_store)
}

/// The broker-restart test takes the broker away from every other test of this file.
static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// One message of the bank topic.
#[derive(Debug, Clone)]
struct Published {
    key: String,
    event_type_header: String,
    envelope: Value,
}

/// Every message of `topic` from the beginning, waiting (bounded) until at least `expected`.
async fn read_topic(bootstrap: &str, topic: &str, expected: usize) -> Result<Vec<Published>> {
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
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(message) => {
                    let message = message?;
                    let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                    let header = message
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == "event-type"))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    let envelope: Value = serde_json::from_slice(message.payload().unwrap_or_default())?;
                    messages.push(Published { key, event_type_header: header, envelope });
                    quiet_since = Instant::now();
                }
                None if messages.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) => break,
                None => {}
            }
        }
        Ok(messages)
    })
    .await?
}

/// Checks that per key, the events (repeats aside) are versions 1..=N in order, matching the
/// store's streams, and returns the number of distinct events.
fn check_per_key_order(messages: &[Published], streams: &BTreeMap<String, Vec<Value>>) -> Result<usize> {
    // The relay publishes in global position order, so that order must follow the versions of
    // each stream in the store itself; say so apart from a fault of the bus.
    for (id, stream) in streams {
        let positions: Vec<u64> = stream.iter().filter_map(|e| e["position"].as_u64()).collect();
        ensure!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "the event store gave stream {id} positions out of version order: {positions:?}"
        );
    }
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for message in messages {
        let envelope = &message.envelope;
        let id = envelope["aggregateId"].as_str().context("no aggregateId")?;
        ensure!(message.key == id, "key {} of an event of {id}", message.key);
        ensure!(envelope["eventType"].as_str() == Some(message.event_type_header.as_str()), "event-type header");
        let version = envelope["version"].as_u64().context("no version")?;
        let last = seen.entry(id).or_insert(0);
        // A repeat (the relay resumed from its saved position) is allowed; a gap is not.
        ensure!(version <= *last + 1, "{id}: version {version} after {last}");
        *last = (*last).max(version);
    }
    let mut distinct = 0;
    for (id, stream) in streams {
        let published = seen.get(id.as_str()).copied().unwrap_or(0);
        ensure!(published == stream.len() as u64, "{id}: {published} versions in Kafka, {} in the store", stream.len());
        distinct += stream.len();
    }
    Ok(distinct)
}

async fn streams(api: &Api, ids: &[String]) -> Result<BTreeMap<String, Vec<Value>>> {
    let mut streams = BTreeMap::new();
    for id in ids {
        streams.insert(id.clone(), api.events("BankAccount", id).await?);
    }
    Ok(streams)
}

fn head(streams: &BTreeMap<String, Vec<Value>>) -> u64 {
    streams.values().flatten().filter_map(|e| e["position"].as_u64()).max().unwrap_or(0)
}

#[tokio::test]
async fn the_seed_flow_lands_in_kafka_keyed_by_account_in_version_order() -> Result<()> {
    let _broker = BROKER.read().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    seed_flow(&stack).await
}

#[tokio::test]
async fn the_seed_flow_on_kafka_with_a_mariadb_read_store() -> Result<()> {
    let _broker = BROKER.read().await;
    let Some(mut stack) = Stack::fresh()? else { return Ok(()) };
    let Some(mariadb) = Server::MariaDb.fresh_database_url()? else { return Ok(()) };
    stack.read_store = mariadb;
    seed_flow(&stack).await
}

async fn seed_flow(stack: &Stack) -> Result<()> {
    let host = Host::start(stack.options_with(BANK)).await?;
    let ada = host.open_account("Ada", "50.00").await?;
    let bob = host.open_account("Bob", "10").await?;
    let gone = host.open_account("Ada", "1").await?;
    host.deposit(&ada, "0.10").await?;
    host.deposit(&ada, "0.20").await?;
    host.put_json(&format!("/api/v1/withdrawFunds/{bob}"), &json!({ "amount": number("2.5") }))
        .await?
        .expect_status(200)?;
    let last =
        host.delete(&format!("/api/v1/closeBankAccount/{gone}")).await?.expect_status(200)?.u64_field("position")?;

    // Read-your-writes through Kafka: the answer reflects everything up to `last`.
    let balances = host.balances_by_query(last).await?;
    let expected: BTreeMap<String, String> =
        [(ada.clone(), "50.3".to_owned()), (bob.clone(), "7.5".to_owned())].into_iter().collect();
    ensure!(balances == expected, "read model {balances:?}, expected {expected:?}");
    let by_holder = host.get("/api/v1/bankAccountLookup/byHolder/Ada").await?.expect_status(200)?;
    ensure!(by_holder.body["accounts"].as_array().is_some_and(|a| a.len() == 1), "byHolder Ada: {by_holder}");

    // A rebuild in place (from the event store) while the consumer runs, then more events:
    // nothing is applied twice or lost across the switch.
    host.send_raw(reqwest::Method::POST, "/api/v1/restoreReadDb", Vec::new()).await?.expect_status(201)?;
    ensure!(host.balances_by_query(last).await? == expected, "the rebuild changed the answers");
    let last = host.deposit(&bob, "1").await?;
    let after: BTreeMap<String, String> =
        [(ada.clone(), "50.3".to_owned()), (bob.clone(), "8.5".to_owned())].into_iter().collect();
    ensure!(host.balances_by_query(last).await? == after, "a deposit after the rebuild");

    let ids = [ada.clone(), bob.clone(), gone];
    let streams = streams(&host, &ids).await?;
    let messages = read_topic(&stack.kafka, &stack.topic(BANK_TOPIC), 8).await?;
    ensure!(messages.len() == 8, "8 events, no repeats without a crash: {messages:?}");
    ensure!(check_per_key_order(&messages, &streams)? == 8, "every event published");
    // The value is the envelope the events route returns.
    let first = messages.iter().find(|m| m.envelope["version"] == 1).context("no first event")?;
    let id = first.key.as_str();
    ensure!(first.envelope == streams[id][0], "envelope {} vs route {}", first.envelope, streams[id][0]);

    // Back to the embedded bus on the same stores: the projection rebuilds once from the event
    // store (its rows may be ahead of its position) and carries on from there.
    let mut host = host;
    host.stop().await?;
    let embedded = Host::start(embedded_bus(stack, &stack.read_store)).await?;
    let last = embedded.deposit(&ada, "1").await?;
    let after: BTreeMap<String, String> =
        [(ada.clone(), "51.3".to_owned()), (bob.clone(), "8.5".to_owned())].into_iter().collect();
    let balances = embedded.balances_by_query(last).await?;
    ensure!(balances == after, "after the switch to the embedded bus: {balances:?}");
    Ok(())
}

#[tokio::test]
async fn each_projection_consumes_the_topic_of_its_aggregate() -> Result<()> {
    let _broker = BROKER.read().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let host = Host::start(stack.options_with(&[
        Plugin::BankAccount,
        Plugin::Post,
        Plugin::AccountsProjection,
        Plugin::PostsProjection,
    ]))
    .await?;
    let id = host.open_account("Ada", "5").await?;
    let post = host
        .post_json("/api/v1/newPost", &json!({ "author": "Grace", "message": "hello" }))
        .await?
        .expect_status(201)?;
    let post_id = post.str_field("id")?.to_owned();
    let liked = host.put_json(&format!("/api/v1/likePost/{post_id}"), &json!({})).await?.expect_status(200)?;
    let last = liked.u64_field("position")?;
    let request = host.request(reqwest::Method::GET, "/api/v1/postLookup/").header("Sluice-Position", last.to_string());
    let posts = host.send(request).await?.expect_status(200)?;
    let listed = posts.body["posts"].as_array().with_context(|| format!("no posts in {posts}"))?;
    ensure!(listed.len() == 1 && listed[0]["likes"] == 1, "posts read model: {posts}");
    ensure!(host.balances_by_query(last).await?.get(&id).map(String::as_str) == Some("5"), "accounts read model");
    let post_events = read_topic(&stack.kafka, &stack.topic("SocialMediaPostEvents"), 2).await?;
    ensure!(post_events.len() == 2 && post_events.iter().all(|m| m.key == post_id), "post topic: {post_events:?}");
    let bank_events = read_topic(&stack.kafka, &stack.topic(BANK_TOPIC), 1).await?;
    ensure!(bank_events.len() == 1 && bank_events[0].key == id, "bank topic: {bank_events:?}");
    Ok(())
}

#[tokio::test]
async fn an_event_a_projection_cannot_handle_is_dead_lettered_once_and_the_others_carry_on() -> Result<()> {
    let _broker = BROKER.read().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let plugins = [Plugin::BankAccount, Plugin::AccountsProjection, Plugin::SnoopProjection];
    let mut host = Host::start(stack.options_with(&plugins)).await?;
    // The snoop handles only openings, and fails on each: each is dead-lettered once, with its
    // offset saved, even across a crash and a restart that redelivers from the last offset hint.
    let eve = host.open_account("Eve", "5").await?;
    let last = host.deposit(&eve, "1").await?;
    let ivy = host.open_account("Ivy", "2").await?;
    let balances = host.balances_by_query(last + 1).await?;
    ensure!(balances.get(&eve).map(String::as_str) == Some("6"), "accounts: {balances:?}");
    let snoop_letters = |letters: &str| letters.lines().filter(|l| l.contains("\"consumer\":\"snoop\"")).count();
    let letters = wait_for_letters(&stack, 2, snoop_letters).await?;
    host.kill()?;
    host.restart().await?;
    let zed = host.open_account("Zed", "3").await?;
    let last = host.deposit(&zed, "1").await?;
    let balances = host.balances_by_query(last).await?;
    let expected = [(&eve, "6"), (&ivy, "2"), (&zed, "4")];
    ensure!(expected.iter().all(|(id, b)| balances.get(*id).map(String::as_str) == Some(*b)), "accounts: {balances:?}");
    let after = wait_for_letters(&stack, 3, snoop_letters).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = sluice_command(&["dead-letters", "--read-store", &stack.read_store])?;
    ensure!(snoop_letters(&settled) == 3, "one dead letter per opening:\n{letters}\n{after}\n{settled}");
    ensure!(!host.log().contains("consumer stopped after an error"), "a consumer failed:\n{}", host.log());
    Ok(())
}

/// The dead letters once `count(letters) >= wanted`, waiting up to 20 s.
async fn wait_for_letters(stack: &Stack, wanted: usize, count: impl Fn(&str) -> usize) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let letters = sluice_command(&["dead-letters", "--read-store", &stack.read_store])?;
        if count(&letters) >= wanted {
            return Ok(letters);
        }
        ensure!(Instant::now() < deadline, "expected {wanted} dead letters:\n{letters}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_host_killed_in_a_burst_resumes_publishing_and_its_read_model_equals_a_rebuild() -> Result<()> {
    let _broker = BROKER.read().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let mut host = Host::start(stack.options_with(BANK)).await?;
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(host.open_account(&format!("holder {n}"), "100").await?);
    }
    // Up to 600 deposits from 10 clients; the host is killed (SIGKILL) once 250 are acknowledged.
    let api = host.api().clone();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let burst: Vec<_> = (0..10)
        .map(|client| {
            let (api, ids, acknowledged) = (api.clone(), ids.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0..60 {
                    let id = &ids[(client + n) % ids.len()];
                    let sent =
                        api.put_json(&format!("/api/v1/depositFunds/{id}"), &json!({ "amount": number("1.01") })).await;
                    match sent {
                        Ok(reply) if reply.status == 200 => acknowledged.fetch_add(1, Ordering::SeqCst),
                        Ok(_) => 0,
                        Err(_) => return,
                    };
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.load(Ordering::SeqCst) < 250 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.kill()?;
    for client in burst {
        client.await?;
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    ensure!(acknowledged >= 250, "only {acknowledged} deposits were acknowledged before the kill");
    host.restart().await?;
    let streams = streams(&host, &ids).await?;
    let position = head(&streams);
    let truth = host.balances_by_replay(&ids).await?;
    let read_model = host.balances_by_query(position).await?;
    ensure!(read_model == truth, "read model {read_model:?} differs from replay {truth:?}");

    let total: usize = streams.values().map(Vec::len).sum();
    eprintln!("{total} events in the store after the crash, {acknowledged} deposits acknowledged");
    ensure!(total >= 8 + acknowledged, "{total} events, {acknowledged} acknowledged deposits");
    let messages = read_topic(&stack.kafka, &stack.topic(BANK_TOPIC), total).await?;
    ensure!(check_per_key_order(&messages, &streams)? == total, "every event published");
    eprintln!("{} messages in Kafka for {total} events (repeats after the crash are allowed)", messages.len());

    // A rebuild from the event store into a fresh database answers the same.
    let Some(fresh) = Server::Postgres.fresh_database_url()? else { return Ok(()) };
    let plugins = host.plugins_dir().to_string_lossy().into_owned();
    let data = host.data_dir().to_string_lossy().into_owned();
    let out = sluice_command(&[
        "rebuild",
        "accounts",
        "--data-dir",
        &data,
        "--plugins",
        &plugins,
        "--event-store",
        &stack.mongodb,
        "--read-store",
        &stack.read_store,
        "--into",
        &fresh,
    ])?;
    ensure!(out.contains("rebuilt accounts"), "rebuild said: {out}");
    let reader = Host::start(embedded_bus(&stack, &fresh)).await?;
    let rebuilt = reader.balances_by_query(position).await?;
    ensure!(rebuilt == read_model, "rebuild {rebuilt:?} differs from the live read model {read_model:?}");
    Ok(())
}

#[tokio::test]
async fn two_hosts_on_one_stack_never_overdraw_and_agree() -> Result<()> {
    let _broker = BROKER.read().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let first = Host::start(stack.options_with(BANK)).await?;
    let second = Host::start(stack.options_with(BANK)).await?;
    let id = first.open_account("Shared", "100").await?;
    // 30 withdrawals of 10, half through each host, all at once: exactly 10 succeed.
    let succeeded = race_withdrawals(&first, &second, &id).await?;
    ensure!(succeeded == 10, "{succeeded} withdrawals of 10 from 100 succeeded");
    let state = first.state("BankAccount", &id, None).await?.expect_status(200)?;
    ensure!(decimal(&state.body["state"]["balance"])? == "0", "balance by replay: {state}");

    let streams = streams(&first, std::slice::from_ref(&id)).await?;
    let position = head(&streams);
    for host in [&first, &second] {
        let balances = host.balances_by_query(position).await?;
        ensure!(balances.get(&id).map(String::as_str) == Some("0"), "read model {balances:?}");
    }
    let messages = read_topic(&stack.kafka, &stack.topic(BANK_TOPIC), 11).await?;
    ensure!(check_per_key_order(&messages, &streams)? == 11, "every event published");

    // One host dies (SIGKILL): the other takes over publishing and consuming once the dead
    // one's lease and group session expire, and nothing is lost.
    let mut first = first;
    first.kill()?;
    let last = second.deposit(&id, "25").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = second.get(&format!("/api/projections/accounts/queries/all?position={last}")).await?;
        if reply.status == 200 {
            let balances = second.balances_by_query(last).await?;
            ensure!(balances.get(&id).map(String::as_str) == Some("25"), "read model after failover {balances:?}");
            break;
        }
        ensure!(Instant::now() < deadline, "the survivor never caught up: {reply}");
    }
    let streams = self::streams(&second, std::slice::from_ref(&id)).await?;
    let messages = read_topic(&stack.kafka, &stack.topic(BANK_TOPIC), 12).await?;
    ensure!(check_per_key_order(&messages, &streams)? == 12, "every event published after the failover");
    Ok(())
}

#[tokio::test]
async fn hosts_joining_and_leaving_mid_burst_share_the_work_and_agree_with_the_replay() -> Result<()> {
    let _broker = BROKER.read().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let first = Host::start(stack.options_with(BANK)).await?;
    let mut second = Host::start(stack.options_with(BANK)).await?;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(first.open_account(&format!("holder {n}"), "100").await?);
    }
    // 240 deposits through both hosts while a third host joins and the second leaves (SIGTERM):
    // the consumer groups rebalance twice under load.
    let apis = [first.api().clone(), second.api().clone()];
    let burst: Vec<_> = (0..8)
        .map(|client| {
            let (api, ids) = (apis[client % 2].clone(), ids.clone());
            tokio::spawn(async move {
                for n in 0..30 {
                    let id = &ids[(client * 5 + n) % ids.len()];
                    let reply =
                        api.put_json(&format!("/api/v1/depositFunds/{id}"), &json!({ "amount": number("0.01") })).await;
                    if reply.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = Host::start(stack.options_with(BANK)).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    second.stop().await?;
    for client in burst {
        client.await?;
    }
    let streams = streams(&first, &ids).await?;
    let position = head(&streams);
    let truth = first.balances_by_replay(&ids).await?;
    for host in [&first, &third] {
        let read_model = host.balances_by_query(position).await?;
        ensure!(read_model == truth, "read model {read_model:?} differs from replay {truth:?}");
    }
    let total: usize = streams.values().map(Vec::len).sum();
    let messages = read_topic(&stack.kafka, &stack.topic(BANK_TOPIC), total).await?;
    ensure!(check_per_key_order(&messages, &streams)? == total, "every event published");
    Ok(())
}

#[tokio::test]
async fn a_broker_restart_in_a_burst_loses_nothing() -> Result<()> {
    let _broker = BROKER.write().await;
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let host = Host::start(stack.options_with(BANK)).await?;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(host.open_account(&format!("holder {n}"), "100").await?);
    }
    // The system is running: the relay publishes and the projection's consumer has joined.
    let position = host.deposit(&ids[0], "0.01").await?;
    host.balances_by_query(position).await?;
    // 8 clients deposit while the broker is stopped and started again (commands need only the
    // event store; the relay and the consumers wait for the broker and carry on).
    let api = host.api().clone();
    let burst: Vec<_> = (0..8)
        .map(|client| {
            let (api, ids) = (api.clone(), ids.clone());
            tokio::spawn(async move {
                let mut acknowledged = 0;
                for n in 0..50 {
                    let id = &ids[(client + n) % ids.len()];
                    if api.deposit(id, "1.01").await.is_ok() {
                        acknowledged += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let servers = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/servers");
    let restart = tokio::process::Command::new(servers).args(["restart", "kafka"]).output().await?;
    ensure!(restart.status.success(), "scripts/servers restart kafka: {}", String::from_utf8_lossy(&restart.stderr));
    let mut acknowledged = 0;
    for client in burst {
        acknowledged += client.await?;
    }
    ensure!(acknowledged == 8 * 50, "only {acknowledged} of 400 deposits were acknowledged");

    let streams = streams(&host, &ids).await?;
    let total: usize = streams.values().map(Vec::len).sum();
    ensure!(total == 6 + 1 + 400, "{total} events in the store");
    let messages = read_topic(&stack.kafka, &stack.topic(BANK_TOPIC), total).await?;
    ensure!(check_per_key_order(&messages, &streams)? == total, "every event published");
    let truth = host.balances_by_replay(&ids).await?;
    // The consumers reconnect on their own schedule: each try waits up to the host's
    // read-your-writes bound.
    let mut read_model = host.balances_by_query(head(&streams)).await;
    for _ in 0..5 {
        if read_model.is_ok() {
            break;
        }
        read_model = host.balances_by_query(head(&streams)).await;
    }
    let read_model = read_model?;
    ensure!(read_model == truth, "read model {read_model:?} differs from replay {truth:?}");
    Ok(())
}
