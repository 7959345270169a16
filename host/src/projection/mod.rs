//! Projections at run time: each plugin follows the event store's global log from its own
//! position, applies batches inside a read-store transaction that also advances the position
//! (so a replayed event never changes a row twice), dead-letters the event that keeps failing,
//! answers queries, and rebuilds into fresh tables while the old ones keep serving.
//!
//! The embedded bus is the event store's log itself: positions are committed in order, so
//! following `position > checkpoint` never skips an event. With Kafka, [`kafka`] feeds the same
//! apply step from the projection's consumer group, saving partition offsets instead.

pub mod kafka;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::capabilities::sql::SqlSession;
use crate::event_store::{EventStore, StoredEvent};
use crate::read_store::staging::Staging;
use crate::read_store::{Checkpoint, DeadLetter, OffsetAdvance, ReadStore, ReadStoreError};
use crate::runtime::PluginFault;
use crate::runtime::projection::{HandleFailure, QueryOutcome, WasmProjection};

/// Events read from the store per batch.
const BATCH: u32 = 500;
/// How long a read-your-writes query waits for its projection.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("no projection {0:?} is loaded")]
    Unknown(String),
    #[error(transparent)]
    ReadStore(#[from] ReadStoreError),
    #[error("event store: {0}")]
    EventStore(#[from] crate::event_store::EventStoreError),
    #[error(transparent)]
    Fault(#[from] PluginFault),
    #[error("projection {projection} is at position {at}, not yet at {wanted}")]
    Behind { projection: String, at: u64, wanted: u64 },
    #[error("host task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
}

/// What a batch's transaction records besides the rows, so that it is never applied twice.
pub(crate) enum Progress {
    /// Nothing: a rebuild saves its checkpoint once it is done.
    Untracked,
    /// The position in the event store's log.
    Checkpoint(Checkpoint),
    /// Bus offsets per partition.
    Offsets(kafka::BatchOffsets),
}

/// One transaction's share of a [`Progress`].
enum Step {
    None,
    Checkpoint(Checkpoint),
    Offsets(Vec<OffsetAdvance>),
}

impl Progress {
    /// After the whole batch.
    fn whole(&self) -> Step {
        match self {
            Self::Untracked => Step::None,
            Self::Checkpoint(c) => Step::Checkpoint(c.clone()),
            Self::Offsets(o) => Step::Offsets(o.advances.clone()),
        }
    }

    /// After `event` alone, when a batch is retried event by event.
    fn after(&self, event: &StoredEvent) -> Step {
        match self {
            Self::Untracked => Step::None,
            Self::Checkpoint(c) => Step::Checkpoint(Checkpoint { position: event.global_position, ..c.clone() }),
            Self::Offsets(o) => o.after(event).map_or(Step::None, |a| Step::Offsets(vec![a])),
        }
    }

    /// After the event-by-event retry: the rest of the batch, which carries no rows.
    fn rest(&self) -> Step {
        match self {
            Self::Untracked => Step::None,
            Self::Checkpoint(c) => Step::Checkpoint(c.clone()),
            Self::Offsets(o) => {
                Step::Offsets(o.advances.iter().map(|a| OffsetAdvance { fence: None, ..a.clone() }).collect())
            }
        }
    }
}

/// Where a batch's rows go.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// Into a read store, in its transaction.
    Store(&'a ReadStore),
    /// Into a rebuild's staging database; dead letters still go to `letters`, the target.
    Staged { staging: &'a Staging, letters: &'a ReadStore },
}

impl<'a> Rows<'a> {
    /// The store that keeps dead letters and progress.
    fn letters(self) -> &'a ReadStore {
        match self {
            Self::Store(store) | Self::Staged { letters: store, .. } => store,
        }
    }
}

/// One projection plugin and its progress through the log.
pub struct Projection {
    plugin: Arc<WasmProjection>,
    events: Arc<dyn EventStore>,
    read_store: ReadStore,
    /// The generation queries read and the position reached; held while a batch is applied.
    checkpoint: Mutex<Checkpoint>,
    /// The batch after a position, read while the previous batch was being applied.
    read_ahead: std::sync::Mutex<Option<(u64, Vec<StoredEvent>)>>,
    serving_generation: AtomicI64,
    position: watch::Sender<u64>,
}

impl Projection {
    /// Prepare the projection's tables (fresh ones when its schema version changed) and load its
    /// checkpoint.
    pub async fn open(
        plugin: Arc<WasmProjection>,
        events: Arc<dyn EventStore>,
        read_store: ReadStore,
    ) -> Result<Arc<Self>, ProjectionError> {
        let manifest = plugin.manifest();
        let checkpoint = match read_store.checkpoint(&manifest.name).await? {
            Some(c) if c.schema_version == manifest.schema_version => c,
            previous => {
                let generation = previous.as_ref().map_or(1, |c| c.generation + 1);
                read_store.create_tables(&manifest.schema, generation).await?;
                let checkpoint = Checkpoint { generation, position: 0, schema_version: manifest.schema_version };
                let mut tx = read_store.pool().begin().await.map_err(ReadStoreError::from)?;
                read_store.save_checkpoint(&mut tx, &manifest.name, &checkpoint).await?;
                // Fresh tables start from the log's beginning, not from old bus offsets.
                read_store.clear_offsets(&mut tx, &manifest.name).await?;
                tx.commit().await.map_err(ReadStoreError::from)?;
                if let Some(old) = previous {
                    tracing::info!(projection = %manifest.name, "schema version changed: rebuilding from the start");
                    read_store.drop_tables(&manifest.schema, old.generation).await?;
                }
                checkpoint
            }
        };
        let (position, _) = watch::channel(checkpoint.position);
        Ok(Arc::new(Self {
            serving_generation: AtomicI64::new(checkpoint.generation),
            plugin,
            events,
            read_store,
            checkpoint: Mutex::new(checkpoint),
            read_ahead: std::sync::Mutex::new(None),
            position,
        }))
    }

    pub fn name(&self) -> &str {
        &self.plugin.manifest().name
    }

    pub fn plugin(&self) -> &Arc<WasmProjection> {
        &self.plugin
    }

    /// The position the projection has committed.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Follow the log until `stop` fires; woken early by `appended`.
    pub async fn run(self: Arc<Self>, mut appended: watch::Receiver<u64>, mut stop: watch::Receiver<bool>) {
        while let Err(e) = self.leave_bus().await {
            tracing::warn!(projection = %self.name(), "cannot switch from the Kafka bus yet, retrying: {e}");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
        loop {
            if *stop.borrow() {
                return;
            }
            match self.catch_up_once().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(projection = %self.name(), "projection paused after an error, retrying: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            tokio::select! {
                _ = appended.changed() => {}
                _ = stop.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// If the projection was fed by Kafka, its rows may hold events past its position (the
    /// position only says that everything up to it is applied), so following the log from there
    /// could apply some twice: rebuild it from the event store, then forget the bus offsets.
    async fn leave_bus(&self) -> Result<(), ProjectionError> {
        if self.read_store.partition_offsets(self.name()).await?.is_empty() {
            return Ok(());
        }
        tracing::info!(projection = %self.name(), "was fed by the Kafka bus: rebuilding from the event store");
        self.rebuild(None, &|_, _| {}).await?;
        let mut tx = self.read_store.pool().begin().await.map_err(ReadStoreError::from)?;
        self.read_store.clear_offsets(&mut tx, self.name()).await?;
        tx.commit().await.map_err(ReadStoreError::from)?;
        Ok(())
    }

    /// Apply the next batch, if any. Returns whether there was one.
    pub async fn catch_up_once(&self) -> Result<bool, ProjectionError> {
        let mut checkpoint = self.checkpoint.lock().await;
        let read_ahead = self.read_ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let batch = match read_ahead {
            Some((after, batch)) if after == checkpoint.position => batch,
            _ => self.events.read_all(checkpoint.position, BATCH).await?,
        };
        let Some(last) = batch.last().map(|e| e.global_position) else { return Ok(false) };
        let generation = checkpoint.generation;
        let next = Checkpoint { position: last, ..checkpoint.clone() };
        let progress = Progress::Checkpoint(next.clone());
        let applied = self.apply(Rows::Store(&self.read_store), generation, &batch, &progress);
        if batch.len() < BATCH as usize {
            applied.await?;
        } else {
            // Catching up: read the next batch while this one is written. A batch read now is a
            // prefix of what follows `last`, as positions commit in order.
            let (applied, following) = tokio::join!(applied, self.events.read_all(last, BATCH));
            applied?;
            if let Ok(following) = following
                && !following.is_empty()
            {
                *self.read_ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((last, following));
            }
        }
        *checkpoint = next;
        self.position.send_replace(last);
        Ok(true)
    }

    /// Apply `batch` to the tables of `generation` in `store`, then write its `progress` in the
    /// same transaction. A batch the plugin refuses is retried event by event, and an event that
    /// still fails is dead-lettered with the reason.
    async fn apply(
        &self,
        rows: Rows<'_>,
        generation: i64,
        batch: &[StoredEvent],
        progress: &Progress,
    ) -> Result<(), ProjectionError> {
        let store = rows.letters();
        let subscribed: Vec<StoredEvent> =
            batch.iter().filter(|e| self.plugin.manifest().subscriptions.contains(&e.event_type)).cloned().collect();
        match self.handle_in_tx(rows, generation, &subscribed, &progress.whole()).await? {
            Ok(()) => return Ok(()),
            Err(HandleFailure::Backend(failure)) => return Err(ReadStoreError::Backend(failure).into()),
            Err(failure) => {
                tracing::warn!(projection = %self.name(), "batch failed, retrying event by event: {failure}");
            }
        }
        for event in &subscribed {
            let one = std::slice::from_ref(event);
            let step = progress.after(event);
            match self.handle_in_tx(rows, generation, one, &step).await? {
                Ok(()) => {}
                Err(HandleFailure::Backend(failure)) => return Err(ReadStoreError::Backend(failure).into()),
                Err(failure) => {
                    tracing::error!(projection = %self.name(), position = event.global_position, "event dead-lettered: {failure}");
                    let letter = DeadLetter {
                        projection: self.name().to_owned(),
                        position: event.global_position,
                        event_type: event.event_type.clone(),
                        aggregate_id: event.aggregate_id.clone(),
                        reason: failure.to_string(),
                        recorded_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    };
                    let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
                    store.add_dead_letter(&mut tx, &letter).await?;
                    self.save_step(store, &mut tx, &step).await?;
                    tx.commit().await.map_err(ReadStoreError::from)?;
                }
            }
        }
        let rest = progress.rest();
        if !matches!(rest, Step::None) {
            let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
            self.save_step(store, &mut tx, &rest).await?;
            tx.commit().await.map_err(ReadStoreError::from)?;
        }
        Ok(())
    }

    /// Write a step of progress inside `tx`.
    async fn save_step(
        &self,
        store: &ReadStore,
        tx: &mut sqlx::AnyConnection,
        step: &Step,
    ) -> Result<(), ProjectionError> {
        match step {
            Step::None => {}
            Step::Checkpoint(checkpoint) => store.save_checkpoint(tx, self.name(), checkpoint).await?,
            Step::Offsets(advances) => {
                for advance in advances {
                    store.save_offset(tx, self.name(), advance).await?;
                }
            }
        }
        Ok(())
    }

    /// One transaction: the plugin's writes for `events`, then the progress step; committed only
    /// if the plugin succeeded.
    async fn handle_in_tx(
        &self,
        rows: Rows<'_>,
        generation: i64,
        events: &[StoredEvent],
        step: &Step,
    ) -> Result<Result<(), HandleFailure>, ProjectionError> {
        let store = match rows {
            Rows::Store(store) => store,
            Rows::Staged { staging, .. } => return self.handle_staged(staging, events).await,
        };
        let tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        let schema = Arc::new(self.plugin.manifest().schema.clone());
        let session = SqlSession::write(store, schema, generation, tx);
        let (session, outcome) = if events.is_empty() {
            (session, Ok(()))
        } else {
            let plugin = self.plugin.clone();
            let events = events.to_vec();
            tokio::task::spawn_blocking(move || plugin.handle(session, &events))
                .await
                .map_err(|e| ProjectionError::Task(e.to_string()))?
        };
        let Some(mut tx) = session.into_transaction() else {
            return Err(ProjectionError::Task("a write session lost its transaction".into()));
        };
        if outcome.is_err() {
            tx.rollback().await.map_err(ReadStoreError::from)?;
            return Ok(outcome);
        }
        if let Err(e) = self.save_step(store, &mut tx, step).await {
            tx.rollback().await.map_err(ReadStoreError::from)?;
            return Err(e);
        }
        tx.commit().await.map_err(ReadStoreError::from)?;
        Ok(Ok(()))
    }

    /// [`Self::handle_in_tx`] on a staging database: the whole call runs on a blocking thread,
    /// since every statement is a direct SQLite call.
    async fn handle_staged(
        &self,
        staging: &Staging,
        events: &[StoredEvent],
    ) -> Result<Result<(), HandleFailure>, ProjectionError> {
        if events.is_empty() {
            return Ok(Ok(()));
        }
        let conn = staging.take()?;
        let (schema, generation) = (staging.schema().clone(), staging.generation());
        let plugin = self.plugin.clone();
        let events = events.to_vec();
        let (conn, outcome) = tokio::task::spawn_blocking(move || {
            let backend = |e: rusqlite::Error| HandleFailure::Backend(format!("staging database: {e}"));
            if let Err(e) = conn.execute_batch("BEGIN") {
                return (Some(conn), Err(backend(e)));
            }
            let (session, outcome) = plugin.handle(SqlSession::staging(schema, generation, conn), &events);
            let Some(conn) = session.into_staging() else {
                return (None, Err(HandleFailure::Backend("a staging session lost its connection".into())));
            };
            let end = if outcome.is_ok() { "COMMIT" } else { "ROLLBACK" };
            match conn.execute_batch(end) {
                Ok(()) => (Some(conn), outcome),
                Err(e) => (Some(conn), Err(backend(e))),
            }
        })
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
        if let Some(conn) = conn {
            staging.give_back(conn);
        }
        Ok(outcome)
    }

    /// Answer a query; with `min_position`, first wait (bounded) until the projection has
    /// applied that global position.
    pub async fn query(
        &self,
        name: &str,
        params: Vec<(String, String)>,
        min_position: Option<u64>,
    ) -> Result<QueryOutcome, ProjectionError> {
        if let Some(wanted) = min_position {
            let mut position = self.position.subscribe();
            let reached = tokio::time::timeout(READ_YOUR_WRITES_WAIT, position.wait_for(|p| *p >= wanted)).await;
            if !matches!(reached, Ok(Ok(_))) {
                return Err(ProjectionError::Behind {
                    projection: self.name().to_owned(),
                    at: self.position(),
                    wanted,
                });
            }
        }
        let generation = self.serving_generation.load(Ordering::Acquire);
        let schema = Arc::new(self.plugin.manifest().schema.clone());
        let session = SqlSession::read(&self.read_store, schema, generation);
        let plugin = self.plugin.clone();
        let name = name.to_owned();
        let outcome = tokio::task::spawn_blocking(move || plugin.query(session, &name, &params))
            .await
            .map_err(|e| ProjectionError::Task(e.to_string()))??;
        Ok(outcome)
    }

    /// Rebuild from the whole event store into fresh tables of `target` (the serving read store
    /// when `None`), reporting progress as (events done, events in the store). Queries keep
    /// reading the old tables until the switch; the live follower pauses only for the final
    /// catch-up and the switch itself.
    pub async fn rebuild(
        &self,
        target: Option<&ReadStore>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, ProjectionError> {
        let in_place = target.is_none();
        let store = target.unwrap_or(&self.read_store);
        let schema = &self.plugin.manifest().schema;
        let generation = if in_place {
            self.checkpoint.lock().await.generation + 1
        } else {
            store.checkpoint(self.name()).await?.map_or(1, |c| c.generation + 1)
        };
        store.create_tables(schema, generation).await?;
        let head = self.head_position().await?;
        let mut position = 0;
        if Staging::suits(store.dialect()) {
            let staging = Staging::open(Arc::new(schema.clone()), generation)?;
            position =
                self.replay(Rows::Staged { staging: &staging, letters: store }, generation, 0, head, progress).await?;
            staging.load_into(store).await?;
        }
        // What the staging pass did not see (or all of it, unstaged) goes straight to the target,
        // still without holding up the live follower.
        position = self.replay(Rows::Store(store), generation, position, head, progress).await?;
        let checkpoint = Checkpoint { generation, position, schema_version: self.plugin.manifest().schema_version };
        if !in_place {
            let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
            store.save_checkpoint(&mut tx, self.name(), &checkpoint).await?;
            tx.commit().await.map_err(ReadStoreError::from)?;
            return Ok(position);
        }
        // The switch: no batch runs on the old tables meanwhile.
        let mut serving = self.checkpoint.lock().await;
        let mut checkpoint = checkpoint;
        loop {
            let batch = self.events.read_all(checkpoint.position, BATCH * 4).await?;
            let Some(last) = batch.last().map(|e| e.global_position) else { break };
            self.apply(Rows::Store(store), generation, &batch, &Progress::Untracked).await?;
            checkpoint.position = last;
        }
        let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        store.save_checkpoint(&mut tx, self.name(), &checkpoint).await?;
        tx.commit().await.map_err(ReadStoreError::from)?;
        let old_generation = serving.generation;
        *serving = checkpoint.clone();
        self.serving_generation.store(generation, Ordering::Release);
        self.position.send_replace(checkpoint.position.max(self.position()));
        drop(serving);
        // Queries that started on the old tables finish within their own time limit.
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.drop_tables(schema, old_generation).await?;
        progress(checkpoint.position, checkpoint.position);
        Ok(checkpoint.position)
    }

    /// Apply the log after `from` to `rows` untracked, reading the next batch while the plugin
    /// handles this one. Returns the last position applied.
    async fn replay(
        &self,
        rows: Rows<'_>,
        generation: i64,
        from: u64,
        head: u64,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, ProjectionError> {
        let (sender, mut batches) = tokio::sync::mpsc::channel(2);
        let events = self.events.clone();
        // Ends by itself at the end of the log, on an error, or when this function stops listening.
        tokio::spawn(async move {
            let mut after = from;
            loop {
                let batch = events.read_all(after, BATCH * 4).await;
                let next = match &batch {
                    Ok(b) => b.last().map(|e| e.global_position),
                    Err(_) => None,
                };
                if matches!(&batch, Ok(b) if b.is_empty()) || sender.send(batch).await.is_err() {
                    return;
                }
                match next {
                    Some(last) => after = last,
                    None => return,
                }
            }
        });
        let mut position = from;
        while let Some(batch) = batches.recv().await {
            let batch = batch?;
            let Some(last) = batch.last().map(|e| e.global_position) else { break };
            self.apply(rows, generation, &batch, &Progress::Untracked).await?;
            position = last;
            progress(position, head.max(position));
        }
        Ok(position)
    }

    async fn head_position(&self) -> Result<u64, ProjectionError> {
        Ok(self.events.head_position().await?)
    }

    /// Dead letters of this projection.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, ProjectionError> {
        Ok(self.read_store.dead_letters(Some(self.name())).await?)
    }
}

/// All running projections, by name.
#[derive(Clone, Default)]
pub struct Projections {
    by_name: Arc<std::sync::RwLock<HashMap<String, Arc<Projection>>>>,
}

impl Projections {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, projection: Arc<Projection>) {
        self.by_name
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(projection.name().to_owned(), projection);
    }

    pub fn get(&self, name: &str) -> Result<Arc<Projection>, ProjectionError> {
        self.by_name
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
    }

    /// Every projection, by name.
    pub fn all(&self) -> Vec<Arc<Projection>> {
        let mut all: Vec<_> =
            self.by_name.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }
}
