//! Projection benchmarks: the accounts projection through the Wasm plugin against raw sqlx
//! writes of the same rows, and the rate of a full rebuild.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use sluice::event_store::sqlite::SqliteEventStore;
use sluice::event_store::{EventStore, NewEvent};
use sluice::plugin::ProjectionLogic;
use sluice::projection::Projection;
use sluice::projection::letters::DeadLetterPolicy;
use sluice::read_store::{ProjectionSchema, ReadStore};
use sluice::runtime::WasmRuntime;
use sluice::runtime::projection::WasmProjection;

/// Events per transaction in the raw baseline, as the host's follower batches them.
const RAW_BATCH: usize = 500;

/// An event store in `dir` with `accounts` accounts, each opened then given deposits, `total`
/// events in all.
pub async fn bank_history(dir: &std::path::Path, accounts: usize, total: usize) -> Result<Arc<dyn EventStore>> {
    let url = format!("sqlite://{}", dir.join("events.db").display());
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(&url).await?);
    let per_account = total.div_ceil(accounts).max(1);
    let mut written = 0;
    for n in 0..accounts {
        if written >= total {
            break;
        }
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let mut events = vec![NewEvent {
            event_type: "AccountOpenedEvent".into(),
            schema_version: 1,
            data: format!(
                r#"{{"id":"{id}","accountHolder":"holder {}","accountType":"SAVINGS","createdDate":"2026-01-01T00:00:00Z","openingBalance":100.00}}"#,
                n % 1000
            ),
        }];
        while events.len() < per_account && written + events.len() < total {
            events.push(NewEvent {
                event_type: "FundsDepositedEvent".into(),
                schema_version: 1,
                data: format!(r#"{{"id":"{id}","amount":1.25}}"#),
            });
        }
        written += events.len();
        store.append("BankAccount", &id, 0, &events).await?;
    }
    Ok(store)
}

/// A consistent copy of the SQLite event store at `from` (its WAL included) at `to`.
pub async fn copy_store(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", from.display())).await?;
    sqlx::query("VACUUM INTO ?1").bind(to.display().to_string()).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// Events/s of the Wasm projection catching up from position 0 on `read_store`.
pub async fn wasm_catch_up(
    plugin: Arc<dyn ProjectionLogic>,
    events: Arc<dyn EventStore>,
    read_store: ReadStore,
) -> Result<f64> {
    let head = events.head_position().await?;
    let projection = Projection::open(plugin, events, read_store, DeadLetterPolicy::default()).await?;
    let started = Instant::now();
    while projection.catch_up_once().await? {}
    Ok(head as f64 / started.elapsed().as_secs_f64())
}

/// Events/s of the same rows written with plain sqlx statements, `RAW_BATCH` events per
/// transaction, into a table of the same shape.
pub async fn raw_writes(
    schema: &ProjectionSchema,
    events: &Arc<dyn EventStore>,
    read_store: &ReadStore,
) -> Result<f64> {
    let raw = ProjectionSchema { projection: "raw".into(), tables: schema.tables.clone() };
    read_store.create_tables(&raw, 1).await?;
    let d = read_store.dialect();
    let table = d.quote(&raw.physical_name("accounts", 1));
    let sqlite = d == sluice::read_store::Dialect::Sqlite;
    let money = |n: usize| d.param(n, sluice::read_store::ColumnType::Decimal);
    let insert = format!(
        "INSERT INTO {table} (id, account_holder, creation_date, account_type, balance) VALUES ({}, {}, {}, {}, {})",
        d.placeholder(1),
        d.placeholder(2),
        d.placeholder(3),
        d.placeholder(4),
        money(5)
    );
    let update = format!("UPDATE {table} SET balance = balance + {} WHERE id = {}", money(1), d.placeholder(2));
    let head = events.head_position().await?;
    let started = Instant::now();
    let mut after = 0;
    loop {
        let batch = events.read_all(after, RAW_BATCH as u32).await?;
        let Some(last) = batch.last() else { break };
        after = last.global_position;
        let mut tx = read_store.pool().begin().await?;
        for event in &batch {
            let data: serde_json::Value = serde_json::from_str(&event.data)?;
            let id = data["id"].as_str().unwrap_or_default().to_owned();
            if event.event_type == "AccountOpenedEvent" {
                let query = sqlx::query(&insert)
                    .bind(id)
                    .bind(data["accountHolder"].as_str().unwrap_or_default().to_owned())
                    .bind(data["createdDate"].as_str().unwrap_or_default().to_owned())
                    .bind(data["accountType"].as_str().unwrap_or_default().to_owned());
                let query = if sqlite { query.bind(10_000_i64) } else { query.bind("100.00".to_owned()) };
                query.execute(&mut *tx).await?;
            } else {
                let query = if sqlite {
                    sqlx::query(&update).bind(125_i64)
                } else {
                    sqlx::query(&update).bind("1.25".to_owned())
                };
                query.bind(id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(head as f64 / started.elapsed().as_secs_f64())
}

/// Events/s of `sluice rebuild` of the projection into `target`.
pub async fn rebuild_rate(
    plugin: Arc<dyn ProjectionLogic>,
    events: Arc<dyn EventStore>,
    serving: ReadStore,
    target: &ReadStore,
) -> Result<f64> {
    let head = events.head_position().await?;
    let projection = Projection::open(plugin, events, serving, DeadLetterPolicy::default()).await?;
    let started = Instant::now();
    projection.rebuild(Some(target), &|_, _| {}).await.context("rebuild failed")?;
    Ok(head as f64 / started.elapsed().as_secs_f64())
}

pub fn load(runtime: &WasmRuntime, path: &std::path::Path) -> Result<Arc<dyn ProjectionLogic>> {
    let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    let component = runtime.component_from_bytes("bench", &bytes).context("failed to compile the projection")?;
    Ok(Arc::new(WasmProjection::load(runtime, "bench", &component).context("failed to load the projection")?))
}
