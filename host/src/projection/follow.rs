//! The embedded bus: a projection follows the event store's log from its checkpoint. Positions
//! are committed in order, so following `position > checkpoint` never skips an event; each
//! batch is applied through [`Projection::apply`] under the checkpoint lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::apply::{Progress, Rows};
use super::{BATCH, Projection, ProjectionError};

/// After a batch of fewer events than this, the follower waits [`LINGER`] before reading again.
/// Under load a follower at the head otherwise applies each group commit alone (about ten events
/// at 6,000 commands/s), paying a transaction and a plugin call for each; idle, it still applies
/// the first event at once.
const LINGER_BELOW: usize = 64;

/// How long a busy follower lets commits gather: what it adds to read-your-writes under load.
const LINGER: Duration = Duration::from_millis(2);
use crate::read_store::{Checkpoint, ReadStoreError};

impl Projection {
    /// Follow the log until `stop` fires; once caught up, woken by `head` (the event store's
    /// [`subscribe`](crate::event_store::EventStore::subscribe)).
    pub async fn run(self: Arc<Self>, mut head: watch::Receiver<u64>, stop: CancellationToken) {
        while let Err(e) = self.leave_bus().await {
            tracing::warn!(projection = %self.name(), "cannot switch from the Kafka bus yet, retrying: {e}");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => return,
            }
        }
        loop {
            if stop.is_cancelled() {
                return;
            }
            if self.is_paused() {
                tokio::select! {
                    () = self.until_resumed() => {}
                    () = stop.cancelled() => return,
                }
            }
            match self.apply_next_batch().await {
                Ok(0) => {}
                Ok(applied) => {
                    // Busy at the head: let the next batch gather a few commits (each costs a
                    // transaction and a plugin call) instead of taking every commit alone.
                    if applied < LINGER_BELOW {
                        tokio::select! {
                            () = tokio::time::sleep(LINGER) => {}
                            () = stop.cancelled() => return,
                        }
                    }
                    continue;
                }
                // Waits for an operator at the top of the loop.
                Err(ProjectionError::Paused(_)) => continue,
                Err(e) => {
                    tracing::warn!(projection = %self.name(), "projection paused after an error, retrying: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = stop.cancelled() => return,
                    }
                }
            }
            // Caught up: nothing to do until the store says its log grew (it polls where it
            // cannot be told). A head that moved during the read wakes at once.
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        // The store is gone; this task is about to be stopped.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                () = stop.cancelled() => {}
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
        Ok(self.apply_next_batch().await? > 0)
    }

    /// Apply the next batch, if any. Returns how many events it held.
    async fn apply_next_batch(&self) -> Result<usize, ProjectionError> {
        let mut checkpoint = self.checkpoint.lock().await;
        let read_ahead = self.read_ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let batch = match read_ahead {
            Some((after, batch)) if after == checkpoint.position => batch,
            _ => self.events.read_all(checkpoint.position, BATCH).await?,
        };
        let Some(last) = batch.last().map(|e| e.global_position) else { return Ok(0) };
        let generation = checkpoint.generation;
        let next = Checkpoint { position: last, ..checkpoint.clone() };
        let progress = Progress::Checkpoint(next.clone());
        let plugin = self.plugin();
        let applied = self.apply(&plugin, Rows::Store(&self.read_store), generation, &batch, &progress);
        let applied = if batch.len() < BATCH as usize {
            applied.await
        } else {
            // Catching up: read the next batch while this one is written. A batch read now is a
            // prefix of what follows `last`, as positions commit in order.
            let (applied, following) = tokio::join!(applied, self.events.read_all(last, BATCH));
            if applied.is_ok()
                && let Ok(following) = following
                && !following.is_empty()
            {
                *self.read_ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((last, following));
            }
            applied
        };
        if let Err(e) = applied {
            // Part of the batch may have committed event by event (then a pause, or a failure
            // of the read store): continue from what the store says.
            if let Ok(Some(stored)) = self.read_store.checkpoint(self.name()).await
                && stored.generation == checkpoint.generation
                && stored.position > checkpoint.position
            {
                checkpoint.position = stored.position;
                self.position.send_replace(stored.position);
            }
            return Err(e);
        }
        *checkpoint = next;
        self.note_commit(&plugin);
        self.position.send_replace(last);
        Ok(batch.len())
    }
}
