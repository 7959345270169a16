//! `sluice-bench`: measures the host with a Wasm aggregate against the same aggregate compiled
//! natively, side by side in one run, and prints the ratios; then the projection benchmarks and
//! hot swaps under load (a real `sluice serve`, [`swap`]). Run it through `scripts/bench`.

mod append;
mod http_load;
mod interleave;
mod native;
mod native_host;
mod polyglot;
mod projection;
mod reactor;
mod relay;
mod server;
mod swap;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use clap::Parser;
use sluice::command::CommandService;
use sluice::event_store::EventStore;
use sluice::event_store::sqlite::SqliteEventStore;
use sluice::http::{AppState, router};
use sluice::plugin::PluginRegistry;
use sluice::plugin::{AggregateLogic, CommandInput};
use sluice::runtime::aggregate::WasmAggregate;
use sluice::runtime::{SandboxLimits, WasmRuntime};
use tower::ServiceExt;

use crate::native::NativeAggregate;

/// The host binary's allocator, so the figures are the host's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "Wasm aggregate against the same logic compiled natively, through the host")]
struct Args {
    /// The bank-account component (bank_account.wasm).
    #[arg(long)]
    plugin: PathBuf,
    /// Commands per measured run.
    #[arg(long, default_value_t = 6000)]
    commands: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Accounts the commands are spread over.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Aggregate states the command service keeps (the host's default; 0 replays every stream
    /// from its start).
    #[arg(long, default_value_t = sluice::config::DEFAULT_CACHED_STATES)]
    cached_states: usize,
    /// Alternating rounds per side; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The accounts projection component (accounts_projection.wasm); projection benchmarks run
    /// when given.
    #[arg(long)]
    projection: Option<PathBuf>,
    /// The account-notifier reactor component (account_notifier.wasm); the reactor delivery
    /// benchmark runs beside the projection catch-up when given.
    #[arg(long)]
    reactor: Option<PathBuf>,
    /// Events the projection catch-up benchmark replays.
    #[arg(long, default_value_t = 50_000)]
    projection_events: usize,
    /// The folder of the JavaScript and Python components (`scripts/polyglot build`): their
    /// load time and catch-up rate are measured against the Rust accounts projection's.
    #[arg(long)]
    polyglot: Option<PathBuf>,
    /// The component cache of the polyglot benchmark's loads [default: a fresh folder, so the
    /// first load compiles].
    #[arg(long)]
    polyglot_cache: Option<PathBuf>,
    /// Events of the polyglot catch-up benchmark.
    #[arg(long, default_value_t = 10_000)]
    polyglot_events: usize,
    /// Run only the polyglot benchmark (needs --projection and --polyglot).
    #[arg(long)]
    polyglot_only: bool,
    /// Events of the rebuild benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    rebuild_events: usize,
    /// A PostgreSQL server URL (a database is created under it) for the PostgreSQL figures.
    #[arg(long, env = "SLUICE_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// A Kafka bootstrap URL (kafka://HOST:PORT) for the relay figures.
    #[arg(long, env = "SLUICE_BENCH_KAFKA_URL")]
    kafka: Option<String>,
    /// A MongoDB URL (FerretDB in scripts/servers) for the append figures.
    #[arg(long, env = "SLUICE_BENCH_MONGODB_URL")]
    mongodb: Option<String>,
    /// Appends per round of the append benchmark.
    #[arg(long, default_value_t = 4000)]
    appends: usize,
    /// Events of the relay benchmark (enough to fill the relay's pipeline several times).
    #[arg(long, default_value_t = 200_000)]
    relay_events: usize,
    /// Run only the hot-swap benchmark (a real `sluice serve` under load, with and without
    /// replacements of the accounts projection); it needs --projection.
    #[arg(long, conflicts_with = "skip_swap_bench")]
    swap_bench: bool,
    /// Leave the hot-swap benchmark out (it runs after the others when --projection is given).
    #[arg(long)]
    skip_swap_bench: bool,
    /// The release host binary the hot-swap benchmark starts [default:
    /// $CARGO_TARGET_DIR/release/sluice, CARGO_TARGET_DIR defaulting to ~/.cache/sluice/target].
    #[arg(long, env = "SLUICE_BENCH_SLUICE")]
    sluice: Option<PathBuf>,
    /// Seconds of load per side of the hot-swap benchmark.
    #[arg(long, default_value_t = 10.0)]
    swap_window_secs: f64,
    /// Replacements of the accounts projection, evenly spaced over the window, in the side with swaps.
    #[arg(long, default_value_t = 50)]
    swaps: usize,
    /// Run only the load benchmark over HTTP (a real `sluice serve`, back-to-back windows as the
    /// log grows); it needs --projection.
    #[arg(long, conflicts_with_all = ["swap_bench", "skip_swap_bench"])]
    http_bench: bool,
    /// HTTP clients of the load benchmark.
    #[arg(long, default_value_t = 32)]
    http_clients: usize,
    /// Back-to-back windows of the load benchmark.
    #[arg(long, default_value_t = 5)]
    http_windows: usize,
    /// Seconds per window of the load benchmark.
    #[arg(long, default_value_t = 20.0)]
    http_window_secs: f64,
    /// A long run of the load benchmark: windows are added (up to 100) until the log holds this
    /// many events, e.g. 100000 to see the rate as the log grows past 100k.
    #[arg(long, default_value_t = 0)]
    http_min_events: u64,
    /// A `sluice serve` argument for the load benchmark's host, repeatable
    /// (`--serve-arg=--event-store --serve-arg=mongodb://…`); none: the embedded default.
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
    /// Run the load benchmark a second time against the same host with the aggregate compiled
    /// natively (this binary's `serve`), and print Wasm ÷ native.
    #[arg(long, requires = "http_bench")]
    http_native: bool,
    /// With --http-native: run the Wasm and the native side this many times, alternating which
    /// goes first, and print the median of the ratios (this machine's speed drifts within minutes).
    #[arg(long, default_value_t = 1, requires = "http_native")]
    http_pairs: usize,
    /// With --http-native or --http-versus: run the hosts at once and switch the load between
    /// them this many times, in slices of --http-slice-secs, in mirrored order (1 2 3 3 2 1 …, a
    /// whole number of groups): a drift of the machine's speed falls on every side alike.
    #[arg(long, requires = "http_bench", conflicts_with = "http_pairs")]
    http_interleave: Option<usize>,
    /// With --http-interleave: compare the host (--sluice) with this other `sluice` build, both
    /// with the Wasm aggregate (the A/B of a change to the host).
    #[arg(long, requires = "http_interleave", conflicts_with = "http_native")]
    http_versus: Option<PathBuf>,
    /// Seconds per slice of --http-interleave.
    #[arg(long, default_value_t = 2.0)]
    http_slice_secs: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The load benchmark's native side starts this binary as its host (`native_host`).
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return native_host::serve(std::env::args().skip(1).collect()).await;
    }
    let args = Args::parse();
    if args.swap_bench {
        return swap_bench(&args).await;
    }
    if args.http_bench {
        return http_bench(&args).await;
    }
    if let (Some(rust), Some(dir)) = (&args.projection, &args.polyglot) {
        polyglot::bench(rust, dir, args.polyglot_cache.as_deref(), args.polyglot_events, args.rounds).await?;
        if args.polyglot_only {
            return Ok(());
        }
    }
    let runtime = WasmRuntime::new(None, SandboxLimits::default()).context("failed to start the runtime")?;
    let bytes = std::fs::read(&args.plugin).with_context(|| format!("failed to read {}", args.plugin.display()))?;
    let component = runtime.component_from_bytes("bench", &bytes).context("failed to compile the plugin")?;
    let wasm: Arc<dyn AggregateLogic> =
        Arc::new(WasmAggregate::load(&runtime, "bench", &component).context("failed to load the plugin")?);
    let native: Arc<dyn AggregateLogic> = Arc::new(NativeAggregate::<bank_account::BankAccount>::new());

