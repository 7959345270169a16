//! The relay against a raw rdkafka producer: the same events, envelopes, keys and headers, the
//! same producer settings (idempotent, acks=all), topics with the host's partition count. The
//! relay also reads the event store, serialises each envelope and saves its position after each
//! acknowledged batch; the raw producer sends envelopes prepared in memory and waits once. Both
//! producers are created, and left a moment to connect, before their clocks start.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use sluice::bus::KafkaBus;
use sluice::event_store::EventStore;
use sluice::plugin::AggregateLogic;
use sluice::plugin::PluginRegistry;
use sluice::relay::Relay;

/// Events/s of the relay publishing the whole `store`, then of a raw producer sending the same.
pub async fn relay_vs_raw(
    kafka: &str,
    logic: Arc<dyn AggregateLogic>,
    store: Arc<dyn EventStore>,
) -> Result<(f64, f64)> {
    let head = store.head_position().await?;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let batch = store.read_all(after, 5000).await?;
        let Some(last) = batch.last() else { break };
        after = last.global_position;
        events.extend(batch);
    }
    let topic_name = logic.manifest().topic.clone();
    let registry = PluginRegistry::new();
    registry.register(logic, "bench".into())?;

    let relay_bus = bus(kafka, "relay")?;
    let relay_topic = relay_bus.topic(&topic_name);
    relay_bus.ensure_topics(std::slice::from_ref(&relay_topic)).await?;
    let mut relay = Relay::new(store.clone(), relay_bus, registry, "bench".into());
    relay.connect()?;
    settle().await;
    let started = Instant::now();
    while relay.publish_once().await? {}
    let relay_rate = events.len() as f64 / started.elapsed().as_secs_f64();
    if store.relay_position().await? != head {
        bail!("the relay stopped at {} of {head}", store.relay_position().await?);
    }

    let raw_bus = bus(kafka, "raw")?;
    let topic = raw_bus.topic(&topic_name);
    raw_bus.ensure_topics(std::slice::from_ref(&topic)).await?;
    let producer = raw_bus.producer()?;
    let prepared: Vec<(String, Vec<u8>, String, String, String)> = events
        .iter()
        .map(|e| {
            let envelope = serde_json::to_vec(&e.envelope()?)?;
            Ok((
                e.aggregate_id.clone(),
                envelope,
                e.event_type.clone(),
                e.schema_version.to_string(),
                e.global_position.to_string(),
            ))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    settle().await;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(prepared.len());
    for (key, payload, event_type, schema_version, position) in &prepared {
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header { key: "event-type", value: Some(event_type) })
            .insert(Header { key: "schema-version", value: Some(schema_version) })
            .insert(Header { key: "position", value: Some(position) });
        let mut record = FutureRecord::to(&topic).key(key).payload(payload).headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                // The local queue is full: let deliveries drain.
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in deliveries {
        if let Err((e, _)) = delivery.await.context("producer went away")? {
            bail!("raw producer: {e}");
        }
    }
    let raw_rate = prepared.len() as f64 / started.elapsed().as_secs_f64();
    drop_topics(kafka, &[relay_topic, topic]).await?;
    Ok((relay_rate, raw_rate))
}

/// Give a new producer time to connect and obtain its producer id, so that both sides are timed
/// from a connected, idle producer (as a host's relay is once it has started).
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// Delete the round's topics: each round writes hundreds of MB the broker would keep for a week.
async fn drop_topics(kafka: &str, topics: &[String]) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.trim_start_matches("kafka://"))
        .create()
        .context("cannot create a Kafka admin client")?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    for result in admin.delete_topics(&names, &AdminOptions::new()).await? {
        if let Err((topic, code)) = result {
            bail!("cannot delete topic {topic}: {code}");
        }
    }
    Ok(())
}

/// A bus with a topic prefix of its own, so runs never share topics.
fn bus(kafka: &str, what: &str) -> Result<KafkaBus> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let address = kafka.trim_start_matches("kafka://");
    Ok(KafkaBus::new(&format!("{address}?topic_prefix=bench{nanos}.{what}."))?)
}
