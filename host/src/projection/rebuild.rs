//! Rebuilds: replay the whole log into fresh tables (through a SQLite staging database where the
//! target suits it), while the old tables keep serving; then catch up under the checkpoint lock
//! and switch in one step. A version upgrade with a new schema is the same path with the new
//! plugin, which takes over at the switch.

use std::sync::Arc;
use std::time::Duration;

use super::apply::{Progress, Rows};
use super::{BATCH, Projection, ProjectionError, Serving};
use crate::plugin::ProjectionLogic;
use crate::read_store::staging::Staging;
use crate::read_store::{Checkpoint, ReadStore, ReadStoreError};

impl Projection {
    /// Rebuild from the whole event store into fresh tables of `target` (the serving read store
    /// when `None`), reporting progress as (events done, events in the store). Queries keep
    /// reading the old tables until the switch; the live follower pauses only for the final
    /// catch-up and the switch itself.
    pub async fn rebuild(
        &self,
        target: Option<&ReadStore>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, ProjectionError> {
        self.build(self.plugin(), target, None, progress).await
    }

    /// Build `plugin` — a version whose schema differs from the serving one — into fresh tables
    /// from position 0 while the serving version keeps answering queries and following the log;
    /// once it has caught up, switch to it in one step and drop the old tables. A reader sees
    /// the complete old model or the complete new one, never a partial one. `on_switch` runs in
    /// the switch itself (the registry swaps the routes there), before any batch or query sees
    /// the new version.
    pub async fn upgrade(
        &self,
        plugin: Arc<dyn ProjectionLogic>,
        on_switch: Box<dyn FnOnce() + Send + '_>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, ProjectionError> {
        self.build(plugin, None, Some(on_switch), progress).await
    }

    /// Replay the log through `plugin` into fresh tables of `target` (the serving read store
    /// when `None`); in place, switch to them — and to `plugin` too, when it takes over (then
    /// `takes_over` runs in the switch).
    async fn build(
        &self,
        plugin: Arc<dyn ProjectionLogic>,
        target: Option<&ReadStore>,
        takes_over: Option<Box<dyn FnOnce() + Send + '_>>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, ProjectionError> {
        if !plugin.replayable() {
            // A reactor's effects left the host: replaying would send them again.
            return Err(ProjectionError::NotReplayable(self.name().to_owned()));
        }
        let in_place = target.is_none();
        let store = target.unwrap_or(&self.read_store);
        let schema = &plugin.manifest().schema;
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
            position = self
                .replay(&plugin, Rows::Staged { staging: &staging, letters: store }, generation, 0, head, progress)
                .await?;
            staging.load_into(store).await?;
        }
        // What the staging pass did not see (or all of it, unstaged) goes straight to the target,
        // still without holding up the live follower.
        position = self.replay(&plugin, Rows::Store(store), generation, position, head, progress).await?;
        let checkpoint = Checkpoint { generation, position, schema_version: plugin.manifest().schema_version };
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
            self.apply(&plugin, Rows::Store(store), generation, &batch, &Progress::Untracked).await?;
            checkpoint.position = last;
        }
        let mut tx = store.pool().begin().await.map_err(ReadStoreError::from)?;
        store.save_checkpoint(&mut tx, self.name(), &checkpoint).await?;
        tx.commit().await.map_err(ReadStoreError::from)?;
        let old = self.serving();
        *serving = checkpoint.clone();
        // A plain rebuild keeps the serving version (a replace may have swapped it meanwhile).
        let next = if takes_over.is_some() { plugin.clone() } else { old.plugin.clone() };
        if let Some(switch) = takes_over {
            switch();
        }
        self.set_serving(Serving { plugin: next, generation });
        self.position.send_replace(checkpoint.position.max(self.position()));
        drop(serving);
        // Queries that started on the old tables finish within their own time limit.
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.drop_tables(&old.plugin.manifest().schema, old.generation).await?;
        progress(checkpoint.position, checkpoint.position);
        Ok(checkpoint.position)
    }

    /// Apply the log after `from` to `rows` untracked, reading the next batch while the plugin
    /// handles this one. Returns the last position applied.
    async fn replay(
        &self,
        plugin: &Arc<dyn ProjectionLogic>,
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
            self.apply(plugin, rows, generation, &batch, &Progress::Untracked).await?;
            position = last;
            progress(position, head.max(position));
        }
        Ok(position)
    }

    /// Run `read` at a committed batch boundary of the serving version, with that version and
    /// the position its tables hold: no batch is applied (and no switch happens) until `read`
    /// is done, so it sees the model exactly as of that position. What a dry run compares its
    /// candidate with; the live consumer waits for it, so keep it to reading.
    pub async fn at_rest<T, F, Fut>(&self, read: F) -> T
    where
        F: FnOnce(Serving, u64) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let _held = self.checkpoint.lock().await;
        read(self.serving(), self.position()).await
    }

    async fn head_position(&self) -> Result<u64, ProjectionError> {
        Ok(self.events.head_position().await?)
    }
}
