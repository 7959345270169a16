//! Reactors at run time: a reactor follows the log like a projection — from its own position,
//! through the same runner ([`crate::projection::Projection`]: the embedded follower or its own
//! Kafka consumer group, batches, dead letters, hot swaps) — but what its batch produces is not
//! rows of a read model: it is messages, written to the reactor's **outbox**, in the same
//! transaction that advances its position. A message is therefore recorded exactly once,
//! whatever crashes: a batch that did not commit recorded nothing and runs again, one that
//! committed is never run again. A [`delivery`] worker then sends what the outbox holds, at
//! least once, in order per key, each message under a stable id (its idempotency key).
//!
//! Why the outbox and the position live in the read store: the read store is where consumer
//! positions, Kafka offsets and dead letters already commit together in one transaction per
//! batch ([`crate::projection::apply`]), on all three SQL dialects; the outbox is one more
//! table in that transaction, so "recorded" and "position advanced" cannot disagree. The event
//! store would have needed a second transaction (and MongoDB has no SQL), and the bus gives no
//! transaction with the read store at all.
//!
//! The outbox is a table the host declares for the reactor ([`outbox`]), created and scoped by
//! the read store's own machinery. A message's id is `<reactor>:<global position>:<index>`: the
//! event that sent it and its place among that event's messages, so it is stable by
//! construction. Replays never re-send: the runner refuses rebuilds of a reactor
//! ([`crate::plugin::ProjectionLogic::replayable`]), a hot reload of any plugin continues from
//! the committed position, and only an operator's explicit reset
//! ([`crate::admin::Admin::reset_reactor`]) moves a reactor back. A reset is an explicit "send
//! again": the reactor's reset generation ([`resets`]) joins its message ids
//! (`<reactor>:r<generation>:<position>:<index>`), so what it records again is new to a receiver
//! that deduplicates by idempotency key, and never overwrites the earlier messages' rows.
//!
//! - [`channels`]: the operator's grants and the two ways out (webhook, Kafka topic).
//! - [`outbox`]: the outbox table and its statements.
//! - [`delivery`]: the worker that drains it, with backoff and parking, and prunes what was
//!   delivered longer ago than the retention.
//! - [`resets`]: the operator's resets, and each reactor's reset generation.

pub mod channels;
pub mod delivery;
pub mod outbox;
pub mod resets;

use std::sync::Arc;

use crate::event_store::StoredEvent;
use crate::plugin::{
    HandleFailure, PluginFault, ProjectionLogic, ProjectionManifest, QueryOutcome, ReactorLogic, ReactorManifest,
};
use crate::read_store::session::SqlSession;
use crate::read_store::statement::SqlError;

/// A reactor as the projection runner sees it: `handle` runs the reactor, then writes what it
/// sent into the outbox through the batch's write session (the transaction that also advances
/// the position). It has no query and cannot be rebuilt.
pub struct ReactorRunner {
    reactor: Arc<dyn ReactorLogic>,
    manifest: ProjectionManifest,
    /// How many times an operator reset the reactor: part of its message ids.
    resets: u64,
}

impl ReactorRunner {
    /// The runner of `reactor`, reset `resets` times so far ([`resets::generation`]).
    pub fn new(reactor: Arc<dyn ReactorLogic>, resets: u64) -> Self {
        let declared = reactor.manifest();
        let manifest = ProjectionManifest {
            name: declared.name.clone(),
            subscriptions: declared.subscriptions.clone(),
            schema_version: outbox::SCHEMA_VERSION,
            schema: outbox::schema(&declared.name),
            queries: Vec::new(),
            routes: Vec::new(),
            rebuild_routes: Vec::new(),
        };
        Self { reactor, manifest, resets }
    }

    pub fn reactor_manifest(&self) -> &ReactorManifest {
        self.reactor.manifest()
    }
}

impl ProjectionLogic for ReactorRunner {
    fn manifest(&self) -> &ProjectionManifest {
        &self.manifest
    }

    fn handle(&self, mut session: SqlSession, events: &[StoredEvent]) -> (SqlSession, Result<(), HandleFailure>) {
        let outgoing = match self.reactor.handle(events) {
            Ok(outgoing) => outgoing,
            Err(failure) => return (session, Err(failure)),
        };
        for message in &outgoing {
            let (columns, values) = outbox::row(&self.manifest.name, self.resets, message);
            // An upsert: a batch that rolled back may have written nothing or part of it.
            if let Err(e) = session.upsert(outbox::TABLE, &columns, &values) {
                let failure = match e {
                    SqlError::Backend(reason) => HandleFailure::Backend(reason),
                    other => HandleFailure::Refused(format!("the outbox refused a message: {other}")),
                };
                return (session, Err(failure));
            }
        }
        (session, Ok(()))
    }

    fn query(
        &self,
        _session: SqlSession,
        name: &str,
        _params: &[(String, String)],
    ) -> Result<QueryOutcome, PluginFault> {
        Ok(QueryOutcome::UnknownQuery(format!("reactor {} answers no query ({name})", self.manifest.name)))
    }

    fn replayable(&self) -> bool {
        false
    }
}
