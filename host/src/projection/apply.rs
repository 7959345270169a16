//! The one chokepoint every event passes through on its way into a read model: a batch goes
//! through the plugin, and its rows, its progress (checkpoint or bus offsets) and its dead
//! letters commit in one transaction — so an event is applied exactly once, whoever delivered
//! it (the embedded follower, the Kafka consumer, a rebuild) and whichever plugin version ran.
//!
//! A healthy batch costs one transaction and no bookkeeping. Only a batch that failed (or the
//! first batch after a start, which may be where the last process died) goes event by event
//! through [`super::letters`]: attempts counted before each call, parking, holding back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::letters::{Held, Tried};
use super::{Projection, ProjectionError, kafka};
use crate::event_store::StoredEvent;
use crate::plugin::{HandleFailure, ProjectionLogic};
use crate::read_store::direct::{self, DirectWriter};
use crate::read_store::session::SqlSession;
use crate::read_store::staging::Staging;
use crate::read_store::{Checkpoint, OffsetAdvance, ReadStore, ReadStoreError};

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
pub(crate) enum Step {
    None,
    Checkpoint(Checkpoint),
    Offsets(Vec<OffsetAdvance>),
}

/// Letter bookkeeping that commits with an event's rows.
pub(crate) enum Book {
    /// The event at this position applied: its letter (attempts, parked or blocked) goes.
    Clear(u64),
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
    pub(crate) fn letters(self) -> &'a ReadStore {
        match self {
            Self::Store(store) | Self::Staged { letters: store, .. } => store,
        }
    }
}

impl Projection {
    /// Apply `batch` to the tables of `generation` in `store`, then write its `progress` in the
    /// same transaction. A batch the plugin refuses is applied event by event: an event that
    /// keeps failing is parked as a dead letter after the policy's attempts, and later events of
    /// its aggregate are held back behind it; the progress moves past both in the same
    /// transactions. A consumer past its letter limit stops with [`ProjectionError::Paused`].
    pub(crate) async fn apply(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
        rows: Rows<'_>,
        generation: i64,
        batch: &[StoredEvent],
        progress: &Progress,
    ) -> Result<(), ProjectionError> {
        let (batch, unreadable) = self.upcast_or_sort_out(plugin, batch).await?;
        let store = rows.letters();
        let subscribed: Vec<StoredEvent> =
            batch.iter().filter(|e| plugin.manifest().subscriptions.contains(&e.event_type)).cloned().collect();
        let tracked = !matches!(progress, Progress::Untracked);
        let careful = tracked && self.careful.load(std::sync::atomic::Ordering::SeqCst);
        let mut held = self.held_for(store).await?;
        if !careful && unreadable.is_empty() && !held.holds_any(&subscribed) {
            match self.handle_in_tx(plugin, rows, generation, &subscribed, &progress.whole(), &[]).await? {
                Ok(()) => return Ok(()),
                Err(HandleFailure::Backend(failure)) => return Err(ReadStoreError::Backend(failure).into()),
                Err(failure) => {
                    tracing::warn!(projection = %self.name(), "batch failed, applying it event by event: {failure}");
                }
            }
        }
        let sha256 = self.sha256_of(plugin);
        for event in &subscribed {
            let step = progress.after(event);
            if held.skips(event) {
                self.save_alone(store, &step).await?;
                continue;
            }
            if let Some(head) = held.blocking(event)
                && tracked
                && !self.still_parked(store, event, head).await?
            {
                // Released on another host sharing the read store (a retry or a drop there):
                // take up its letters before holding anything back.
                held = Held::load(store, self.name()).await?;
                let fresh = held.clone();
                self.update_held(store, |mine| *mine = fresh);
                if held.skips(event) {
                    self.save_alone(store, &step).await?;
                    continue;
                }
            }
            if let Some(head) = held.blocking(event) {
                self.block(store, event, &sha256, head, &step).await?;
                held.block(event);
                continue;
            }
            let tried = if let Some(reason) = unreadable.get(&event.global_position) {
                // The owning aggregate cannot bring it to its current shape: the projection
                // never sees it, as it never sees an event it keeps failing on.
                Tried::Park { reason: reason.clone(), attempts: 1 }
            } else if tracked {
                self.try_event(plugin, rows, generation, event, &step, &sha256).await?
            } else {
                // A rebuild replays what the live consumer met already: one call, no backoff.
                match self.handle_in_tx(plugin, rows, generation, std::slice::from_ref(event), &step, &[]).await? {
                    Ok(()) => Tried::Applied,
                    Err(HandleFailure::Backend(failure)) => return Err(ReadStoreError::Backend(failure).into()),
                    Err(failure) => Tried::Park { reason: failure.to_string(), attempts: 1 },
                }
            };
            if let Tried::Park { reason, attempts } = tried {
                if tracked && self.pause_instead(&held).await? {
                    return Err(ProjectionError::Paused(self.name().to_owned()));
                }
                self.park(store, event, &sha256, &reason, attempts, &step).await?;
                held.park(event);
            }
        }
        self.save_alone(store, &progress.rest()).await?;
        if tracked {
            self.careful.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }

    /// `batch` in its current shape. When the owning aggregate's upcaster fails on it, each event
    /// is upcast alone, and those it cannot read come back by position with why: they are parked
    /// like events the plugin keeps refusing, instead of stopping the consumer on every batch.
    async fn upcast_or_sort_out<'a>(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
        batch: &'a [StoredEvent],
    ) -> Result<(Cow<'a, [StoredEvent]>, HashMap<u64, String>), ProjectionError> {
        let failure = match self.upcast(plugin, batch).await {
            Ok(current) => return Ok((current, HashMap::new())),
            Err(ProjectionError::Fault(fault)) => fault,
            Err(other) => return Err(other),
        };
        tracing::warn!(projection = %self.name(), "upcasting a batch failed, upcasting it event by event: {failure}");
        let mut current = Vec::with_capacity(batch.len());
        let mut unreadable = HashMap::new();
        for event in batch {
            match self.upcast(plugin, std::slice::from_ref(event)).await {
                Ok(one) => current.extend(one.iter().cloned()),
                Err(ProjectionError::Fault(fault)) => {
                    unreadable.insert(event.global_position, format!("upcasting failed: {fault}"));
                    current.push(event.clone());
                }
                Err(other) => return Err(other),
            }
        }
        Ok((Cow::Owned(current), unreadable))
    }

