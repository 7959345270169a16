//! The admin service's reactor operations: starting a reactor (its position where its manifest
//! says a new one starts, its runner, its delivery worker), the operator's explicit reset of a
//! reactor's position — the only way a reactor ever handles an event twice, and then under a new
//! reset generation, so what it sends again carries new message ids — and the outbox's listing
//! and the retry of a parked message.

use std::sync::Arc;

use super::{Admin, AdminError, consumer_task};
use crate::plugin::{Plugin, ProjectionLogic, ReactorLogic, StartAt};
use crate::projection::{Projection, ProjectionError};
use crate::reactor::outbox::{self, Counts, Message, Outbox};
use crate::reactor::{ReactorRunner, delivery, resets};
use crate::read_store::Checkpoint;

/// The supervisor's name for the delivery worker of reactor `name`.
pub fn delivery_task(name: &str) -> String {
    format!("delivery:{name}")
}

/// What a reset did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reset {
    pub reactor: String,
    /// The position the reactor continues after.
    pub position: u64,
    /// How many times the reactor was reset, this one included: part of the ids of the
    /// messages it records from now on (`<reactor>:r<generation>:<position>:<index>`).
    pub generation: u64,
}

/// A reactor's outbox as the admin listing shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxListing {
    pub reactor: String,
    pub counts: Counts,
    pub messages: Vec<Message>,
}

impl Admin {
    /// Channels `reactor` names that the operator did not grant: it is refused with the first.
    pub(super) fn check_channels(&self, reactor: &dyn ReactorLogic) -> Result<(), AdminError> {
        let manifest = reactor.manifest();
        match manifest.channels.iter().find(|c| !self.parts().channels.granted(c)) {
            None => Ok(()),
            Some(channel) => Err(AdminError::UngrantedChannel {
                reactor: manifest.name.clone(),
                channel: channel.clone(),
                granted: self.parts().channels.names(),
            }),
        }
    }

    /// Create the topics of the Kafka channels on the host's bus, once the host serves.
    pub(super) async fn ensure_channel_topics(&self) {
        let parts = self.parts();
        let (Some(bus), topics) = (&parts.bus, parts.channels.bus_topics()) else { return };
        if let Err(e) = bus.ensure_topics(topics).await {
            tracing::error!("cannot create the topics of the Kafka channels: {e}");
        }
    }

    /// Place a reactor met for the first time where its manifest says (`now`: the log's head),
    /// then open its runner and start its consumer and delivery worker.
    pub(super) async fn start_reactor(&self, reactor: Arc<dyn ReactorLogic>, sha256: &str) -> Result<(), AdminError> {
        let parts = self.parts();
        let name = reactor.manifest().name.clone();
        let resets = self.reset_generation(&name).await?;
        let runner: Arc<dyn ProjectionLogic> = Arc::new(ReactorRunner::new(reactor.clone(), resets));
        let fresh = parts.read_store.checkpoint(&name).await.map_err(ProjectionError::from)?.is_none();
        if fresh && reactor.manifest().start == StartAt::Now {
            let head = parts.store.head_position().await?;
            tracing::info!(reactor = %name, position = head, "a new reactor starts at the log's head");
            let store = &parts.read_store;
            store.create_tables(&runner.manifest().schema, outbox::GENERATION).await.map_err(ProjectionError::from)?;
            self.save_position(runner.as_ref(), head, None).await?;
        } else if !fresh {
            // An outbox of the first shape gets the columns added since.
            Outbox::new(parts.read_store.clone(), &name).migrate().await.map_err(AdminError::Outbox)?;
        }
        self.start_projection(runner, sha256).await
    }

    /// How many times reactor `name` was reset (0: never).
    pub(super) async fn reset_generation(&self, name: &str) -> Result<u64, AdminError> {
        resets::generation(&self.parts().read_store, name).await.map_err(AdminError::Outbox)
    }

    /// Write reactor `runner`'s position (and drop its bus offsets, so a Kafka consumer
    /// resumes from it); with `reset`, record that reset generation in the same transaction.
    /// The outbox is kept: its pending and parked messages are still to be delivered.
    async fn save_position(
        &self,
        runner: &dyn ProjectionLogic,
        position: u64,
        reset: Option<u64>,
    ) -> Result<(), AdminError> {
        let store = &self.parts().read_store;
        let manifest = runner.manifest();
        let checkpoint =
            Checkpoint { generation: outbox::GENERATION, position, schema_version: outbox::SCHEMA_VERSION };
        let mut tx = store.pool().begin().await.map_err(|e| AdminError::Outbox(e.into()))?;
        store.save_checkpoint(&mut tx, &manifest.name, &checkpoint).await.map_err(AdminError::Outbox)?;
        store.clear_offsets(&mut tx, &manifest.name).await.map_err(AdminError::Outbox)?;
        if let Some(generation) = reset {
            resets::record(store, &mut tx, &manifest.name, generation, position).await.map_err(AdminError::Outbox)?;
        }
        tx.commit().await.map_err(|e| AdminError::Outbox(e.into()))?;
        Ok(())
    }