    println!(
        "commands through the host: HTTP router in-process, SQLite event store, {} clients, {} commands over {} accounts, {} cached states, {} rounds",
        args.concurrency, args.commands, args.accounts, args.cached_states, args.rounds
    );
    let mut commands = SideBySide::new("", ("wasm", "commands/s"), ("native", "commands/s"), 0.9);
    for round in 1..=args.rounds {
        let (w, n) = alternating(
            round,
            async || commands_per_second(wasm.clone(), &args).await,
            async || commands_per_second(native.clone(), &args).await,
        )
        .await?;
        commands.record(round, w, n);
    }
    commands.finish();

    let history_len = 20;
    for (from_cache, what) in
        [(false, "replay of 20 events + decide"), (true, "a command on the state the last one left in the cache")]
    {
        println!("{what}, no I/O, one thread");
        let (mut wasm_rates, mut native_rates) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            wasm_rates.push(calls_per_second(wasm.as_ref(), history_len, from_cache)?);
            native_rates.push(calls_per_second(native.as_ref(), history_len, from_cache)?);
        }
        let (w, n) = (median(&mut wasm_rates), median(&mut native_rates));
        println!("  median:  wasm {w:>9.0} calls/s      native {n:>9.0} calls/s      ratio wasm/native {:.3}", w / n);
    }

    if let Some(path) = &args.projection {
        projection_benches(&runtime, path, &args).await?;
    }
    if let Some(kafka) = &args.kafka {
        let dir = tempfile::tempdir().context("failed to create a temp dir")?;
        let store = projection::bank_history(dir.path(), args.relay_events / 20, args.relay_events).await?;
        drop(store);
        println!(
            "relay to Kafka, {} events from the SQLite event store: relay vs a raw rdkafka producer (same settings), {} rounds",
            args.relay_events, args.rounds
        );
        let mut relay = SideBySide::new("", ("relay", "events/s"), ("raw producer", "events/s"), 0.7);
        for round in 1..=args.rounds {
            // Each round publishes a fresh copy of the history, from position 0, to fresh topics.
            let copy = dir.path().join(format!("relay-round-{round}.db"));
            projection::copy_store(&dir.path().join("events.db"), &copy).await?;
            let store: Arc<dyn EventStore> =
                Arc::new(SqliteEventStore::open(&format!("sqlite://{}", copy.display())).await?);
            let (relayed, raw) = relay::relay_vs_raw(kafka, native.clone(), store).await?;
            relay.record(round, relayed, raw);
        }
        relay.finish();
    }
    if let Some(url) = &args.mongodb {
        for clients in [args.concurrency, 1] {
            println!(
                "appends to the MongoDB event store vs raw insert_many of equivalent documents, {} appends, {clients} clients, {} rounds",
                args.appends, args.rounds
            );
            let mut appends = SideBySide::new("", ("store", "appends/s"), ("raw insert_many", "docs/s"), 0.8);
            for round in 1..=args.rounds {
                let (store, raw) = alternating(
                    round,
                    async || append::store_rate(url, args.appends, clients).await,
                    async || append::raw_rate(url, args.appends, clients).await,
                )
                .await?;
                appends.record(round, store, raw);
            }
            appends.finish();
        }
    }
    if args.projection.is_some() && !args.skip_swap_bench {
        swap_bench(&args).await?;
    }
    Ok(())
}