    /// Write `step` in a transaction of its own (nothing else moves with it).
    async fn save_alone(&self, store: &ReadStore, step: &Step) -> Result<(), ProjectionError> {
        if matches!(step, Step::None) {
            return Ok(());
        }
        let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        self.save_step(store, &mut tx, step).await?;
        tx.commit().await.map_err(ReadStoreError::from)?;
        Ok(())
    }

    /// Write a step of progress inside `tx`.
    pub(crate) async fn save_step(
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

    /// One transaction: the plugin's writes for `events`, then the progress step and the letter
    /// `books`; committed only if the plugin succeeded.
    pub(crate) async fn handle_in_tx(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
        rows: Rows<'_>,
        generation: i64,
        events: &[StoredEvent],
        step: &Step,
        books: &[Book],
    ) -> Result<Result<(), HandleFailure>, ProjectionError> {
        let store = match rows {
            Rows::Store(store) => store,
            Rows::Staged { staging, .. } => return self.handle_staged(plugin, staging, events).await,
        };
        if let Some(direct) = store.direct()
            && !matches!(step, Step::Offsets(_))
        {
            return self.handle_direct(plugin, direct, generation, events, step, books).await;
        }
        let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        if let Step::Offsets(advances) = step
            && !events.is_empty()
            && let Err(e) = store.claim_offsets(&mut tx, self.name(), advances).await
        {
            tx.rollback().await.map_err(ReadStoreError::from)?;
            return Err(e.into());
        }
        let schema = Arc::new(plugin.manifest().schema.clone());
        let session = SqlSession::write(store, schema, generation, tx);
        let (session, outcome) = if events.is_empty() {
            (session, Ok(()))
        } else {
            let plugin = plugin.clone();
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
        if let Err(e) = self.save_books(store, &mut tx, step, books).await {
            tx.rollback().await.map_err(ReadStoreError::from)?;
            return Err(e);
        }
        tx.commit().await.map_err(ReadStoreError::from)?;
        Ok(Ok(()))
    }

    /// The progress step and the letter books, inside `tx`.
    async fn save_books(
        &self,
        store: &ReadStore,
        tx: &mut sqlx::AnyConnection,
        step: &Step,
        books: &[Book],
    ) -> Result<(), ProjectionError> {
        self.save_step(store, tx, step).await?;
        for book in books {
            match book {
                Book::Clear(position) => store.remove_letter(tx, self.name(), *position).await?,
            }
        }
        Ok(())
    }

    /// [`Self::handle_in_tx`] on a SQLite read store's file, called in place ([`direct`]): the
    /// rows, the checkpoint and the letter books in one transaction on one blocking thread.
    async fn handle_direct(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
        writer: &DirectWriter,
        generation: i64,
        events: &[StoredEvent],
        step: &Step,
        books: &[Book],
    ) -> Result<Result<(), HandleFailure>, ProjectionError> {
        let conn = writer.take()?;
        let schema = Arc::new(plugin.manifest().schema.clone());
        let (plugin, events, name) = (plugin.clone(), events.to_vec(), self.name().to_owned());
        let checkpoint = match step {
            Step::Checkpoint(checkpoint) => Some(checkpoint.clone()),
            Step::None | Step::Offsets(_) => None,
        };
        let cleared: Vec<u64> = books.iter().map(|Book::Clear(position)| *position).collect();
        let (conn, outcome) = tokio::task::spawn_blocking(move || {
            let session = |conn| SqlSession::direct(schema, generation, conn);
            batch_in_place(conn, "read store", session, plugin.as_ref(), &events, |conn| {
                checkpoint.iter().try_for_each(|checkpoint| direct::save_checkpoint(conn, &name, checkpoint))?;
                cleared.iter().try_for_each(|position| direct::remove_letter(conn, &name, *position))
            })
        })
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
        if let Some(conn) = conn {
            writer.give_back(conn);
        }
        Ok(outcome?)
    }

    /// [`Self::handle_in_tx`] on a staging database: the whole call runs on a blocking thread,
    /// since every statement is a direct SQLite call.
    async fn handle_staged(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
        staging: &Staging,
        events: &[StoredEvent],
    ) -> Result<Result<(), HandleFailure>, ProjectionError> {
        if events.is_empty() {
            return Ok(Ok(()));
        }
        let conn = staging.take()?;
        let (schema, generation) = (staging.schema().clone(), staging.generation());
        let plugin = plugin.clone();
        let events = events.to_vec();
        let (conn, outcome) = tokio::task::spawn_blocking(move || {
            let session = |conn| SqlSession::staging(schema, generation, conn);
            batch_in_place(conn, "staging database", session, plugin.as_ref(), &events, |_| Ok(()))
        })
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
        if let Some(conn) = conn {
            staging.give_back(conn);
        }
        Ok(outcome?)
    }
}

/// One batch on a SQLite connection called in place, on this (blocking) thread: the plugin's
/// statements through `session`, then `book` (progress, letter books) once the plugin succeeded,
/// in one transaction that commits only if both did. The connection comes back for reuse unless
/// the session lost it; `what` names the database in failures.
fn batch_in_place(
    conn: rusqlite::Connection,
    what: &'static str,
    session: impl FnOnce(rusqlite::Connection) -> SqlSession,
    plugin: &dyn ProjectionLogic,
    events: &[StoredEvent],
    book: impl FnOnce(&rusqlite::Connection) -> Result<(), ReadStoreError>,
) -> (Option<rusqlite::Connection>, Result<Result<(), HandleFailure>, ReadStoreError>) {
    if let Err(e) = direct::begin(&conn, what) {
        return (Some(conn), Err(e));
    }
    let (session, handled) =
        if events.is_empty() { (session(conn), Ok(())) } else { plugin.handle(session(conn), events) };
    let Some(conn) = session.into_staging() else {
        return (None, Err(ReadStoreError::Backend(format!("{what}: a session lost its connection"))));
    };
    if handled.is_err() {
        let ended = direct::end(&conn, what, false);
        return (Some(conn), ended.map(|()| handled));
    }
    let ended = match book(&conn) {
        Ok(()) => direct::end(&conn, what, true),
        Err(e) => direct::end(&conn, what, false).and(Err(e)),
    };
    (Some(conn), ended.map(|()| Ok(())))
}
