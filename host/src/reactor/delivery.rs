//! The delivery worker of one reactor: drains its outbox ([`super::outbox`]) to the channels.
//!
//! - **At least once**: a message is marked delivered only after its channel acknowledged it (a
//!   2xx answer, a broker ack); a crash in between delivers it again, under the same id. The
//!   marks of one round commit together, after the round (one commit instead of one per
//!   message): a crash loses at most a round's marks, which means duplicates, never a loss.
//! - **In order per key**: a batch's messages are grouped by key; one key's messages go one
//!   after the other, different keys concurrently. A message that is parked holds back the rest
//!   of its key (now and in later batches) until an operator retries it.
//! - **Backoff, then parking**: each message gets [`DeliveryPolicy::attempts`] calls, the waits
//!   doubling with jitter from [`DeliveryPolicy::first_backoff`] (`backon`); after the last
//!   failure it is parked and listed (`GET /admin/reactors/{name}/outbox?state=parked`).
//!
//! - **Retention**: a delivered message stays in the outbox as the record of what was sent for
//!   [`DeliveryPolicy::retention`], then the worker deletes it, a small batch at a time between
//!   rounds ([`PRUNE_BATCH`], at most [`PRUNE_BATCHES`] per pass), so the outbox does not grow
//!   without bound and pruning never holds delivery up for long.
//!
//! The worker wakes when its reactor's position moves (new messages may have been recorded),
//! and polls besides, for parked messages an operator sent back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::channels::{Channels, Delivery, DeliveryError};
use super::outbox::{Message, Outbox};

/// Messages read from the outbox per round.
const BATCH: u32 = 500;
/// How often an idle worker looks at its outbox anyway.
const POLL: Duration = Duration::from_millis(500);
/// Delivered messages deleted per statement.
pub const PRUNE_BATCH: u32 = 200;
/// Batches one pruning pass deletes at most; the rest waits for the next pass.
const PRUNE_BATCHES: u32 = 10;
/// The longest wait between two pruning passes.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How hard the worker tries one message, and how many keys it serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Calls before a message is parked.
    pub attempts: u32,
    /// The wait before the second call; doubling (with jitter) after.
    pub first_backoff: Duration,
    /// The longest wait between two calls.
    pub max_backoff: Duration,
    /// Keys delivered concurrently.
    pub concurrency: usize,
    /// How long a delivered message is kept in the outbox before the worker deletes it.
    pub retention: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            attempts: 10,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            concurrency: 32,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// [`DeliveryPolicy::retention`] unless `[delivery] retention_secs` says otherwise: a week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl DeliveryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }
}

/// Deliver `outbox` to `channels` until `stop` fires; `moved` ticks when the reactor commits.
pub async fn run(
    outbox: Outbox,
    channels: Channels,
    policy: DeliveryPolicy,
    mut moved: watch::Receiver<u64>,
    stop: CancellationToken,
) {
    let gate = Arc::new(Semaphore::new(policy.concurrency.max(1)));
    let prune_every = policy.retention.min(PRUNE_EVERY).max(Duration::from_millis(100));
    let mut pruned = Instant::now();
    loop {
        if stop.is_cancelled() {
            return;
        }
        if pruned.elapsed() >= prune_every {
            prune(&outbox, policy.retention).await;
            pruned = Instant::now();
        }
        match outbox.pending(BATCH).await {
            Ok(messages) if messages.is_empty() => {
                tokio::select! {
                    changed = moved.changed() => if changed.is_err() {
                        // The runner is gone (removed): keep polling until stopped.
                        tokio::select! { () = tokio::time::sleep(POLL) => {}, () = stop.cancelled() => return }
                    },
                    () = tokio::time::sleep(POLL) => {}
                    () = stop.cancelled() => return,
                }
            }
            Ok(messages) => deliver_batch(&outbox, &channels, policy, &gate, messages, &stop).await,
            Err(e) => {
                tracing::warn!("cannot read the outbox, trying again: {e}");
                tokio::select! { () = tokio::time::sleep(Duration::from_secs(1)) => {}, () = stop.cancelled() => return }
            }
        }
    }
}

