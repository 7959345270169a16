//! Command dispatch: replay a stream, let the aggregate decide, append with optimistic
//! concurrency.
//!
//! [`AggregateLogic`](crate::plugin::AggregateLogic) is what the dispatcher needs of an aggregate — implemented by Wasm plugins
//! ([`crate::runtime::aggregate`]); the contract lives in [`crate::plugin`] and, in benchmarks, by the same logic compiled natively.
//! [`CommandService::execute`] serialises commands on one stream inside this process (striped
//! locks) to avoid wasted work, while the store's version check keeps hosts that share a store
//! correct; a lost race is retried unless the caller named the version it expects.
//!
//! A command on a stream whose state is cached ([`StateCache`]) reads nothing: it decides on the
//! cached state plus the events this host last appended, and appends at the head it knows. The
//! store's version check is what makes that safe; a refused append (another host wrote), a
//! refusal or a version mismatch is decided again after reading the store. So a command costs
//! the same whatever the size of the log or of its stream.

pub mod state_cache;

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

pub use state_cache::{CachedState, StateCache};

use crate::event_store::{EventStore, EventStoreError, NewEvent, StoredEvent};
use crate::plugin::{
    AggregateLogic, AggregateManifest, CommandInput, Decision, PluginFault, PluginRegistry, Refusal, upcast,
};
use crate::telemetry;

/// Why a command was not applied, classified by blame.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no aggregate type {0:?} is loaded")]
    UnknownAggregateType(String),
    #[error("aggregate type {aggregate_type} has no command {command:?}")]
    UnknownCommand { aggregate_type: String, command: String },
    #[error("{aggregate_type} {id} does not exist")]
    AggregateNotFound { aggregate_type: String, id: String },
    #[error("invalid aggregate id: {0}")]
    InvalidId(String),
    #[error(transparent)]
    Refused(Refusal),
    #[error("expected version {expected} but {aggregate_type} {id} is at version {actual}")]
    Conflict { aggregate_type: String, id: String, expected: u64, actual: u64 },
    #[error(transparent)]
    Fault(PluginFault),
    #[error(transparent)]
    Store(EventStoreError),
}

impl CommandError {
    /// The metrics' name for how a command ended this way.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownAggregateType(_) | Self::UnknownCommand { .. } => "unknown_command",
            Self::AggregateNotFound { .. } => "not_found",
            Self::InvalidId(_) | Self::Refused(Refusal::Invalid(_)) => "invalid",
            Self::Refused(Refusal::Rejected(_)) => "rejected",
            Self::Refused(Refusal::NotFound(_)) => "not_found",
            Self::Conflict { .. } | Self::Store(EventStoreError::Conflict { .. }) => "conflict",
            Self::Fault(_) => "plugin_fault",
            Self::Store(_) => "store_error",
        }
    }
}

/// What a command appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub aggregate_id: String,
    /// The stream's version after the command.
    pub version: u64,
    /// The appended events: (type, version, global position).
    pub events: Vec<(String, u64, u64)>,
}

impl CommandOutcome {
    /// Global position of the last appended event: what a read-your-writes query waits for.
    pub fn position(&self) -> Option<u64> {
        self.events.last().map(|e| e.2)
    }
}

/// How often a command is retried after losing a race to another writer.
const MAX_ATTEMPTS: u32 = 16;
const LOCK_STRIPES: usize = 256;

/// Runs commands against the loaded aggregates and the event store.
#[derive(Clone)]
pub struct CommandService {
    registry: PluginRegistry,
    store: Arc<dyn EventStore>,
    locks: Arc<StreamLocks>,
    states: Arc<StateCache>,
}

impl CommandService {
    /// A service that keeps the latest state of up to `cached_states` streams in memory.
    pub fn new(registry: PluginRegistry, store: Arc<dyn EventStore>, cached_states: usize) -> Self {
        Self { registry, store, locks: Arc::new(StreamLocks::new()), states: Arc::new(StateCache::new(cached_states)) }
    }

    /// Follow the head of the log, as the event store publishes it (this host's appends and,
    /// as the store hears of them, other hosts').
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.subscribe()
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Run one command. `expected_version` (from `If-Match`) disables the retry on a lost race.
    /// Counted and timed in the metrics by aggregate, command and outcome (unknown aggregate
    /// types and commands under `-`, so a caller's typos make no new series).
    pub async fn execute(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        command_type: &str,
        data: String,
        expected_version: Option<u64>,
    ) -> Result<CommandOutcome, CommandError> {
        let started = std::time::Instant::now();
        let result = self.run(aggregate_type, aggregate_id, command_type, data, expected_version).await;
        let outcome = match &result {
            Ok(outcome) => {
                if let Some(head) = outcome.position() {
                    telemetry::appended(aggregate_type, outcome.events.len(), head);
                }
                "ok"
            }
            Err(e) => e.outcome(),
        };
        let (aggregate_type, command_type) = match &result {
            Err(CommandError::UnknownAggregateType(_) | CommandError::UnknownCommand { .. }) => ("-", "-"),
            _ => (aggregate_type, command_type),
        };
        telemetry::command(aggregate_type, command_type, outcome, started.elapsed());
        result
    }

