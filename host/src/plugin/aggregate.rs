//! The aggregate contract: what the command dispatcher needs of an aggregate plugin. Wasm
//! components implement it ([`crate::runtime::aggregate`]), and so does the same logic compiled
//! natively in the benchmarks.

use super::{AggregateManifest, PluginFault};
use crate::event_store::{NewEvent, StoredEvent};

/// A command as the host received it.
#[derive(Debug, Clone)]
pub struct CommandInput {
    pub command_type: String,
    pub aggregate_id: String,
    /// JSON text of the body (an object).
    pub data: String,
    /// RFC 3339.
    pub issued_at: String,
    /// A UUID the plugin may use for ids it mints.
    pub fresh_id: String,
}

/// A refusal by the aggregate: the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    NotFound(String),
}

/// What an aggregate made of a command.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The state the command was decided on, when `events` were evolved into it: what the next
    /// command can start from. `None` when there were none: it is then the state given, which the
    /// caller holds already (`None` itself for an empty stream).
    pub state: Option<Vec<u8>>,
    /// The events to append, or why not.
    pub verdict: Result<Vec<NewEvent>, Refusal>,
    /// The state with the verdict's events applied, when the plugin worked it out (WIT 0.3.0's
    /// `execute`): what the next command starts from once they are appended, with nothing to
    /// evolve. `None` on a refusal, and for plugins that leave it to their next `execute`.
    pub after: Option<Vec<u8>>,
}

/// The decide/evolve contract the dispatcher runs. The dispatcher awaits
/// [`Self::execute_async`]; the synchronous calls are for threads that may block.
pub trait AggregateLogic: Send + Sync + 'static {
    fn manifest(&self) -> &AggregateManifest;

    /// Evolve `state` (an earlier result of this plugin, `None` for the empty stream) with
    /// `events`, then decide on `command` and, where the plugin does, apply what it decided
    /// ([`Decision::after`]), in one sandbox.
    fn execute(
        &self,
        state: Option<&[u8]>,
        events: &[StoredEvent],
        command: &CommandInput,
    ) -> Result<Decision, PluginFault>;

    /// [`Self::execute`] as a future the dispatcher awaits on its async worker. A sandboxed
    /// plugin yields while it runs (see [`crate::runtime::aggregate`]); logic compiled into the
    /// host (trusted, as in the benchmarks) just runs.
    fn execute_async<'a>(
        &'a self,
        state: Option<&'a [u8]>,
        events: &'a [StoredEvent],
        command: &'a CommandInput,
    ) -> futures::future::BoxFuture<'a, Result<Decision, PluginFault>> {
        Box::pin(std::future::ready(self.execute(state, events, command)))
    }

    /// Replay `history` and render the state as JSON text.
    fn render(&self, history: &[StoredEvent]) -> Result<String, PluginFault>;

    /// Bring `events` (of this aggregate type, not at their type's current schema version) to
    /// the current version: one per event, in order. Called only through [`super::upcast`],
    /// which checks the answer, and only for plugins whose manifest declares schema versions;
    /// a plugin that declares none has no upcaster.
    fn upcast(&self, events: &[StoredEvent]) -> Result<Vec<NewEvent>, PluginFault> {
        let _ = events;
        Err(PluginFault::Contract {
            plugin: self.manifest().aggregate_type.clone(),
            detail: "has no upcaster for its older events".into(),
        })
    }
}
