//! Projections fed by Kafka: each projection consumes the topics of the aggregates it
//! subscribes to through its own consumer group (`sluice.projection.<name>`).
//!
//! The read store, not Kafka, holds the truth about what was applied: each batch's rows and its
//! per-partition offsets (`sluice_offsets`) commit in one transaction. A message below the
//! stored offset is a redelivery and is skipped; an event at or below the partition's highest
//! applied global position is a relay repeat and is skipped too (the relay publishes in log
//! order, so a repeat always follows its original in the partition). Offsets are committed to
//! Kafka afterwards only as a hint where a restarted consumer may start.
//!
//! The projection's position (what read-your-writes waits on) is the highest global position P
//! such that every event up to P has been applied: the relay's saved position R is acknowledged
//! by the broker, so once the stored offsets reach the high watermarks read after R, every
//! event up to R is applied.
//!
//! A projection without stored offsets (first start, or fresh tables) first catches up from the
//! event store directly, then skips every message at or below that position.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::apply::{Progress, Rows};
use super::{BATCH, Projection, ProjectionError};
use crate::bus::{BusError, KafkaBus};
use crate::event_store::StoredEvent;
use crate::read_store::{Checkpoint, OffsetAdvance, ReadStoreError};

/// Where each event of a batch came from, and how far the batch moves each partition.
pub(crate) struct BatchOffsets {
    pub(crate) advances: Vec<OffsetAdvance>,
    /// By global position: topic, partition, offset.
    at: HashMap<u64, (String, i32, i64)>,
}

impl BatchOffsets {
    /// The step that covers `event`'s message alone.
    pub(crate) fn after(&self, event: &StoredEvent) -> Option<OffsetAdvance> {
        let (topic, partition, offset) = self.at.get(&event.global_position)?;
        Some(OffsetAdvance {
            topic: topic.clone(),
            partition: *partition,
            fence: Some(*offset),
            next_offset: offset + 1,
            last_position: event.global_position,
        })
    }
}

/// Notes that the group's assignment changed, so the stored offsets are read again.
#[derive(Default)]
struct Rebalances {
    changed: AtomicBool,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        self.changed.store(true, Ordering::SeqCst);
    }
}

/// A topic and partition.
type PartitionKey = (String, i32);
/// Per partition: the next offset to apply and the highest global position applied.
type States = HashMap<PartitionKey, (i64, u64)>;
/// Per partition: the offset the next message will get (the high watermark).
type Ends = Vec<(PartitionKey, i64)>;

