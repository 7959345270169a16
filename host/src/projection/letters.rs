//! Dead letters of a projection at run time: the policy (bounded attempts with backoff, the
//! pause limit), what the runner holds back, and the operator's retry, drop and resume.
//!
//! A batch the plugin refuses is applied event by event; each attempt at an event is counted in
//! the read store *before* the call ([`ReadStore::record_attempt`]), so a call that kills the
//! process counts too. Out of attempts, the event is parked: the letter and the progress past
//! the event commit together, and later events of the same aggregate are held back behind it
//! (recorded as blocked, in order), while other aggregates keep flowing. A retry applies a
//! parked event and the events behind it head-first with the plugin version serving now,
//! stopping at the first failure; a drop skips the event for good, audited, and releases the
//! events behind it the same way. A consumer with more parked letters than the limit pauses
//! instead of parking more, until an operator resumes it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::apply::{Book, Rows, Step};
use super::{Projection, ProjectionError};
use crate::event_store::StoredEvent;
use crate::plugin::{HandleFailure, ProjectionLogic};
use crate::read_store::{DroppedLetter, Letter, LetterState, ReadStore, ReadStoreError};

/// How often a paused consumer looks whether another host resumed it.
const PAUSE_POLL: Duration = Duration::from_secs(2);

/// How a consumer treats an event that keeps failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterPolicy {
    /// Calls at one event before it is parked (the first included).
    pub attempts: u32,
    /// The wait before the second call; it doubles for each later one, with jitter.
    pub first_backoff: Duration,
    /// Parked letters a consumer may hold; a failure beyond them pauses the consumer.
    pub pause_after: u64,
}

impl Default for DeadLetterPolicy {
    fn default() -> Self {
        Self { attempts: 3, first_backoff: Duration::from_millis(100), pause_after: 100 }
    }
}

impl DeadLetterPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }
}

/// What a consumer holds back, kept in memory for its serving read store and loaded from the
/// letters (for another read store, a rebuild's target, it is read per batch).
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    /// Aggregates (type, id) with a parked event, and that event's position.
    blocked: HashMap<(String, String), u64>,
    /// Positions that are letters (parked or blocked) or were dropped: a replay skips them.
    skipped: HashSet<u64>,
    /// Parked letters.
    pub(crate) parked: u64,
}

impl Held {
    /// Read what `consumer` holds back in `store`.
    pub(crate) async fn load(store: &ReadStore, consumer: &str) -> Result<Self, ReadStoreError> {
        let mut held = Self::default();
        for letter in store.letters(Some(consumer), None, &[LetterState::Parked, LetterState::Blocked]).await? {
            held.skipped.insert(letter.position);
            if letter.state == LetterState::Parked {
                held.parked += 1;
                held.blocked.insert((letter.aggregate_type, letter.aggregate_id), letter.position);
            }
        }
        for drop in store.drops(Some(consumer)).await? {
            held.skipped.insert(drop.position);
        }
        Ok(held)
    }

    /// Whether any of `events` is held back (the batch then goes event by event).
    pub(crate) fn holds_any(&self, events: &[StoredEvent]) -> bool {
        (!self.blocked.is_empty() || !self.skipped.is_empty())
            && events.iter().any(|e| self.skips(e) || self.blocking(e).is_some())
    }

    /// The event is a letter already, or dropped: a replay passes it by.
    pub(crate) fn skips(&self, event: &StoredEvent) -> bool {
        self.skipped.contains(&event.global_position)
    }

    /// The parked event `event` waits behind, if its aggregate has one before it.
    pub(crate) fn blocking(&self, event: &StoredEvent) -> Option<u64> {
        self.blocked
            .get(&(event.aggregate_type.clone(), event.aggregate_id.clone()))
            .copied()
            .filter(|head| *head < event.global_position)
    }

    pub(crate) fn park(&mut self, event: &StoredEvent) {
        self.parked += 1;
        self.skipped.insert(event.global_position);
        self.blocked.insert((event.aggregate_type.clone(), event.aggregate_id.clone()), event.global_position);
    }

    pub(crate) fn block(&mut self, event: &StoredEvent) {
        self.skipped.insert(event.global_position);
    }
}

/// How an event ended after its attempts.
pub(crate) enum Tried {
    Applied,
    Park { reason: String, attempts: u32 },
}

