//! The reactor benchmark: the reference `account-notifier` over a bank history — how fast its
//! messages are recorded in the outbox (the same catch-up as a projection's, one transaction per
//! batch with the position) and how fast the delivery worker sends them to a local webhook (an
//! axum server in this process answering 200), each with its idempotency key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sluice::event_store::EventStore;
use sluice::plugin::{Plugin, ProjectionLogic};
use sluice::projection::Projection;
use sluice::projection::letters::DeadLetterPolicy;
use sluice::reactor::ReactorRunner;
use sluice::reactor::channels::{ChannelSpec, Channels};
use sluice::reactor::delivery::{self, DeliveryPolicy};
use sluice::reactor::outbox::Outbox;
use sluice::read_store::ReadStore;
use sluice::runtime::{WasmRuntime, loader};

/// Messages/s recorded into the outbox and delivered to the webhook.
pub struct Rates {
    pub messages: u64,
    pub recorded: f64,
    pub delivered: f64,
}

/// Run `account_notifier.wasm` at `path` over `events` into the read store at `read_store_url`,
/// then deliver its outbox to a local webhook.
pub async fn delivery_rate(
    runtime: &WasmRuntime,
    path: &std::path::Path,
    events: Arc<dyn EventStore>,
    read_store_url: &str,
) -> Result<Rates> {
    let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    let loaded = loader::load(runtime, "account_notifier.wasm", &bytes)?;
    let Plugin::Reactor(reactor) = loaded.plugin else { bail!("{} is not a reactor", path.display()) };
    let runner: Arc<dyn ProjectionLogic> = Arc::new(ReactorRunner::new(reactor, 0));
    let read_store = ReadStore::open(read_store_url).await?;
    let projection = Projection::open(runner, events, read_store.clone(), DeadLetterPolicy::default()).await?;

    let started = Instant::now();
    while projection.catch_up_once().await? {}
    let recording = started.elapsed();
    let outbox = Outbox::new(read_store, projection.name());
    let messages = outbox.counts().await?.pending;

    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/notify", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let specs = BTreeMap::from([(
        "notifications".to_owned(),
        ChannelSpec::Webhook { url, timeout: Duration::from_secs(5), headers: Vec::new() },
    )]);
    let channels = Channels::open(&specs, None)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let worker = tokio::spawn(delivery::run(
        outbox.clone(),
        channels,
        DeliveryPolicy::default(),
        projection.watch_position(),
        stop.clone(),
    ));
    while outbox.counts().await?.delivered < messages {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("delivery did not finish within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivering = started.elapsed();
    stop.cancel();
    worker.await?;
    if received.load(Ordering::Relaxed) < messages {
        bail!("the webhook got {} of {messages} messages", received.load(Ordering::Relaxed));
    }
    Ok(Rates {
        messages,
        recorded: messages as f64 / recording.as_secs_f64(),
        delivered: messages as f64 / delivering.as_secs_f64(),
    })
}