/// The release host binary: --sluice, else $CARGO_TARGET_DIR/release/sluice.
fn sluice_binary(args: &Args) -> PathBuf {
    args.sluice.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice/target"),
            PathBuf::from,
        );
        target.join("release/sluice")
    })
}

async fn http_bench(args: &Args) -> anyhow::Result<()> {
    let Some(projection) = &args.projection else {
        bail!("the load benchmark needs --projection (accounts_projection.wasm)");
    };
    ensure!(
        args.http_window_secs.is_finite() && args.http_window_secs > 0.0,
        "--http-window-secs must be a positive number of seconds"
    );
    let setup = http_load::LoadSetup {
        sluice: sluice_binary(args),
        aggregate: args.plugin.clone(),
        projection: projection.clone(),
        clients: args.http_clients,
        accounts: args.accounts.max(args.http_clients),
        windows: args.http_windows,
        window: Duration::from_secs_f64(args.http_window_secs),
        min_events: args.http_min_events,
        args: args.serve_arg.clone(),
        native: match args.http_native {
            true => Some(std::env::current_exe().context("cannot tell where sluice-bench is")?),
            false => None,
        },
        pairs: args.http_pairs,
    };
    if let Some(slices) = args.http_interleave {
        ensure!(
            args.http_slice_secs.is_finite() && args.http_slice_secs > 0.0,
            "--http-slice-secs must be a positive number of seconds"
        );
        ensure!(
            args.http_native || args.http_versus.is_some(),
            "--http-interleave compares two hosts: give --http-native or --http-versus"
        );
        let slice = Duration::from_secs_f64(args.http_slice_secs);
        return interleave::bench(&setup, args.http_versus.as_deref(), slices, slice).await;
    }
    http_load::bench(&setup).await
}