/// Why one attempt did not apply the event.
enum AttemptError {
    /// The plugin failed: try again after the backoff, while attempts remain.
    Failed(String),
    /// The host could not go on (the read store failed): the batch is retried later.
    Host(ProjectionError),
}

/// What a retry or a release did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryOutcome {
    /// Positions applied, in order.
    pub applied: Vec<u64>,
    /// The letter that failed again (now the parked head of its aggregate), if one did.
    pub failed: Option<Letter>,
}

impl RetryOutcome {
    fn absorb(&mut self, other: Self) {
        self.applied.extend(other.applied);
        self.failed = other.failed;
    }
}

impl Projection {
    /// The sha256 of `plugin`, as the admin service named it (or `unknown`).
    pub(crate) fn sha256_of(&self, plugin: &Arc<dyn ProjectionLogic>) -> String {
        let key = Arc::as_ptr(plugin).cast::<()>() as usize;
        let known = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        known.iter().find(|(k, _)| *k == key).map_or_else(|| "unknown".to_owned(), |(_, sha)| sha.clone())
    }

    /// Name the sha256 of a plugin version that runs (or will run) this projection, for its letters.
    pub fn know_version(&self, plugin: &Arc<dyn ProjectionLogic>, sha256: &str) {
        let key = Arc::as_ptr(plugin).cast::<()>() as usize;
        let mut known = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        known.retain(|(k, _)| *k != key);
        known.push((key, sha256.to_owned()));
        let excess = known.len().saturating_sub(16);
        known.drain(..excess);
    }

    /// The serving store's held-back events live in memory; another store's are read.
    pub(crate) async fn held_for(&self, store: &ReadStore) -> Result<Held, ProjectionError> {
        if std::ptr::eq(store, &self.read_store) {
            Ok(self.held.lock().unwrap_or_else(PoisonError::into_inner).clone())
        } else {
            Ok(Held::load(store, self.name()).await?)
        }
    }

    /// Read the serving store's held-back events again, at a committed batch boundary: after a
    /// Kafka rebalance, partitions may come from a host whose retries and drops this one never
    /// saw.
    pub(crate) async fn reload_held(&self) -> Result<(), ProjectionError> {
        let _boundary = self.checkpoint.lock().await;
        let held = Held::load(&self.read_store, self.name()).await?;
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = held;
        Ok(())
    }

    /// Whether the event at `head` is still the parked letter that `event`'s aggregate waits
    /// behind, as the read store says (another host may have retried or dropped it).
    pub(crate) async fn still_parked(
        &self,
        store: &ReadStore,
        event: &StoredEvent,
        head: u64,
    ) -> Result<bool, ProjectionError> {
        let parked = store.letters(Some(self.name()), Some(&event.aggregate_id), &[LetterState::Parked]).await?;
        Ok(parked.iter().any(|l| l.position == head && l.aggregate_type == event.aggregate_type))
    }