impl Projection {
    /// Consume `topics` as group member `{host_id}.{projection}` until `stop` fires; a consumer
    /// that fails is dropped and a new one joins.
    pub async fn run_kafka(
        self: Arc<Self>,
        bus: KafkaBus,
        topics: Vec<String>,
        host_id: String,
        stop: CancellationToken,
    ) {
        if topics.is_empty() {
            // The consumer is restarted when an aggregate arrives.
            tracing::info!(projection = %self.name(), "no aggregate is loaded yet, so there is no topic to consume");
            stop.cancelled().await;
            return;
        }
        tokio::spawn(self.clone().follow_position(bus.clone(), topics.clone(), stop.child_token()));
        loop {
            if stop.is_cancelled() {
                return;
            }
            if self.is_paused() {
                // Out of the group while paused: the partitions wait at the stored offsets.
                tokio::select! {
                    () = self.until_resumed() => {}
                    () = stop.cancelled() => return,
                }
            }
            match self.consume(&bus, &topics, &host_id, &stop).await {
                Ok(()) => return,
                Err(ProjectionError::Paused(_)) => {}
                Err(e) => {
                    tracing::warn!(projection = %self.name(), "consumer stopped after an error, rejoining: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Without stored offsets (first start, or fresh tables), catch up from the event store
    /// directly; the consumer then skips every message at or below that position. Once per
    /// runner, before its consumer joins the group (the host runs it before it says it is
    /// ready): a later pass could apply events that another host's consumer is applying from the
    /// bus at the same time, since the two write no common row.
    pub async fn catch_up_if_fresh(&self) -> Result<(), ProjectionError> {
        use std::sync::atomic::Ordering;
        // Paused by its dead letters (a pause kept from before a restart): nothing is applied
        // until an operator resumes it; the consumer catches up then.
        if self.caught_up_from_log.load(Ordering::SeqCst) || self.is_paused() {
            return Ok(());
        }
        if self.read_store.partition_offsets(self.name()).await?.is_empty() {
            while self.catch_up_once().await? {}
        }
        self.caught_up_from_log.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn consume(
        &self,
        bus: &KafkaBus,
        topics: &[String],
        host_id: &str,
        stop: &CancellationToken,
    ) -> Result<(), ProjectionError> {
        self.catch_up_if_fresh().await?;
        let member = format!("{host_id}.{}", self.name());
        let consumer = bus.consumer(&bus.projection_group(self.name()), &member, Rebalances::default())?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(BusError::from)?;
        let mut states = States::new();
        let mut loaded = false;
        loop {
            let first = tokio::select! {
                message = consumer.recv() => message.map_err(BusError::from)?.detach(),
                () = stop.cancelled() => return Ok(()),
            };
            let mut messages = vec![first];
            while messages.len() < BATCH as usize {
                match tokio::time::timeout(Duration::from_millis(10), consumer.recv()).await {
                    Ok(message) => messages.push(message.map_err(BusError::from)?.detach()),
                    Err(_) => break,
                }
            }
            if consumer.context().changed.swap(false, Ordering::SeqCst) || !loaded {
                // The partitions may come from another host: take up what it left in the read
                // store (letters retried or dropped there, a pause or a resume).
                if self.reload_pause().await? {
                    return Err(ProjectionError::Paused(self.name().to_owned()));
                }
                self.reload_held().await?;
                states = self
                    .read_store
                    .partition_offsets(self.name())
                    .await?
                    .into_iter()
                    .map(|o| ((o.topic, o.partition), (o.next_offset, o.last_position)))
                    .collect();
                loaded = true;
            }
            let advanced = self.apply_messages(&messages, &mut states).await?;
            // Only a hint for where a restarted consumer starts; the read store is the truth.
            let mut hint = TopicPartitionList::new();
            for advance in &advanced {
                let offset = Offset::Offset(advance.next_offset);
                if hint.add_partition_offset(&advance.topic, advance.partition, offset).is_err() {
                    continue;
                }
            }
            if hint.count() > 0
                && let Err(e) = consumer.commit(&hint, CommitMode::Async)
            {
                tracing::debug!(projection = %self.name(), "offset hint not committed: {e}");
            }
        }
    }

    /// Apply what is new in `messages` with their offsets, in one transaction per batch.
    async fn apply_messages(
        &self,
        messages: &[OwnedMessage],
        states: &mut States,
    ) -> Result<Vec<OffsetAdvance>, ProjectionError> {
        let checkpoint = self.checkpoint.lock().await;
        let floor = checkpoint.position;
        let generation = checkpoint.generation;
        let mut advances: BTreeMap<(String, i32), OffsetAdvance> = BTreeMap::new();
        let mut at = HashMap::new();
        let mut events = Vec::new();
        for message in messages {
            let key = (message.topic().to_owned(), message.partition());
            let (next, last) = states.get(&key).copied().unwrap_or((0, 0));
            let advance = advances.entry(key).or_insert_with(|| OffsetAdvance {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                fence: Some(next),
                next_offset: next,
                last_position: last,
            });
            if message.offset() < advance.next_offset {
                continue;
            }
            advance.next_offset = message.offset() + 1;
            match message.payload().map(StoredEvent::from_envelope) {
                Some(Ok(event)) if event.global_position > advance.last_position.max(floor) => {
                    advance.last_position = event.global_position;
                    at.insert(
                        event.global_position,
                        (message.topic().to_owned(), message.partition(), message.offset()),
                    );
                    events.push(event);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(
                    projection = %self.name(), topic = message.topic(), partition = message.partition(),
                    offset = message.offset(), "skipped a message that is not an event envelope: {e}"
                ),
                None => tracing::warn!(
                    projection = %self.name(), topic = message.topic(), partition = message.partition(),
                    offset = message.offset(), "skipped a message without a value"
                ),
            }
        }
        let advances: Vec<OffsetAdvance> = advances.into_values().collect();
        let progress = Progress::Offsets(BatchOffsets { advances: advances.clone(), at });
        let plugin = self.plugin();
        self.apply(&plugin, Rows::Store(&self.read_store), generation, &events, &progress).await?;
        if !events.is_empty() {
            self.note_commit(&plugin);
        }
        drop(checkpoint);
        for advance in &advances {
            states.insert((advance.topic.clone(), advance.partition), (advance.next_offset, advance.last_position));
        }
        Ok(advances)
    }

    /// Keep the position watch at the highest global position known to be applied.
    async fn follow_position(self: Arc<Self>, bus: KafkaBus, topics: Vec<String>, stop: CancellationToken) {
        let observer = match bus.observer() {
            Ok(observer) => Arc::new(observer),
            Err(e) => {
                tracing::error!(projection = %self.name(), "cannot watch partition ends; positions stay put: {e}");
                return;
            }
        };
        // Relay positions, each with the partition ends read after it, oldest first.
        let mut pending: VecDeque<(u64, Ends)> = VecDeque::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = stop.cancelled() => return,
            }
            if let Err(e) = self.advance_position(&observer, &topics, &mut pending).await {
                tracing::debug!(projection = %self.name(), "position not advanced: {e}");
            }
        }
    }

    async fn advance_position(
        &self,
        observer: &Arc<BaseConsumer>,
        topics: &[String],
        pending: &mut VecDeque<(u64, Ends)>,
    ) -> Result<(), ProjectionError> {
        let relayed = self.events.relay_position().await?;
        if relayed > self.position() && pending.back().is_none_or(|(r, _)| *r < relayed) {
            let observer = observer.clone();
            let topics = topics.to_vec();
            let ends = tokio::task::spawn_blocking(move || partition_ends(&observer, &topics))
                .await
                .map_err(|e| ProjectionError::Task(e.to_string()))??;
            pending.push_back((relayed, ends));
            if pending.len() > 256 {
                pending.pop_front();
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let stored: HashMap<(String, i32), i64> = self
            .read_store
            .partition_offsets(self.name())
            .await?
            .into_iter()
            .map(|o| ((o.topic, o.partition), o.next_offset))
            .collect();
        let mut reached = None;
        while let Some((relayed, ends)) = pending.front() {
            if !ends.iter().all(|(key, end)| stored.get(key).copied().unwrap_or(0) >= *end) {
                break;
            }
            reached = Some(*relayed);
            pending.pop_front();
        }
        if let Some(position) = reached {
            let mut checkpoint = self.checkpoint.lock().await;
            if position > checkpoint.position {
                let next = Checkpoint { position, ..checkpoint.clone() };
                let mut tx = self.read_store.pool().begin().await.map_err(ReadStoreError::from)?;
                self.read_store.save_checkpoint(&mut tx, self.name(), &next).await?;
                tx.commit().await.map_err(ReadStoreError::from)?;
                *checkpoint = next;
                self.position.send_replace(position);
            }
        }
        Ok(())
    }
}

/// The high watermark (next offset to be written) of every partition of `topics`.
fn partition_ends(observer: &BaseConsumer, topics: &[String]) -> Result<Ends, BusError> {
    let timeout = Duration::from_secs(5);
    let mut ends = Vec::new();
    for topic in topics {
        let metadata = observer.fetch_metadata(Some(topic), timeout)?;
        for found in metadata.topics() {
            for partition in found.partitions() {
                let (_, high) = observer.fetch_watermarks(topic, partition.id(), timeout)?;
                ends.push(((topic.clone(), partition.id()), high));
            }
        }
    }
    Ok(ends)
}