async fn swap_bench(args: &Args) -> anyhow::Result<()> {
    let Some(projection) = &args.projection else {
        bail!("the hot-swap benchmark needs --projection (accounts_projection.wasm)");
    };
    let sluice = sluice_binary(args);
    ensure!(
        args.swap_window_secs.is_finite() && args.swap_window_secs > 0.0,
        "--swap-window-secs must be a positive number of seconds"
    );
    let setup = swap::Setup::new(
        sluice,
        args.plugin.clone(),
        projection,
        args.concurrency,
        args.accounts,
        Duration::from_secs_f64(args.swap_window_secs),
        args.swaps,
    )
    .await?;
    swap::bench(&setup, args.rounds).await
}

/// Drop the reactor's outbox and position, so a round starts from position 0.
async fn drop_reactor_tables(store: &sluice::read_store::ReadStore) -> anyhow::Result<()> {
    let schema = sluice::reactor::outbox::schema("account-notifier");
    store.drop_tables(&schema, sluice::reactor::outbox::GENERATION).await?;
    sqlx::query("DELETE FROM sluice_projections WHERE name = 'account-notifier'").execute(store.pool()).await?;
    Ok(())
}

async fn projection_benches(runtime: &WasmRuntime, path: &std::path::Path, args: &Args) -> anyhow::Result<()> {
    use sluice::read_store::ReadStore;
    let plugin = projection::load(runtime, path)?;
    let schema = plugin.manifest().schema.clone();
    let dir = tempfile::tempdir().context("failed to create a temp dir")?;
    let events = projection::bank_history(dir.path(), args.projection_events / 20, args.projection_events).await?;
    let mut targets = vec![("sqlite", format!("sqlite://{}", dir.path().join("read.db").display()))];
    if let Some(url) = &args.postgres {
        targets.push(("postgres", with_database(url, "sluice_bench_catchup")));
    }
    println!(
        "projection catch-up, {} events, 500 per transaction: Wasm accounts projection vs raw sqlx writes of the same rows",
        args.projection_events
    );
    for (name, url) in &targets {
        let mut catch_up =
            SideBySide::new(&format!("{name:<8}  "), ("wasm", "events/s"), ("raw sqlx", "events/s"), 0.8);
        for round in 1..=args.rounds {
            let store = ReadStore::open(url).await?;
            reset(&store, &schema).await?;
            let (w, r) = alternating(
                round,
                async || projection::wasm_catch_up(plugin.clone(), events.clone(), store.clone()).await,
                async || projection::raw_writes(&schema, &events, &store).await,
            )
            .await?;
            catch_up.record(round, w, r);
        }
        catch_up.finish();
        if let Some(reactor) = &args.reactor {
            let store = ReadStore::open(url).await?;
            drop_reactor_tables(&store).await?;
            let rates = reactor::delivery_rate(runtime, reactor, events.clone(), url).await?;
            println!(
                "  {name:<8}  reactor account-notifier, {} messages: recorded {:>9.0} messages/s (outbox + position, one transaction per batch), delivered {:>9.0} messages/s (local webhook, Idempotency-Key)",
                rates.messages, rates.recorded, rates.delivered
            );
        }
    }

    let dir = tempfile::tempdir().context("failed to create a temp dir")?;
    let started = std::time::Instant::now();
    let events = projection::bank_history(dir.path(), args.rebuild_events / 100, args.rebuild_events).await?;
    println!("rebuild of {} events (history written in {:.1}s)", args.rebuild_events, started.elapsed().as_secs_f64());
    let serving = ReadStore::open(&format!("sqlite://{}", dir.path().join("serving.db").display())).await?;
    let mut targets = vec![("sqlite", format!("sqlite://{}", dir.path().join("rebuilt.db").display()))];
    if let Some(url) = &args.postgres {
        targets.push(("postgres", with_database(url, "sluice_bench_rebuild")));
    }
    for (name, url) in targets {
        let target = ReadStore::open(&url).await?;
        reset(&target, &schema).await?;
        let rate = projection::rebuild_rate(plugin.clone(), events.clone(), serving.clone(), &target).await?;
        println!("  {name:<8}  {rate:>9.0} events/s (target >= 50000)");
    }
    Ok(())
}