    /// Apply a change to the serving store's held-back events.
    pub(crate) fn update_held(&self, store: &ReadStore, change: impl FnOnce(&mut Held)) {
        if std::ptr::eq(store, &self.read_store) {
            change(&mut self.held.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// Whether the consumer is paused by its dead letters.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Wait until the consumer is not paused: resumed here, or on another host sharing the read
    /// store (seen within [`PAUSE_POLL`]).
    pub(crate) async fn until_resumed(&self) {
        let mut paused = self.paused.subscribe();
        loop {
            tokio::select! {
                // An error means the sender is gone, which it never is while `self` lives.
                _ = async { paused.wait_for(|paused| !paused).await.is_ok() } => return,
                () = tokio::time::sleep(PAUSE_POLL) => match self.read_store.stored_pause(self.name()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        if self.resume_here() {
                            tracing::info!(projection = %self.name(), "resumed on another host");
                        }
                        return;
                    }
                    Err(e) => tracing::warn!(projection = %self.name(), "cannot read whether the consumer is still paused: {e}"),
                },
            }
        }
    }

    /// Parking `event` would take the consumer past its limit: pause instead (unless an operator
    /// resumed it since, which lets this one park). The pause is remembered in the read store
    /// first, so it outlives this process and other hosts see it.
    pub(crate) async fn pause_instead(&self, held: &Held) -> Result<bool, ProjectionError> {
        let granted = self.resumed.swap(false, Ordering::SeqCst);
        if held.parked < self.policy.pause_after || granted {
            return Ok(false);
        }
        self.read_store.store_pause(self.name(), true).await?;
        if !self.paused.send_replace(true) {
            tracing::error!(projection = %self.name(), parked = held.parked, "paused: more dead letters than the limit");
        }
        Ok(true)
    }

    /// Take up the pause the read store holds for this consumer (a host that paused it, or a
    /// resume elsewhere, since this one last looked). Returns whether it is paused now.
    pub(crate) async fn reload_pause(&self) -> Result<bool, ProjectionError> {
        let stored = self.read_store.stored_pause(self.name()).await?;
        if stored {
            self.paused.send_replace(true);
        } else {
            self.resume_here();
        }
        Ok(stored)
    }

    /// Resume a consumer paused by its dead letters, on every host sharing its read store; the
    /// event it stopped at parks. Returns whether it was paused (here or in the store).
    pub async fn resume(&self) -> Result<bool, ProjectionError> {
        let stored = self.read_store.stored_pause(self.name()).await?;
        self.read_store.store_pause(self.name(), false).await?;
        let here = self.resume_here();
        if here || stored {
            tracing::info!(projection = %self.name(), "resumed by an operator");
        }
        Ok(here || stored)
    }

    /// Lift this runner's pause; the event it stopped at may park. Returns whether it was paused.
    fn resume_here(&self) -> bool {
        let was = self.paused.send_replace(false);
        if was {
            self.resumed.store(true, Ordering::SeqCst);
            // Event by event again, so the event it stopped at (out of attempts) parks rather
            // than riding along in a batch.
            self.careful.store(true, Ordering::SeqCst);
        }
        was
    }

    /// Try `event` alone until it applies or its attempts run out, each attempt counted before
    /// the call and the calls spaced by the policy's backoff.
    pub(crate) async fn try_event(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
        rows: Rows<'_>,
        generation: i64,
        event: &StoredEvent,
        step: &Step,
        sha256: &str,
    ) -> Result<Tried, ProjectionError> {
        let store = rows.letters();
        let limit = self.policy.attempts.max(1);
        let name = self.name();
        let attempt = move || async move {
            let recorded =
                store.record_attempt(name, sha256, event, limit).await.map_err(|e| AttemptError::Host(e.into()))?;
            if recorded.exhausted {
                return Ok(Tried::Park { reason: recorded.reason, attempts: recorded.attempts });
            }
            let one = std::slice::from_ref(event);
            let books = [Book::Clear(event.global_position)];
            match self.handle_in_tx(plugin, rows, generation, one, step, &books).await {
                Err(e) => Err(AttemptError::Host(e)),
                Ok(Ok(())) => Ok(Tried::Applied),
                Ok(Err(HandleFailure::Backend(failure))) => {
                    Err(AttemptError::Host(ReadStoreError::Backend(failure).into()))
                }
                Ok(Err(failure)) => {
                    let reason = failure.to_string();
                    store
                        .note_failure(name, event.global_position, &reason)
                        .await
                        .map_err(|e| AttemptError::Host(e.into()))?;
                    if recorded.attempts >= limit {
                        Ok(Tried::Park { reason, attempts: recorded.attempts })
                    } else {
                        Err(AttemptError::Failed(reason))
                    }
                }
            }
        };
        let outcome = attempt
            .retry(self.policy.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, AttemptError::Failed(_)))
            .notify(|e, wait| {
                if let AttemptError::Failed(reason) = e {
                    tracing::warn!(projection = %name, position = event.global_position, ?wait, "event failed, trying again: {reason}");
                }
            })
            .await;
        match outcome {
            Ok(tried) => Ok(tried),
            Err(AttemptError::Failed(reason)) => Ok(Tried::Park { reason, attempts: limit }),
            Err(AttemptError::Host(e)) => Err(e),
        }
    }

    /// Park `event` and write `step` in one transaction.
    pub(crate) async fn park(
        &self,
        store: &ReadStore,
        event: &StoredEvent,
        sha256: &str,
        reason: &str,
        attempts: u32,
        step: &Step,
    ) -> Result<(), ProjectionError> {
        tracing::error!(projection = %self.name(), position = event.global_position, aggregate = %event.aggregate_id, attempts, "event parked as a dead letter: {reason}");
        let letter = Letter::new(self.name(), sha256, event, LetterState::Parked, reason, attempts);
        let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        store.put_letter(&mut tx, &letter).await?;
        self.save_step(store, &mut tx, step).await?;
        tx.commit().await.map_err(ReadStoreError::from)?;
        crate::telemetry::dead_letter(self.name());
        self.update_held(store, |held| held.park(event));
        Ok(())
    }

    /// Record `event` as held back behind the parked event at `head`, with `step`, in one
    /// transaction.
    pub(crate) async fn block(
        &self,
        store: &ReadStore,
        event: &StoredEvent,
        sha256: &str,
        head: u64,
        step: &Step,
    ) -> Result<(), ProjectionError> {
        tracing::info!(projection = %self.name(), position = event.global_position, aggregate = %event.aggregate_id, head, "event held back behind a dead letter");
        let reason = format!("blocked behind the dead letter at position {head}");
        let letter = Letter::new(self.name(), sha256, event, LetterState::Blocked, &reason, 0);
        let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        store.put_letter(&mut tx, &letter).await?;
        self.save_step(store, &mut tx, step).await?;
        tx.commit().await.map_err(ReadStoreError::from)?;
        self.update_held(store, |held| held.block(event));
        Ok(())
    }

    /// Retry the sequence of aggregate `aggregate_id` (of `aggregate_type`; of every type with
    /// letters under that id when `None`, one after the other): its parked event, then the events
    /// held back behind it, in order, with the plugin version serving now; the first failure
    /// stops it and becomes the parked head.
    pub async fn retry_aggregate(
        &self,
        aggregate_type: Option<&str>,
        aggregate_id: &str,
    ) -> Result<RetryOutcome, ProjectionError> {
        let checkpoint = self.checkpoint.lock().await;
        let types: Vec<String> = match aggregate_type {
            Some(aggregate_type) => vec![aggregate_type.to_owned()],
            None => {
                let states = [LetterState::Parked, LetterState::Blocked];
                let mut types = Vec::new();
                for letter in self.read_store.letters(Some(self.name()), Some(aggregate_id), &states).await? {
                    if !types.contains(&letter.aggregate_type) {
                        types.push(letter.aggregate_type);
                    }
                }
                types
            }
        };
        let mut outcome = RetryOutcome::default();
        for aggregate_type in types {
            outcome.absorb(self.retry_locked(&aggregate_type, aggregate_id, checkpoint.generation).await?);
            if outcome.failed.is_some() {
                break;
            }
        }
        drop(checkpoint);
        Ok(outcome)
    }

    /// Retry every parked sequence of the consumer (of aggregates of `aggregate_type` only, when
    /// given), oldest head first, stopping at the first failure.
    pub async fn retry_all(&self, aggregate_type: Option<&str>) -> Result<RetryOutcome, ProjectionError> {
        let checkpoint = self.checkpoint.lock().await;
        let mut parked = self.read_store.letters(Some(self.name()), None, &[LetterState::Parked]).await?;
        parked.retain(|l| aggregate_type.is_none_or(|t| t == l.aggregate_type));
        let mut outcome = RetryOutcome::default();
        for letter in parked {
            let (aggregate_type, aggregate_id) = (&letter.aggregate_type, &letter.aggregate_id);
            outcome.absorb(self.retry_locked(aggregate_type, aggregate_id, checkpoint.generation).await?);
            if outcome.failed.is_some() {
                break;
            }
        }
        drop(checkpoint);
        Ok(outcome)
    }

    /// Drop the parked letter `letter`: its event is skipped for good, the drop is audited with
    /// `by`, and the events held back behind it are applied in order (the first that fails is
    /// parked in its place).
    pub async fn drop_letter(&self, letter: &Letter, by: &str) -> Result<RetryOutcome, ProjectionError> {
        let checkpoint = self.checkpoint.lock().await;
        let store = &self.read_store;
        let dropped = DroppedLetter {
            consumer: letter.consumer.clone(),
            position: letter.position,
            aggregate_type: letter.aggregate_type.clone(),
            aggregate_id: letter.aggregate_id.clone(),
            event_type: letter.event_type.clone(),
            reason: letter.reason.clone(),
            dropped_by: by.to_owned(),
            dropped_at: crate::read_store::dead_letters::now(),
        };
        let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        store.remove_letter(&mut tx, self.name(), letter.position).await?;
        store.record_drop(&mut tx, &dropped).await?;
        tx.commit().await.map_err(ReadStoreError::from)?;
        tracing::warn!(projection = %self.name(), position = letter.position, by, "dead letter dropped");
        self.update_held(store, |held| {
            held.blocked.remove(&(letter.aggregate_type.clone(), letter.aggregate_id.clone()));
            held.parked = held.parked.saturating_sub(1);
        });
        let outcome = self.retry_locked(&letter.aggregate_type, &letter.aggregate_id, checkpoint.generation).await;
        drop(checkpoint);
        outcome
    }

    /// [`Self::retry_aggregate`] of one aggregate (type and id), under the checkpoint lock.
    async fn retry_locked(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        generation: i64,
    ) -> Result<RetryOutcome, ProjectionError> {
        let store = &self.read_store;
        let mut letters =
            store.letters(Some(self.name()), Some(aggregate_id), &[LetterState::Parked, LetterState::Blocked]).await?;
        // Another aggregate type's stream of the same id is another sequence.
        letters.retain(|l| l.aggregate_type == aggregate_type);
        let plugin = self.plugin();
        let sha256 = self.sha256_of(&plugin);
        let mut outcome = RetryOutcome::default();
        let mut parked_before = 0;
        for letter in &letters {
            if letter.state == LetterState::Parked {
                parked_before += 1;
            }
            let stored = self.event_at(letter.position).await?;
            let books = [Book::Clear(letter.position)];
            // The plugin gets the event in its current shape, as on every other path; an event
            // the owning aggregate cannot upcast fails the retry like a refusal.
            let tried = match self.upcast(&plugin, std::slice::from_ref(&stored)).await {
                Ok(event) => {
                    self.handle_in_tx(&plugin, Rows::Store(store), generation, &event, &Step::None, &books).await?
                }
                Err(ProjectionError::Fault(fault)) => Err(HandleFailure::Fault(fault)),
                Err(other) => return Err(other),
            };
            match tried {
                Ok(()) => {
                    tracing::info!(projection = %self.name(), position = letter.position, "dead letter retried: applied");
                    outcome.applied.push(letter.position);
                }
                Err(HandleFailure::Backend(failure)) => return Err(ReadStoreError::Backend(failure).into()),
                Err(failure) => {
                    let reason = failure.to_string();
                    tracing::warn!(projection = %self.name(), position = letter.position, "dead letter retried: failed again: {reason}");
                    let mut failed = letter.clone();
                    failed.state = LetterState::Parked;
                    failed.reason = reason;
                    failed.attempts = letter.attempts.saturating_add(1);
                    failed.plugin_sha256 = sha256.clone();
                    let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
                    store.put_letter(&mut tx, &failed).await?;
                    tx.commit().await.map_err(ReadStoreError::from)?;
                    outcome.failed = store.letter(letter.id).await?.or(Some(failed));
                    break;
                }
            }
        }
        // What is held back now: applied positions are free; the aggregate waits behind the
        // letter that failed, if one did.
        let key = letters.first().map(|l| (l.aggregate_type.clone(), l.aggregate_id.clone()));
        let failed_position = outcome.failed.as_ref().map(|l| l.position);
        self.update_held(store, |held| {
            for position in &outcome.applied {
                held.skipped.remove(position);
            }
            if let Some(key) = key {
                held.blocked.remove(&key);
                if let Some(position) = failed_position {
                    held.blocked.insert(key, position);
                }
            }
            let parked_after = u64::from(failed_position.is_some());
            held.parked = (held.parked + parked_after).saturating_sub(parked_before);
        });
        Ok(outcome)
    }

    /// The event at `position` of the log.
    async fn event_at(&self, position: u64) -> Result<StoredEvent, ProjectionError> {
        let found = self.events.read_all(position.saturating_sub(1), 1).await?;
        match found.into_iter().next() {
            Some(event) if event.global_position == position => Ok(event),
            _ => Err(ProjectionError::Task(format!("the log has no event at position {position}"))),
        }
    }
}