    /// Start the delivery worker of `projection` when it is a reactor's runner.
    pub(super) fn spawn_delivery(&self, projection: &Arc<Projection>) {
        if projection.plugin().replayable() {
            return;
        }
        let parts = self.parts();
        let name = delivery_task(projection.name());
        let outbox = Outbox::new(parts.read_store.clone(), projection.name());
        let (channels, policy) = (parts.channels.clone(), parts.delivery);
        let moved = projection.watch_position();
        let spawned = parts.supervisor.spawn(name.clone(), move |stop| {
            Box::pin(delivery::run(outbox.clone(), channels.clone(), policy, moved.clone(), stop))
        });
        if let Err(e) = spawned {
            tracing::error!(task = %name, "delivery worker not started: {e}");
        }
    }

    /// The reactor `name` as loaded, or why it is not one.
    fn reactor(&self, name: &str) -> Result<(Arc<dyn ReactorLogic>, String), AdminError> {
        match self.registry().get(name) {
            Some(loaded) => match &loaded.plugin {
                Plugin::Reactor(reactor) => Ok((reactor.clone(), loaded.info.sha256.clone())),
                _ => Err(AdminError::NotAReactor(name.to_owned())),
            },
            None => Err(AdminError::NotAReactor(name.to_owned())),
        }
    }

    /// Move reactor `name` back (or forward) to just after `position`: its consumer stops at a
    /// batch boundary, the position (and its bus offsets) is rewritten, and it starts again from
    /// there. Events after `position` are handled again, and their messages recorded again
    /// under the reactor's next reset generation: new message ids, so a receiver that
    /// deduplicates by idempotency key takes them as the new messages the operator asked for.
    /// The outbox keeps what it held (pending and parked messages are still delivered).
    pub async fn reset_reactor(&self, name: &str, position: u64) -> Result<Reset, AdminError> {
        let _change = self.inner.changes.lock().await;
        let (reactor, sha256) = self.reactor(name)?;
        let generation = self.reset_generation(name).await? + 1;
        self.parts().supervisor.remove(&consumer_task(name)).await;
        self.parts().supervisor.remove(&delivery_task(name)).await;
        self.parts().projections.remove(name);
        let runner: Arc<dyn ProjectionLogic> = Arc::new(ReactorRunner::new(reactor, generation));
        self.save_position(runner.as_ref(), position, Some(generation)).await?;
        self.start_projection(runner, &sha256).await?;
        tracing::warn!(reactor = %name, position, generation, "reactor reset by an operator: later events are handled again");
        Ok(Reset { reactor: name.to_owned(), position, generation })
    }

    /// Reactor `name`'s outbox: counts by state, and up to `limit` messages in `state`.
    pub async fn outbox(&self, name: &str, state: &str, limit: u32) -> Result<OutboxListing, AdminError> {
        self.reactor(name)?;
        let outbox = Outbox::new(self.parts().read_store.clone(), name);
        let counts = outbox.counts().await.map_err(AdminError::Outbox)?;
        let messages = outbox.in_state(state, limit).await.map_err(AdminError::Outbox)?;
        Ok(OutboxListing { reactor: name.to_owned(), counts, messages })
    }

    /// Send a parked message of reactor `name` again (its key's later messages follow it).
    pub async fn retry_message(&self, name: &str, id: &str) -> Result<Message, AdminError> {
        self.reactor(name)?;
        let outbox = Outbox::new(self.parts().read_store.clone(), name);
        let unknown = || AdminError::UnknownMessage { reactor: name.to_owned(), id: id.to_owned() };
        let message = outbox.get(id).await.map_err(AdminError::Outbox)?.ok_or_else(unknown)?;
        if message.state != outbox::PARKED {
            return Err(AdminError::MessageNotParked { id: id.to_owned(), state: message.state });
        }
        outbox.retry(id).await.map_err(AdminError::Outbox)?;
        Ok(Message { state: outbox::PENDING.into(), attempts: 0, ..message })
    }
}