/// Forget earlier runs: drop the projection's and the baseline's tables and checkpoint.
async fn reset(
    store: &sluice::read_store::ReadStore,
    schema: &sluice::read_store::ProjectionSchema,
) -> anyhow::Result<()> {
    for generation in 1..=8 {
        store.drop_tables(schema, generation).await?;
        let raw = sluice::read_store::ProjectionSchema { projection: "raw".into(), tables: schema.tables.clone() };
        store.drop_tables(&raw, generation).await?;
    }
    sqlx::query("DELETE FROM sluice_projections").execute(store.pool()).await?;
    Ok(())
}

fn with_database(url: &str, name: &str) -> String {
    match url.rfind('/') {
        Some(slash) if slash > url.find("://").map_or(0, |i| i + 2) => format!("{}/{name}", &url[..slash]),
        _ => format!("{url}/{name}"),
    }
}

/// Open the accounts, then time `args.commands` deposits and withdrawals through the router.
async fn commands_per_second(logic: Arc<dyn AggregateLogic>, args: &Args) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir().context("failed to create a temp dir")?;
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(&url).await?);
    let registry = PluginRegistry::new();
    registry.register(logic, "bench".into())?;
    let app = router(AppState::without_admin(
        CommandService::new(registry, store, args.cached_states),
        sluice::projection::Projections::new(),
    ));

    let mut ids = Vec::with_capacity(args.accounts);
    for i in 0..args.accounts {
        let body = format!(r#"{{"accountHolder":"holder {i}","accountType":"SAVINGS","openingBalance":1000.00}}"#);
        let (status, json) = call(&app, Method::POST, "/api/v1/openBankAccount", body).await?;
        if status != StatusCode::CREATED {
            bail!("opening an account answered {status}: {json}");
        }
        ids.push(json["id"].as_str().unwrap_or_default().to_owned());
    }
    let ids = Arc::new(ids);
    let per_client = args.commands / args.concurrency;
    let started = Instant::now();
    let clients: Vec<_> = (0..args.concurrency)
        .map(|client| {
            let (app, ids) = (app.clone(), ids.clone());
            tokio::spawn(async move {
                for n in 0..per_client {
                    let id = &ids[(client * per_client + n) % ids.len()];
                    let (path, amount) = if n % 2 == 0 { ("depositFunds", "10.25") } else { ("withdrawFunds", "5.10") };
                    let body = format!(r#"{{"amount":{amount}}}"#);
                    let (status, json) = call(&app, Method::PUT, &format!("/api/v1/{path}/{id}"), body).await?;
                    if status != StatusCode::OK {
                        bail!("{path} answered {status}: {json}");
                    }
                }
                Ok::<(), anyhow::Error>(())
            })
        })
        .collect();
    for client in clients {
        client.await.context("client task failed")??;
    }
    Ok((per_client * args.concurrency) as f64 / started.elapsed().as_secs_f64())
}

/// Call `execute` with a fixed history in a loop for about a second.
fn calls_per_second(logic: &dyn AggregateLogic, history_len: u64, from_cache: bool) -> anyhow::Result<f64> {
    let id = "00000000-0000-4000-8000-000000000001";
    let mut history = Vec::new();
    let opened = CommandInput {
        command_type: "OpenAccount".into(),
        aggregate_id: id.into(),
        data: r#"{"accountHolder":"h","accountType":"CURRENT","openingBalance":100}"#.into(),
        issued_at: "2026-01-01T00:00:00Z".into(),
        fresh_id: id.into(),
    };
    let deposit =
        CommandInput { command_type: "DepositFunds".into(), data: r#"{"amount":1.50}"#.into(), ..opened.clone() };
    for version in 1..=history_len {
        let input = if version == 1 { &opened } else { &deposit };
        let decision = logic.execute(None, &history, input).map_err(|e| anyhow::anyhow!("{e}"))?;
        for event in decision.verdict.map_err(|e| anyhow::anyhow!("{e}"))? {
            history.push(sluice::event_store::StoredEvent {
                aggregate_type: "BankAccount".into(),
                aggregate_id: id.into(),
                version,
                global_position: version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                data: event.data,
                recorded_at: "2026-01-01T00:00:00Z".into(),
            });
        }
    }
    // From the cache, as the host keeps it after the last command: when the plugin applies what
    // it decides (WIT 0.3.0), the state after all the events, with nothing to evolve; else the
    // state the last command decided on and its one new event. From scratch, every event.
    let (state, history) = match from_cache {
        true => {
            let (older, newest) = history.split_at(history.len() - 1);
            let last = logic.execute(None, older, &deposit).map_err(|e| anyhow::anyhow!("{e}"))?;
            if last.after.is_some() {
                let whole = logic.execute(None, &history, &deposit).map_err(|e| anyhow::anyhow!("{e}"))?.state;
                (whole, Vec::new())
            } else {
                (last.state, newest.to_vec())
            }
        }
        false => (None, history),
    };
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        logic.execute(state.as_deref(), &history, &deposit).map_err(|e| anyhow::anyhow!("{e}"))?;
        calls += 1;
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

async fn call(
    app: &axum::Router,
    method: Method,
    path: &str,
    body: String,
) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .context("failed to build a request")?;
    let response = app.clone().oneshot(request).await.context("router failed")?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.context("failed to read a response")?;
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

/// Both sides of one round: the first side first in odd rounds and last in even ones, so neither
/// always meets the warmer disk and caches.
async fn alternating<T>(
    round: usize,
    first: impl AsyncFnOnce() -> anyhow::Result<T>,
    second: impl AsyncFnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, T)> {
    if round % 2 == 1 {
        let a = first().await?;
        Ok((a, second().await?))
    } else {
        let b = second().await?;
        Ok((first().await?, b))
    }
}

/// A side-by-side benchmark's rounds: each round's rates and ratio printed as they come, then the
/// medians, the ratio of the medians and the median of the rounds' ratios against the target.
struct SideBySide {
    indent: String,
    sides: [(&'static str, &'static str); 2],
    target: f64,
    rates: [Vec<f64>; 2],
    ratios: Vec<f64>,
}

impl SideBySide {
    /// `side` and `baseline` are (name, unit) of the measured side and of what it is measured against.
    fn new(
        indent: &str,
        side: (&'static str, &'static str),
        baseline: (&'static str, &'static str),
        target: f64,
    ) -> Self {
        Self {
            indent: indent.to_owned(),
            sides: [side, baseline],
            target,
            rates: [Vec::new(), Vec::new()],
            ratios: Vec::new(),
        }
    }

    fn line(&self, a: f64, b: f64) -> String {
        let [(a_name, a_unit), (b_name, b_unit)] = self.sides;
        format!("{a_name} {a:>9.0} {a_unit}   {b_name} {b:>9.0} {b_unit}")
    }

    fn record(&mut self, round: usize, a: f64, b: f64) {
        println!("  {}round {round}: {}   ratio {:.3}", self.indent, self.line(a, b), a / b);
        self.rates[0].push(a);
        self.rates[1].push(b);
        self.ratios.push(a / b);
    }

    /// Print the medians; returns the median of the rounds' ratios.
    fn finish(mut self) -> f64 {
        let (a, b) = (median(&mut self.rates[0]), median(&mut self.rates[1]));
        let ratio = median(&mut self.ratios);
        println!(
            "  {}median:  {}   ratio of medians {:.3}, median ratio {:.3} (target >= {})",
            self.indent,
            self.line(a, b),
            a / b,
            ratio,
            self.target
        );
        ratio
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
