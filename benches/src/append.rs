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

/// (store appends/s, raw inserts/s) for `appends` single-event appends from `clients` clients.
pub async fn append_vs_insert_many(url: &str, appends: usize, clients: usize) -> Result<(f64, f64)> {
    let unique = std::process::id();
    let store_db = database_url(url, &format!("sluice_bench_append_{unique}"));
    let raw_db = format!("sluice_bench_raw_{unique}");
    let store = Arc::new(MongoEventStore::open(&store_db).await.context("cannot open the MongoDB event store")?);
    let per_client = appends / clients;
    let data = r#"{"id":"00000000-0000-0000-0000-000000000000","amount":10.25}"#;

    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let store = store.clone();
            tokio::spawn(async move {
                let event = NewEvent { event_type: "FundsDepositedEvent".into(), schema_version: 1, data: data.into() };
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
    let store_rate = (per_client * clients) as f64 / started.elapsed().as_secs_f64();

    let client = mongodb::Client::with_uri_str(url).await?;
    let collection = client.database(&raw_db).collection::<mongodb::bson::Document>("commits");
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let collection = collection.clone();
            tokio::spawn(async move {
                for version in 0..per_client as i64 {
                    let document = doc! {
                        "_id": format!("{n}-{version}"),
                        "aggregate_type": "Bench", "aggregate_id": format!("stream-{n}"),
                        "start": version + 1, "end": version + 1, "last_position": version,
                        "recorded_at": "2026-01-01T00:00:00.000Z",
                        "events": [{ "version": version + 1, "position": version, "event_type": "FundsDepositedEvent",
                                     "schema_version": 1, "data": data, "recorded_at": "2026-01-01T00:00:00.000Z" }],
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
    let raw_rate = (per_client * clients) as f64 / started.elapsed().as_secs_f64();

    for name in [store_db.rsplit('/').next().unwrap_or_default().to_owned(), raw_db] {
        client.database(&name).drop().await?;
    }
    Ok((store_rate, raw_rate))
}

fn database_url(url: &str, name: &str) -> String {
    let (address, _) = url.split_once('?').unwrap_or((url, ""));
    let hosts = address.find("://").map_or(0, |i| i + 3);
    let end = address[hosts..].find('/').map_or(address.len(), |i| hosts + i);
    format!("{}/{name}", &address[..end])
}
