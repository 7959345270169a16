//! The relay: follows the event store's global log and publishes every event to Kafka, so a
//! crash between an append and its publication loses nothing. Commands never publish.
//!
//! The relay keeps a few batches in flight and saves the position of a batch only once the
//! broker acknowledged all of it and everything before it; after a crash it resumes from the saved position, so
//! a message may appear twice on the wire but none is missing (consumers skip the repeats by
//! global position, see [`crate::projection`]). Hosts sharing a store each run a relay, but
//! only the holder of the store's relay lease publishes; a relay that loses the lease stops
//! before saving, and the one that takes over starts from the last saved position. The owner
//! name is the host's id (kept in its data directory), so a host restarted after a crash takes
//! its own lease back at once instead of waiting for it to expire.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::bus::kafka::{HEADER_EVENT_TYPE, HEADER_POSITION, HEADER_SCHEMA_VERSION};
use crate::bus::{BusError, KafkaBus};
use crate::event_store::{EventStore, EventStoreError, StoredEvent};
use crate::runtime::registry::PluginRegistry;

/// Events read and produced per batch.
const BATCH: u32 = 20_000;
/// Batches produced ahead of the oldest unacknowledged one: the producer keeps sending while the
/// relay waits for acknowledgements and saves positions. At most `BATCH * IN_FLIGHT` messages
/// (tens of MB while a backlog drains) wait in the producer's queue, which is sized for them
/// ([`KafkaBus::producer`]); the deeper the pipeline, the larger the broker's requests.
const IN_FLIGHT: usize = 8;
/// How long a lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(10);
/// How often a relay renews its lease while idle.
const RENEW: Duration = Duration::from_secs(3);

/// Why a batch was not published; the relay retries from its saved position.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the log or saving the position failed: retried.
    #[error("event store: {0}")]
    Store(#[from] EventStoreError),
    /// The producer could not be created: retried.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The broker did not acknowledge a message: the batch is produced again.
    #[error("kafka refused event at position {position}: {reason}")]
    Delivery { position: u64, reason: String },
    /// No loaded plugin names the event's topic: this host hands the lease over, since another
    /// host may have the plugin; the operator's to fix if none has.
    #[error(
        "event at position {position} belongs to aggregate type {aggregate_type:?}, which no loaded plugin declares"
    )]
    UnknownAggregate { position: u64, aggregate_type: String },
    /// A stored event's data is not JSON (appends check it): a bug or a corrupted store.
    #[error("event at position {position} is not JSON: {reason}")]
    Envelope { position: u64, reason: String },
}

/// The relay of one host.
pub struct Relay {
    store: Arc<dyn EventStore>,
    bus: KafkaBus,
    registry: PluginRegistry,
    owner: String,
    producer: Option<FutureProducer>,
    /// The saved position while this relay holds the lease.
    held: Option<u64>,
    /// The batch after a position, read ahead while an earlier one was acknowledged.
    prefetched: Option<(u64, Vec<StoredEvent>)>,
    /// Batches handed to the producer and not yet saved, oldest first.
    in_flight: VecDeque<InFlight>,
    /// The last position handed to the producer (ahead of `held` while batches are in flight).
    produced: Option<u64>,
    renewed: Instant,
}

impl Relay {
    /// A relay that claims the lease as `owner` (stable across restarts of one host).
    pub fn new(store: Arc<dyn EventStore>, bus: KafkaBus, registry: PluginRegistry, owner: String) -> Self {
        Self {
            store,
            bus,
            registry,
            owner,
            producer: None,
            held: None,
            prefetched: None,
            in_flight: VecDeque::new(),
            produced: None,
            renewed: Instant::now(),
        }
    }

