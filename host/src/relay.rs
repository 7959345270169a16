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
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bus::kafka::{HEADER_EVENT_TYPE, HEADER_POSITION, HEADER_SCHEMA_VERSION};
use crate::bus::{BusError, KafkaBus};
use crate::event_store::{EventStore, EventStoreError, StoredEvent};
use crate::plugin::PluginRegistry;

/// Events read and produced per batch.
const BATCH: u32 = 20_000;
/// The first batch after a start: the producer starts sending sooner, then batches grow to
/// [`BATCH`].
const FIRST_BATCH: u32 = 500;
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
    /// The task preparing the messages after `position` failed: a bug.
    #[error("preparing the messages after position {position} failed: {reason}")]
    Prepare { position: u64, reason: String },
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
    /// Batches read and prepared ahead of the producer.
    reader: Option<mpsc::Receiver<Result<Prepared, RelayError>>>,
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
            reader: None,
            in_flight: VecDeque::new(),
            produced: None,
            renewed: Instant::now(),
        }
    }

    /// Create the producer now rather than at the first event, so that it has connected to the
    /// broker (and, being idempotent, obtained its producer id) before there is anything to send.
    pub fn connect(&mut self) -> Result<(), RelayError> {
        if self.producer.is_none() {
            self.producer = Some(self.bus.producer()?);
        }
        Ok(())
    }

    /// Publish until `stop` fires; woken early by `appended`.
    pub async fn run(mut self, mut appended: watch::Receiver<u64>, stop: CancellationToken) {
        if let Err(e) = self.connect() {
            tracing::warn!(owner = %self.owner, "relay cannot create its producer yet (retried at the first event): {e}");
        }
        loop {
            if stop.is_cancelled() {
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
                () = stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Forget what was produced but not saved: the next holder of the lease (maybe this relay)
    /// starts from the saved position.
    fn reset(&mut self) {
        self.in_flight.clear();
        self.produced = None;
        // Its task ends at its next send.
        self.reader = None;
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
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => self.reader.insert(read_ahead(self.store.clone(), self.registry.clone(), self.bus.clone(), from)),
        };
        let Some(prepared) = reader.recv().await else {
            // The log is drained: wait for what is still in flight and save it.
            self.reader = None;
            // One save covers every batch acknowledged (a save costs a durable write); on a
            // refused delivery, what was acknowledged before it is still saved.
            let mut acknowledged = None;
            let mut refused = None;
            while let Some(oldest) = self.in_flight.pop_front() {
                if let Err(e) = acknowledge(oldest.deliveries).await {
                    refused = Some(e);
                    break;
                }
                acknowledged = Some(oldest.last);
            }
            if let Some(last) = acknowledged
                && !self.save(last).await?
            {
                return Ok(false);
            }
            return match refused {
                Some(e) => Err(e),
                None => Ok(acknowledged.is_some()),
            };
        };
        let prepared = prepared?;
        let deliveries = self.produce(&prepared.messages)?;
        self.in_flight.push_back(InFlight { last: prepared.last, deliveries });
        self.produced = Some(prepared.last);
        if self.in_flight.len() >= IN_FLIGHT
            && let Some(oldest) = self.in_flight.pop_front()
        {
            // The pipeline is full: settle the oldest batch (the reader prepares the next ones).
            acknowledge(oldest.deliveries).await?;
            self.save(oldest.last).await?;
        }
        Ok(true)
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
        crate::telemetry::relayed(position);
        Ok(true)
    }

    /// Hand prepared messages to the producer, in order.
    fn produce(&mut self, messages: &[Outgoing]) -> Result<Vec<(u64, DeliveryFuture)>, RelayError> {
        let producer = match &self.producer {
            Some(producer) => producer,
            None => self.producer.insert(self.bus.producer()?),
        };
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            let headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header { key: HEADER_EVENT_TYPE, value: Some(&message.event_type) })
                .insert(Header { key: HEADER_SCHEMA_VERSION, value: Some(&message.schema_version) })
                .insert(Header { key: HEADER_POSITION, value: Some(&message.position_text) });
            let record = FutureRecord::to(&message.topic).key(&message.key).payload(&message.payload).headers(headers);
            let position = message.position;
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| RelayError::Delivery { position, reason: e.to_string() })?;
            deliveries.push((position, delivery));
        }
        Ok(deliveries)
    }
}

/// A batch of the log turned into messages.
struct Prepared {
    last: u64,
    messages: Vec<Outgoing>,
}

/// One event as the message the relay produces.
struct Outgoing {
    position: u64,
    topic: Arc<str>,
    key: String,
    payload: Vec<u8>,
    event_type: String,
    schema_version: String,
    position_text: String,
}

/// Read the log after `from` and prepare its messages on other threads, a couple of batches
/// ahead of the producer; the task ends at the end of the log, after an error, or once the
/// receiver is dropped.
fn read_ahead(
    store: Arc<dyn EventStore>,
    registry: PluginRegistry,
    bus: KafkaBus,
    from: u64,
) -> mpsc::Receiver<Result<Prepared, RelayError>> {
    let (sender, receiver) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut after = from;
        // Small first batches get the producer going while the larger ones are read.
        let mut size = FIRST_BATCH;
        loop {
            let batch = match store.read_all(after, size).await {
                Ok(batch) if batch.is_empty() => return,
                Ok(batch) => batch,
                Err(e) => {
                    let _ = sender.send(Err(e.into())).await;
                    return;
                }
            };
            let (registry, bus) = (registry.clone(), bus.clone());
            let prepared = tokio::task::spawn_blocking(move || prepare(batch, &registry, &bus))
                .await
                .unwrap_or_else(|e| Err(RelayError::Prepare { position: after, reason: e.to_string() }));
            let next = prepared.as_ref().ok().map(|p| p.last);
            if sender.send(prepared).await.is_err() {
                return;
            }
            match next {
                Some(last) => after = last,
                None => return,
            }
            size = (size * 4).min(BATCH);
        }
    });
    receiver
}

/// Turn events into messages.
fn prepare(batch: Vec<StoredEvent>, registry: &PluginRegistry, bus: &KafkaBus) -> Result<Prepared, RelayError> {
    let last = batch.last().map_or(0, |e| e.global_position);
    // Topics by aggregate type, looked up once per batch.
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut messages = Vec::with_capacity(batch.len());
    for event in batch {
        let position = event.global_position;
        let topic = match topics.get(&event.aggregate_type) {
            Some(topic) => topic.clone(),
            None => {
                let Some(aggregate) = registry.aggregate(&event.aggregate_type) else {
                    return Err(RelayError::UnknownAggregate { position, aggregate_type: event.aggregate_type });
                };
                let topic: Arc<str> = bus.topic(&aggregate.manifest().topic).into();
                topics.insert(event.aggregate_type.clone(), topic.clone());
                topic
            }
        };
        let mut payload = Vec::with_capacity(160 + event.data.len());
        event.write_envelope(&mut payload);
        messages.push(Outgoing {
            position,
            topic,
            payload,
            schema_version: event.schema_version.to_string(),
            position_text: position.to_string(),
            key: event.aggregate_id,
            event_type: event.event_type,
        });
    }
    Ok(Prepared { last, messages })
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
