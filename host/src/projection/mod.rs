//! Projections at run time: each plugin follows the event store's global log from its own
//! position, applies batches inside a read-store transaction that also advances the position
//! (so a replayed event never changes a row twice), dead-letters the event that keeps failing,
//! answers queries, and rebuilds into fresh tables while the old ones keep serving.
//!
//! A [`Projection`] is the runner of one projection: it holds the plugin version that serves
//! it, so a new version can be swapped in between two batches ([`Projection::replace`]), or
//! built into fresh tables while the old one serves ([`Projection::upgrade`]).
//!
//! - [`apply`]: the one chokepoint — a batch goes through the plugin into rows, progress and
//!   dead letters, in one transaction.
//! - [`letters`]: dead letters — bounded attempts with backoff, parking, holding back an
//!   aggregate's later events, retry, drop, pause and resume.
//! - [`follow`]: the embedded bus: the event store's log itself. Positions are committed in
//!   order, so following `position > checkpoint` never skips an event.
//! - [`kafka`]: the same apply step fed by the projection's consumer group, saving partition
//!   offsets instead.
//! - [`query`]: answers, with read-your-writes.
//! - [`rebuild`]: rebuilds and version upgrades into fresh tables, and the switch.

pub mod apply;
pub mod follow;
pub mod kafka;
pub mod letters;
pub mod query;
pub mod rebuild;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::event_store::{EventStore, StoredEvent};
use crate::plugin::{PluginFault, ProjectionLogic, Upcaster};
use crate::read_store::{Checkpoint, Letter, LetterState, ReadStore, ReadStoreError};
use letters::{DeadLetterPolicy, Held};

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
    /// The consumer holds more dead letters than its limit: it waits for an operator.
    #[error("projection {0} is paused by its dead letters until an operator resumes it")]
    Paused(String),
    /// A rebuild of a consumer whose effects leave the host (a reactor): the operator's fault.
    #[error("{0} is a reactor: it never replays (reset its position to send again)")]
    NotReplayable(String),
}

/// The plugin version that serves a projection and the generation of tables it serves from:
/// one value, so a query never pairs a plugin with another version's tables.
#[derive(Clone)]
pub struct Serving {
    pub plugin: Arc<dyn ProjectionLogic>,
    pub generation: i64,
}

/// One projection and its progress through the log: the runner that holds its plugin.
pub struct Projection {
    name: String,
    serving: RwLock<Serving>,
    events: Arc<dyn EventStore>,
    read_store: ReadStore,
    /// The generation batches write to and the position reached; held while a batch is applied,
    /// so whatever takes it next (a swap, a switch) sits at a committed batch boundary.
    checkpoint: Mutex<Checkpoint>,
    /// The batch after a position, read while the previous batch was being applied.
    read_ahead: std::sync::Mutex<Option<(u64, Vec<StoredEvent>)>>,
    position: watch::Sender<u64>,
    commits: std::sync::Mutex<Commits>,
    policy: DeadLetterPolicy,
    /// What the consumer holds back in its read store (parked aggregates, letter positions).
    held: std::sync::Mutex<Held>,
    /// The first batch after a start goes event by event with attempts counted: the last
    /// process may have died inside it.
    careful: std::sync::atomic::AtomicBool,
    /// Paused by its dead letters (remembered in the read store, where every host sees it).
    paused: watch::Sender<bool>,
    /// An operator resumed it: the event it paused at may park.
    resumed: std::sync::atomic::AtomicBool,
    /// This runner has caught up from the log once (on a bus): it never does again, since by
    /// then another host's consumer may be applying the same events from the bus.
    caught_up_from_log: std::sync::atomic::AtomicBool,
    /// Plugin versions (by pointer) and their sha256, for the letters.
    versions: std::sync::Mutex<Vec<(usize, String)>>,
    /// Brings old events to their current shape before the plugin sees them.
    upcaster: Upcaster,
}

/// When the live consumer last committed and with which plugin version: what a swap's pause
/// (the old version's last commit to the new version's first) is measured from.
#[derive(Default)]
struct Commits {
    last: Option<(std::time::Instant, usize)>,
    pauses: std::collections::VecDeque<Duration>,
}

/// Swap pauses kept for the admin listing.
const PAUSES_KEPT: usize = 64;

