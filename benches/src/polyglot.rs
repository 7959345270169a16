//! The projections written in JavaScript (`holder_stats`, componentize-js) and Python
//! (`audit_feed`, componentize-py) against the Rust `accounts` projection, side by side: how long
//! a load takes (compile and `describe` from the bytes, then again from the component cache in a
//! fresh engine, as a restart does) and how many events/s each applies catching up over the same
//! number of events on SQLite, 500 per transaction. The Rust and JavaScript projections follow
//! the same bank history; the Python audit feed follows posts (one insert per event), a history
//! of the same length.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use sluice::event_store::sqlite::SqliteEventStore;
use sluice::event_store::{EventStore, NewEvent};
use sluice::plugin::ProjectionLogic;
use sluice::read_store::ReadStore;
use sluice::runtime::{SandboxLimits, WasmRuntime};

use crate::projection;

/// An event store in `dir` with `total` post events: posts created, then liked.
async fn post_history(dir: &Path, total: usize) -> Result<Arc<dyn EventStore>> {
    let url = format!("sqlite://{}", dir.join("posts.db").display());
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(&url).await?);
    let per_post = 20;
    for n in 0..total.div_ceil(per_post) {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let mut events = vec![NewEvent {
            event_type: "PostCreatedEvent".into(),
            schema_version: 1,
            data: format!(
                r#"{{"id":"{id}","author":"author {}","message":"hello","datePosted":"2026-01-01T00:00:00Z"}}"#,
                n % 100
            ),
        }];
        while events.len() < per_post.min(total - n * per_post) {
            events.push(NewEvent {
                event_type: "PostLikedEvent".into(),
                schema_version: 1,
                data: format!(r#"{{"id":"{id}"}}"#),
            });
        }
        store.append("Post", &id, 0, &events).await?;
    }
    Ok(store)
}

/// Seconds to compile and load `path` in a fresh engine caching into `cache`.
fn load_time(cache: &Path, path: &Path) -> Result<(f64, Arc<dyn ProjectionLogic>)> {
    let runtime = WasmRuntime::new(Some(cache.to_path_buf()), SandboxLimits::default())?;
    let started = Instant::now();
    let plugin = projection::load(&runtime, path)?;
    Ok((started.elapsed().as_secs_f64(), plugin))
}

/// Load and catch-up figures of the Rust projection at `rust` and of the JavaScript and Python
/// ones in `polyglot_dir`, `events` events, median of `rounds`. The first load compiles into
/// `cache` (default: a fresh folder, so it measures a first start; an existing component cache
/// makes both loads cached ones).
pub async fn bench(rust: &Path, polyglot_dir: &Path, cache: Option<&Path>, events: usize, rounds: usize) -> Result<()> {
    let dir = tempfile::tempdir().context("failed to create a temp dir")?;
    let bank = projection::bank_history(dir.path(), events / 20, events).await?;
    let posts = post_history(dir.path(), events).await?;
    let sides = [
        ("rust accounts", rust.to_path_buf(), bank.clone()),
        ("js holder_stats", polyglot_dir.join("holder_stats.wasm"), bank),
        ("python audit_feed", polyglot_dir.join("audit_feed.wasm"), posts),
    ];
    println!(
        "projections in Rust, JavaScript and Python: load (compile + describe, then from the component cache in a fresh engine) and catch-up of {events} events on SQLite, 500 per transaction, median of {rounds}"
    );
    let mut rust_rate = None;
    for (label, path, history) in sides {
        if !path.is_file() {
            println!("  {label:<18} skipped: {} is missing (scripts/polyglot build)", path.display());
            continue;
        }
        let size = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
        let cache =
            cache.map_or_else(|| dir.path().join(format!("cache-{}", label.replace(' ', "-"))), Path::to_path_buf);
        let (cold, _) = load_time(&cache, &path)?;
        let (cached, plugin) = load_time(&cache, &path)?;
        let mut rates = Vec::new();
        for round in 0..rounds.max(1) {
            let read = dir.path().join(format!("read-{}-{round}.db", label.replace(' ', "-")));
            let store = ReadStore::open(&format!("sqlite://{}", read.display())).await?;
            rates.push(projection::wasm_catch_up(plugin.clone(), history.clone(), store).await?);
        }
        rates.sort_by(f64::total_cmp);
        let rate = rates[rates.len() / 2];
        let ratio = rate / *rust_rate.get_or_insert(rate);
        println!(
            "  {label:<18} {size:>5.1} MiB   load {cold:>6.2} s, cached {cached:>5.3} s   catch-up {rate:>8.0} events/s   ratio to rust {ratio:.3}"
        );
    }
    Ok(())
}