    async fn run(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        command_type: &str,
        data: String,
        expected_version: Option<u64>,
    ) -> Result<CommandOutcome, CommandError> {
        let logic = self.logic(aggregate_type)?;
        let spec = logic
            .manifest()
            .command(command_type)
            .ok_or_else(|| CommandError::UnknownCommand {
                aggregate_type: aggregate_type.to_owned(),
                command: command_type.to_owned(),
            })?
            .clone();
        validate_id(aggregate_id)?;
        let _guard = self.locks.lock(aggregate_type, aggregate_id).await;
        let input = CommandInput {
            command_type: command_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            data,
            issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            fresh_id: uuid::Uuid::new_v4().to_string(),
        };
        let mut attempt = 0;
        // Whether the next decision must see the store: after a lost race, and before any answer
        // that a stale cached view could have got wrong.
        let mut read = false;
        loop {
            attempt += 1;
            let cached = self.states.get(&logic, aggregate_type, aggregate_id);
            let (base, since, from_store) = match cached {
                Some(cached) if !read => {
                    let since = cached.tail.to_vec();
                    (Some(cached), since, false)
                }
                cached => {
                    let after = cached.as_ref().map_or(0, |c| c.version);
                    let since = self
                        .store
                        .read_stream(aggregate_type, aggregate_id, after, None)
                        .await
                        .map_err(CommandError::Store)?;
                    (cached, since, true)
                }
            };
            let base_version = base.as_ref().map_or(0, |c| c.version);
            let version = since.last().map_or(base_version, |e| e.version);
            if !from_store && (expected_version.is_some_and(|expected| expected != version) || version == 0) {
                read = true;
                continue;
            }
            if let Some(expected) = expected_version
                && expected != version
            {
                return Err(conflict(aggregate_type, aggregate_id, expected, version));
            }
            if version == 0 && !spec.creates {
                return Err(CommandError::AggregateNotFound {
                    aggregate_type: aggregate_type.to_owned(),
                    id: aggregate_id.to_owned(),
                });
            }
            let given = base.map(|c| c.state);
            let decision = run_decision(logic.clone(), given.clone(), since, input.clone()).await?;
            let after = decision.after;
            let state: Option<Arc<[u8]>> = decision.state.map(Into::into).or(given);
            let events = match decision.verdict {
                Ok(events) => events,
                // A refusal is answered only from what the store holds now.
                Err(_) if !from_store => {
                    read = true;
                    continue;
                }
                Err(refusal) => {
                    if let Some(state) = state {
                        self.states.put(&logic, aggregate_type, aggregate_id, CachedState::at(version, state));
                    }
                    return Err(CommandError::Refused(refusal));
                }
            };
            check_events(logic.manifest(), &events).map_err(CommandError::Fault)?;
            match self.store.append(aggregate_type, aggregate_id, version, &events).await {
                Ok(appended) => {
                    let stored = stored_events(aggregate_type, aggregate_id, version, events, &appended);
                    match (after, state) {
                        // The plugin applied what it decided: the next command has nothing to evolve.
                        (Some(after), _) => self.states.put(
                            &logic,
                            aggregate_type,
                            aggregate_id,
                            CachedState::at(appended.version, after.into()),
                        ),
                        (None, Some(state)) => self.states.put(
                            &logic,
                            aggregate_type,
                            aggregate_id,
                            CachedState { version, state, tail: Arc::from(stored.as_slice()) },
                        ),
                        (None, None) => self.states.forget(aggregate_type, aggregate_id),
                    }
                    let events = stored.into_iter().map(|e| (e.event_type, e.version, e.global_position)).collect();
                    return Ok(CommandOutcome {
                        aggregate_id: aggregate_id.to_owned(),
                        version: appended.version,
                        events,
                    });
                }
                Err(EventStoreError::Conflict { expected, actual }) => {
                    // The cached entry stays: what it holds is still true, only incomplete.
                    if expected_version.is_some() || attempt >= MAX_ATTEMPTS {
                        return Err(conflict(aggregate_type, aggregate_id, expected, actual));
                    }
                    if from_store {
                        // Another host won the race after our read: back off a little.
                        tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                    }
                    read = true;
                }
                Err(e) => return Err(CommandError::Store(e)),
            }
        }
    }