impl Projection {
    /// Prepare the projection's tables (fresh ones when its schema version changed) and load its
    /// checkpoint. Events reach the plugin as stored: see [`Self::open_with`].
    pub async fn open(
        plugin: Arc<dyn ProjectionLogic>,
        events: Arc<dyn EventStore>,
        read_store: ReadStore,
        policy: DeadLetterPolicy,
    ) -> Result<Arc<Self>, ProjectionError> {
        Self::open_with(plugin, events, read_store, policy, Upcaster::none()).await
    }

    /// [`Self::open`], with every batch brought to its current shape by `upcaster` first.
    pub async fn open_with(
        plugin: Arc<dyn ProjectionLogic>,
        events: Arc<dyn EventStore>,
        read_store: ReadStore,
        policy: DeadLetterPolicy,
        upcaster: Upcaster,
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
        let held = Held::load(&read_store, &manifest.name).await?;
        // A pause outlives the process that paused: it holds until an operator resumes.
        let paused = read_store.stored_pause(&manifest.name).await?;
        if paused {
            tracing::warn!(projection = %manifest.name, "paused by its dead letters until an operator resumes it");
        }
        Ok(Arc::new(Self {
            name: manifest.name.clone(),
            serving: RwLock::new(Serving { plugin: plugin.clone(), generation: checkpoint.generation }),
            events,
            read_store,
            checkpoint: Mutex::new(checkpoint),
            read_ahead: std::sync::Mutex::new(None),
            position,
            commits: std::sync::Mutex::new(Commits::default()),
            policy,
            held: std::sync::Mutex::new(held),
            careful: std::sync::atomic::AtomicBool::new(true),
            paused: watch::channel(paused).0,
            resumed: std::sync::atomic::AtomicBool::new(false),
            caught_up_from_log: std::sync::atomic::AtomicBool::new(false),
            versions: std::sync::Mutex::new(Vec::new()),
            upcaster,
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin version serving now.
    pub fn plugin(&self) -> Arc<dyn ProjectionLogic> {
        self.serving().plugin
    }

    /// The plugin version serving now and the generation of tables it reads.
    pub fn serving(&self) -> Serving {
        self.serving.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_serving(&self, serving: Serving) {
        *self.serving.write().unwrap_or_else(PoisonError::into_inner) = serving;
    }

    /// The position the projection has committed.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Follow the committed position (what read-your-writes waits on).
    pub fn watch_position(&self) -> watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// Swap in another version of the plugin with the same schema, at a committed batch boundary:
    /// the batch in flight finishes on the old version, the next one runs on `plugin`, from the
    /// same checkpoint. Returns the position the new version continues from.
    pub async fn replace(&self, plugin: Arc<dyn ProjectionLogic>) -> u64 {
        let checkpoint = self.checkpoint.lock().await;
        let generation = checkpoint.generation;
        self.set_serving(Serving { plugin, generation });
        checkpoint.position
    }

    /// The live consumer committed a batch applied by `plugin`.
    fn note_commit(&self, plugin: &Arc<dyn ProjectionLogic>) {
        let version = Arc::as_ptr(plugin).cast::<()>() as usize;
        let now = std::time::Instant::now();
        let mut commits = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, previous)) = commits.last
            && previous != version
        {
            crate::telemetry::swap_pause(self.name(), now - at);
            commits.pauses.push_back(now - at);
            if commits.pauses.len() > PAUSES_KEPT {
                commits.pauses.pop_front();
            }
        }
        commits.last = Some((now, version));
    }

    /// The pauses of the latest plugin swaps: from the old version's last commit to the new
    /// version's first, oldest first.
    pub fn swap_pauses(&self) -> Vec<Duration> {
        self.commits.lock().unwrap_or_else(PoisonError::into_inner).pauses.iter().copied().collect()
    }

    /// `batch` with the events `plugin` subscribes to in their current shape (the others, which
    /// it never sees, as stored): what the plugin is handed, whoever delivered the events.
    pub(crate) async fn upcast<'a>(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
        batch: &'a [StoredEvent],
    ) -> Result<std::borrow::Cow<'a, [StoredEvent]>, ProjectionError> {
        let subscriptions = &plugin.manifest().subscriptions;
        Ok(self.upcaster.upcast_where(batch, |e| subscriptions.contains(&e.event_type)).await?)
    }

    /// Parked dead letters of this projection, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<Letter>, ProjectionError> {
        Ok(self.read_store.letters(Some(self.name()), None, &[LetterState::Parked]).await?)
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

    /// Take projection `name` out (its tables and position stay in the read store).
    pub fn remove(&self, name: &str) -> Option<Arc<Projection>> {
        self.by_name.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name)
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
