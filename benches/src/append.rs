//! Appends to the MongoDB event store against raw `insert_many` of equivalent documents on the
//! same server, side by side: the same clients, streams, event sizes and one document per append.
//! The store also keeps two indexes (the stream's versions, unique; the log's positions), gives out
//! global positions without gaps and answers each append with its positions; appends that arrive
//! together share one `insert_many` (group commit), as they would in a busy host.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use mongodb::bson::doc;
use sluice::event_store::mongodb::MongoEventStore;
use sluice::event_store::{EventStore, NewEvent};

/// Store appends/s for `appends` single-event appends from `clients` clients, in a fresh database.
pub async fn store_rate(url: &str, appends: usize, clients: usize) -> Result<f64> {
    let store_db = database_url(url, &fresh_name("sluice_bench_append"));
    let store = Arc::new(MongoEventStore::open(&store_db).await.context("cannot open the MongoDB event store")?);
    let per_client = appends / clients;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let store = store.clone();
            tokio::spawn(async move {
                let event = NewEvent { event_type: "FundsDepositedEvent".into(), schema_version: 1, data: DATA.into() };
                for version in 0..per_client as u64 {
                    store.append("Bench", &format!("stream-{client}"), version, std::slice::from_ref(&event)).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let rate = (per_client * clients) as f64 / started.elapsed().as_secs_f64();
    drop_database(url, &store_db).await?;
    Ok(rate)
}

/// Raw `insert_many` documents/s: the same clients and counts, one document (what the store
/// writes for an append) per call, in a fresh database.
pub async fn raw_rate(url: &str, appends: usize, clients: usize) -> Result<f64> {
    let raw_db = database_url(url, &fresh_name("sluice_bench_raw"));
    let client = mongodb::Client::with_uri_str(&raw_db).await?;
    let collection = client.default_database().context("no database")?.collection::<mongodb::bson::Document>("commits");
    let per_client = appends / clients;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let collection = collection.clone();
            tokio::spawn(async move {
                for version in 0..per_client as i64 {
                    let position = (n as i64) * per_client as i64 + version + 1;
                    let document = doc! {
                        "_id": format!("{position:020}"), "first_position": position, "last_position": position,
                        "aggregate_type": "Bench", "aggregate_id": format!("stream-{n}"),
                        "start": version + 1, "end": version + 1,
                        "recorded_at": "2026-01-01T00:00:00.000000Z",
                        "events": [{ "version": version + 1, "position": position, "event_type": "FundsDepositedEvent",
                                     "schema_version": 1, "data": DATA, "recorded_at": "2026-01-01T00:00:00.000000Z" }],
                    };
                    collection.insert_many([document]).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let rate = (per_client * clients) as f64 / started.elapsed().as_secs_f64();
    drop_database(url, &raw_db).await?;
    Ok(rate)
}

/// A database name no other round or run uses.
fn fresh_name(prefix: &str) -> String {
    static ROUND: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let round = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{round}", std::process::id())
}

const DATA: &str = r#"{"id":"00000000-0000-0000-0000-000000000000","amount":10.25}"#;

async fn drop_database(url: &str, database_url: &str) -> Result<()> {
    let client = mongodb::Client::with_uri_str(url).await?;
    client.database(database_url.rsplit('/').next().unwrap_or_default()).drop().await?;
    Ok(())
}

fn database_url(url: &str, name: &str) -> String {
    let (address, _) = url.split_once('?').unwrap_or((url, ""));
    let hosts = address.find("://").map_or(0, |i| i + 3);
    let end = address[hosts..].find('/').map_or(address.len(), |i| hosts + i);
    format!("{}/{name}", &address[..end])
}