    /// The stream up to `version` (all of it when `None`).
    pub async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        version: Option<u64>,
    ) -> Result<Vec<StoredEvent>, CommandError> {
        self.logic(aggregate_type)?;
        self.store.read_stream(aggregate_type, aggregate_id, 0, version).await.map_err(CommandError::Store)
    }

    /// The stream up to `version` with every event in its current shape (upcast by the aggregate
    /// when stored at an older schema version).
    pub async fn history_upcast(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        version: Option<u64>,
    ) -> Result<Vec<StoredEvent>, CommandError> {
        let logic = self.logic(aggregate_type)?;
        let history = self.history(aggregate_type, aggregate_id, version).await?;
        tokio::task::spawn_blocking(move || upcast::upcast_with(&*logic, history))
            .await
            .map_err(|e| CommandError::Store(EventStoreError::Backend(format!("upcast task failed: {e}"))))?
            .map_err(CommandError::Fault)
    }

    /// The state of a stream as JSON text (`None` when the stream is empty).
    pub async fn state(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        version: Option<u64>,
    ) -> Result<Option<(u64, String)>, CommandError> {
        let logic = self.logic(aggregate_type)?;
        let history = self.history(aggregate_type, aggregate_id, version).await?;
        let Some(last) = history.last().map(|e| e.version) else {
            return Ok(None);
        };
        let rendered = tokio::task::spawn_blocking(move || logic.render(&upcast::upcast_with(&*logic, history)?))
            .await
            .map_err(|e| CommandError::Store(EventStoreError::Backend(format!("render task failed: {e}"))))?
            .map_err(CommandError::Fault)?;
        Ok(Some((last, rendered)))
    }

    fn logic(&self, aggregate_type: &str) -> Result<Arc<dyn AggregateLogic>, CommandError> {
        self.registry
            .aggregate(aggregate_type)
            .ok_or_else(|| CommandError::UnknownAggregateType(aggregate_type.to_owned()))
    }
}

/// The events of an append as the store now holds them: what the next command evolves.
fn stored_events(
    aggregate_type: &str,
    aggregate_id: &str,
    version: u64,
    events: Vec<NewEvent>,
    appended: &crate::event_store::Appended,
) -> Vec<StoredEvent> {
    events
        .into_iter()
        .zip(&appended.positions)
        .zip(version + 1..)
        .map(|((event, &global_position), version)| StoredEvent {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version,
            global_position,
            event_type: event.event_type,
            schema_version: event.schema_version,
            data: event.data,
            recorded_at: appended.recorded_at.clone(),
        })
        .collect()
}

fn conflict(aggregate_type: &str, id: &str, expected: u64, actual: u64) -> CommandError {
    CommandError::Conflict { aggregate_type: aggregate_type.to_owned(), id: id.to_owned(), expected, actual }
}

/// Evolve and decide, on this async worker; on a blocking thread when older events must be
/// upcast first (the upcaster's path is synchronous).
async fn run_decision(
    logic: Arc<dyn AggregateLogic>,
    state: Option<Arc<[u8]>>,
    since: Vec<StoredEvent>,
    input: CommandInput,
) -> Result<Decision, CommandError> {
    // Events at their current schema version (nearly always): decide right here.
    let manifest = logic.manifest();
    if since.iter().all(|e| !manifest.needs_upcast(&e.event_type, e.schema_version)) {
        return logic.execute_async(state.as_deref(), &since, &input).await.map_err(CommandError::Fault);
    }
    let plugin = manifest.aggregate_type.clone();
    // The caller's span (the request's) goes along, so the plugin's lines carry its id.
    let span = tracing::Span::current();
    let result = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        // Events appended since the cached state (or the whole stream) reach evolve in their
        // current shape.
        let since = upcast::upcast_with(&*logic, since)?;
        logic.execute(state.as_deref(), &since, &input)
    })
    .await;
    match result {
        Ok(Ok(decision)) => Ok(decision),
        Ok(Err(fault)) => Err(CommandError::Fault(fault)),
        Err(join) => {
            Err(CommandError::Fault(PluginFault::Trapped { plugin, detail: format!("host task failed: {join}") }))
        }
    }
}

/// Events must be declared by the manifest and carry a JSON object: anything else is a plugin bug
/// that must not reach the store.
fn check_events(manifest: &AggregateManifest, events: &[NewEvent]) -> Result<(), PluginFault> {
    for event in events {
        let fault = |detail: String| PluginFault::Contract { plugin: manifest.aggregate_type.clone(), detail };
        if !manifest.events.iter().any(|declared| declared == &event.event_type) {
            return Err(fault(format!("emitted undeclared event type {:?}", event.event_type)));
        }
        if let Some(schema) = manifest.schema(&event.event_type)
            && schema.current != event.schema_version
        {
            return Err(fault(format!(
                "emitted {} at schema version {}, not its declared current {}",
                event.event_type, event.schema_version, schema.current
            )));
        }
        if !event.data.trim_start().starts_with('{')
            || serde_json::from_str::<serde::de::IgnoredAny>(&event.data).is_err()
        {
            return Err(fault(format!("event {} carries no JSON object", event.event_type)));
        }
    }
    Ok(())
}

fn validate_id(id: &str) -> Result<(), CommandError> {
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(CommandError::InvalidId("an aggregate id is 1 to 200 printable characters".into()));
    }
    Ok(())
}

/// In-process mutual exclusion per stream, by hash stripe.
struct StreamLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: RandomState,
}

impl StreamLocks {
    fn new() -> Self {
        Self { stripes: (0..LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(), hasher: RandomState::new() }
    }

    async fn lock(&self, aggregate_type: &str, aggregate_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = self.hasher.hash_one((aggregate_type, aggregate_id)) as usize % LOCK_STRIPES;
        self.stripes[stripe].lock().await
    }
}
