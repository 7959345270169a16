//! The projection contract: what the projection runner needs of a projection plugin — apply a
//! batch of events through a write session, answer a query through a read session. Wasm
//! components implement it ([`crate::runtime::projection`]).

use super::{PluginFault, ProjectionManifest};
use crate::event_store::StoredEvent;
use crate::read_store::session::SqlSession;

/// Why a batch was not applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandleFailure {
    /// The plugin refused an event (a bug or bad data): retry alone, then dead-letter.
    #[error("projection refused the batch: {0}")]
    Refused(String),
    #[error(transparent)]
    Fault(#[from] PluginFault),
    /// The read store failed: not the events' fault; retry later.
    #[error("read store failure: {0}")]
    Backend(String),
}

/// A query's answer or why there is none.
#[derive(Debug, Clone)]
pub enum QueryOutcome {
    Answer { status: u16, body: String },
    UnknownQuery(String),
    Invalid(String),
    NotFound(String),
    Failed(String),
}

/// A projection plugin. Calls are synchronous and may block on the read store: the runner makes
/// them on a blocking thread.
pub trait ProjectionLogic: Send + Sync + 'static {
    fn manifest(&self) -> &ProjectionManifest;

    /// Apply `events` through `session` (a write transaction). Returns the session so the
    /// caller can commit or roll back.
    fn handle(&self, session: SqlSession, events: &[StoredEvent]) -> (SqlSession, Result<(), HandleFailure>);

    /// Answer the query `name` through `session` (read-only).
    fn query(&self, session: SqlSession, name: &str, params: &[(String, String)]) -> Result<QueryOutcome, PluginFault>;

    /// May its events be applied again (a rebuild, a new schema version)? Not when handling has
    /// effects outside the read store (a reactor's messages): those never replay.
    fn replayable(&self) -> bool {
        true
    }
}