    /// Publish until `stop` fires; woken early by `appended`.
    pub async fn run(mut self, mut appended: watch::Receiver<u64>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.publish_once().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(owner = %self.owner, "relay paused after an error, resuming from its saved position: {e}");
                    // A fatal producer error (e.g. a gap) makes the producer unusable.
                    self.producer = None;
                    let mut pause = Duration::from_secs(1);
                    if let RelayError::UnknownAggregate { position, .. } = e
                        && let Some(held) = self.held
                    {
                        // Another host may have the plugin: let it take the lease over.
                        let _ = self.store.save_relay_position(&self.owner, held.min(position), Duration::ZERO).await;
                        pause = RENEW * 2;
                    }
                    self.held = None;
                    self.reset();
                    tokio::time::sleep(pause).await;
                }
            }
            tokio::select! {
                _ = appended.changed() => {}
                _ = stop.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Forget what was produced but not saved: the next holder of the lease (maybe this relay)
    /// starts from the saved position.
    fn reset(&mut self) {
        self.in_flight.clear();
        self.produced = None;
        self.prefetched = None;
    }

    /// Produce the next batch if this relay holds the lease, and save the position of the oldest
    /// batch once the broker acknowledged it. Returns whether there was anything to do.
    pub async fn publish_once(&mut self) -> Result<bool, RelayError> {
        let held = match self.held {
            Some(position) if self.renewed.elapsed() < RENEW => position,
            _ => match self.store.claim_relay(&self.owner, LEASE).await? {
                Some(position) => {
                    if self.held.is_none() {
                        tracing::info!(owner = %self.owner, position, "relay holds the lease");
                        self.reset();
                    }
                    self.held = Some(position);
                    self.renewed = Instant::now();
                    position
                }
                None => {
                    self.held = None;
                    self.reset();
                    return Ok(false);
                }
            },
        };
        let from = self.produced.unwrap_or(held);
        let batch = match self.prefetched.take() {
            Some((after, batch)) if after == from => batch,
            _ => self.store.read_all(from, BATCH).await?,
        };
        let Some(last) = batch.last().map(|e| e.global_position) else {
            // The log is drained: wait for what is still in flight and save it.
            let had_any = !self.in_flight.is_empty();
            while let Some(oldest) = self.in_flight.pop_front() {
                if !self.settle(oldest).await? {
                    return Ok(false);
                }
            }
            return Ok(had_any);
        };
        let deliveries = self.produce(&batch)?;
        self.in_flight.push_back(InFlight { last, deliveries });
        self.produced = Some(last);
        if self.in_flight.len() < IN_FLIGHT {
            return Ok(true);
        }
        // The pipeline is full: settle the oldest batch while reading the next one.
        let Some(oldest) = self.in_flight.pop_front() else { return Ok(true) };
        let (acknowledged, next) = tokio::join!(acknowledge(oldest.deliveries), self.store.read_all(last, BATCH));
        acknowledged?;
        if let Ok(next) = next
            && !next.is_empty()
        {
            self.prefetched = Some((last, next));
        }
        self.save(oldest.last).await?;
        Ok(true)
    }

    /// Wait for a batch's acknowledgements, then save its position. False if the lease was lost.
    async fn settle(&mut self, batch: InFlight) -> Result<bool, RelayError> {
        acknowledge(batch.deliveries).await?;
        self.save(batch.last).await
    }

    /// Save `position` (acknowledged, with everything before it). False if the lease was lost.
    async fn save(&mut self, position: u64) -> Result<bool, RelayError> {
        if !self.store.save_relay_position(&self.owner, position, LEASE).await? {
            tracing::warn!(owner = %self.owner, "relay lost its lease to another host");
            self.held = None;
            self.reset();
            return Ok(false);
        }
        self.held = Some(position);
        self.renewed = Instant::now();
        Ok(true)
    }

    /// Hand a batch to the producer, in order.
    fn produce(&mut self, batch: &[StoredEvent]) -> Result<Vec<(u64, DeliveryFuture)>, RelayError> {
        let producer = match &self.producer {
            Some(producer) => producer,
            None => self.producer.insert(self.bus.producer()?),
        };
        // Topics by aggregate type, looked up once per batch.
        let mut topics: HashMap<&str, String> = HashMap::new();
        let mut deliveries = Vec::with_capacity(batch.len());
        for event in batch {
            let position = event.global_position;
            let topic = match topics.get(event.aggregate_type.as_str()) {
                Some(topic) => topic,
                None => {
                    let Some(aggregate) = self.registry.aggregate(&event.aggregate_type) else {
                        return Err(RelayError::UnknownAggregate {
                            position,
                            aggregate_type: event.aggregate_type.clone(),
                        });
                    };
                    topics.entry(&event.aggregate_type).or_insert(self.bus.topic(&aggregate.manifest().topic))
                }
            };
            let envelope = event
                .envelope()
                .and_then(|e| serde_json::to_vec(&e))
                .map_err(|e| RelayError::Envelope { position, reason: e.to_string() })?;
            let schema_version = event.schema_version.to_string();
            let position_text = position.to_string();
            let headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header { key: HEADER_EVENT_TYPE, value: Some(&event.event_type) })
                .insert(Header { key: HEADER_SCHEMA_VERSION, value: Some(&schema_version) })
                .insert(Header { key: HEADER_POSITION, value: Some(&position_text) });
            let record = FutureRecord::to(topic).key(&event.aggregate_id).payload(&envelope).headers(headers);
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| RelayError::Delivery { position, reason: e.to_string() })?;
            deliveries.push((position, delivery));
        }
        Ok(deliveries)
    }
}

/// A produced batch awaiting the broker's acknowledgements.
struct InFlight {
    last: u64,
    deliveries: Vec<(u64, DeliveryFuture)>,
}

async fn acknowledge(deliveries: Vec<(u64, DeliveryFuture)>) -> Result<(), RelayError> {
    for (position, delivery) in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(RelayError::Delivery { position, reason: e.to_string() }),
            Err(_) => return Err(RelayError::Delivery { position, reason: "the producer went away".into() }),
        }
    }
    Ok(())
}