/// Delete what was delivered longer than `retention` ago, a batch at a time, a bounded number of
/// batches per pass.
async fn prune(outbox: &Outbox, retention: Duration) {
    let Ok(retention) = chrono::Duration::from_std(retention) else { return };
    let cutoff = (chrono::Utc::now() - retention).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut deleted = 0;
    for _ in 0..PRUNE_BATCHES {
        match outbox.prune_delivered(&cutoff, PRUNE_BATCH).await {
            Ok(n) => {
                deleted += n;
                if n < u64::from(PRUNE_BATCH) {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!("cannot prune the outbox's delivered messages, trying later: {e}");
                break;
            }
        }
    }
    if deleted > 0 {
        tracing::debug!(deleted, "delivered messages past their retention pruned from the outbox");
    }
}

/// Deliver one batch: per key in order, keys concurrently.
async fn deliver_batch(
    outbox: &Outbox,
    channels: &Channels,
    policy: DeliveryPolicy,
    gate: &Arc<Semaphore>,
    messages: Vec<Message>,
    stop: &CancellationToken,
) {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<Message>> = HashMap::new();
    for message in messages {
        if !by_key.contains_key(&message.key) {
            order.push(message.key.clone());
        }
        by_key.entry(message.key.clone()).or_default().push(message);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for key in order {
        let Some(queue) = by_key.remove(&key) else { continue };
        let (channels, gate, stop) = (channels.clone(), gate.clone(), stop.clone());
        let outbox = outbox.clone();
        // In the worker's span (the supervisor's `task`, naming the delivery worker): a key's
        // delivery lines say whose they are, as the worker's own lines do.
        tasks.spawn(
            async move {
                let mut delivered = Vec::new();
                let Ok(_permit) = gate.acquire_owned().await else { return delivered };
                for message in queue {
                    match deliver_one(&outbox, &channels, policy, &message, &stop).await {
                        Some(attempts) => delivered.push((message.id, attempts)),
                        // Parked or stopped: the key's later messages wait.
                        None => break,
                    }
                }
                delivered
            }
            .in_current_span(),
        );
    }
    let mut delivered = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(mut ids) = done {
            delivered.append(&mut ids);
        }
    }
    if let Err(e) = outbox.delivered(&delivered).await {
        // Delivered but not recorded: the next round sends them again, same ids.
        tracing::warn!("cannot record {} deliveries: {e}", delivered.len());
    }
}

/// Deliver `message` with retries: `Some(calls)` when it was delivered; `None` when it was
/// parked (recorded here) or the worker is stopping.
async fn deliver_one(
    outbox: &Outbox,
    channels: &Channels,
    policy: DeliveryPolicy,
    message: &Message,
    stop: &CancellationToken,
) -> Option<u32> {
    let calls = AtomicU32::new(0);
    let delivery = Delivery { id: &message.id, key: &message.key, payload: &message.payload };
    let attempt = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        channels.deliver(&message.channel, &delivery).await
    };
    let outcome = tokio::select! {
        outcome = attempt
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .notify(|e: &DeliveryError, wait| {
                tracing::debug!(reactor = %message.reactor, id = %message.id, ?wait, "delivery failed, trying again: {e}");
            }) => outcome,
        () = stop.cancelled() => return None,
    };
    let attempts = calls.load(Ordering::SeqCst);
    match outcome {
        Ok(()) => Some(attempts),
        Err(e) => {
            tracing::error!(reactor = %message.reactor, id = %message.id, attempts, "delivery parked after its retries: {e}");
            match outbox.park(&message.id, attempts, &e.to_string()).await {
                // Counted with the event letters, by consumer: a parked delivery is the reactor's dead letter.
                Ok(()) => crate::telemetry::dead_letter(&message.reactor),
                Err(e) => {
                    tracing::warn!(reactor = %message.reactor, id = %message.id, "cannot record the parking: {e}")
                }
            }
            None
        }
    }
}
