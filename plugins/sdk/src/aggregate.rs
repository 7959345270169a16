//! The aggregate contract: decide on commands, evolve from events (cqrs-es style).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::manifest::Manifest;

/// A domain aggregate. `Default` is the state of a stream that has not started.
///
/// Commands and events are externally tagged serde enums: the variant name is the command or
/// event type (`{"OpenAccount": {...}}`), so the JSON body of a request is the variant's data.
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    type Command: Serialize + DeserializeOwned;
    type Event: DomainEvent;

    /// What the plugin declares to the host.
    fn manifest() -> Manifest;

    /// Decide what a command does. Pure: time and fresh ids come in `ctx`.
    fn handle(&self, command: Self::Command, ctx: &CommandContext) -> Result<Vec<Self::Event>, CommandError>;

    /// Apply one event to the state. Events are facts: this cannot refuse them.
    fn apply(&mut self, event: Self::Event);
}

/// The event types of a domain, and how their shapes changed.
///
/// Each event type has a current schema version (what new events are written with) and may read
/// older ones through [`Self::upcast`]. Under [`export_executing_aggregate!`](crate::export_executing_aggregate)
/// (WIT 0.3.0) and [`export_upcasting_aggregate!`](crate::export_upcasting_aggregate) (0.2.0)
/// the plugin declares both to the host, which hands every older event to the
/// upcaster before anything (evolve, a projection) sees it; under the 0.1.0
/// [`export_aggregate!`](crate::export_aggregate) the plugin upcasts inside its own evolve only.
pub trait DomainEvent: Serialize + DeserializeOwned {
    /// The schema version new events of `event_type` are written with, and older ones upcast to.
    fn current_schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }

    /// The oldest schema version of `event_type` [`Self::upcast`] can read.
    fn oldest_schema_version(event_type: &str) -> u32 {
        Self::current_schema_version(event_type)
    }

    /// Turn the JSON of an older schema version of `event_type` into the current one. Called
    /// only with versions from the oldest to the current (the current one included: return it
    /// as it is).
    fn upcast(event_type: &str, schema_version: u32, data: String) -> Result<String, String> {
        let _ = (event_type, schema_version);
        Ok(data)
    }
}

/// What the host tells a command besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub aggregate_id: String,
    /// RFC 3339 time the host received the command.
    pub issued_at: String,
    /// A fresh UUID for ids the command mints.
    pub fresh_id: String,
}

/// Why a command produced no events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Malformed or ill-typed input.
    Invalid(String),
    /// A business rule refused the command.
    Rejected(String),
    /// Something the command names does not exist.
    NotFound(String),
}

impl CommandError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected(message.into())
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) => write!(f, "invalid: {m}"),
            Self::Rejected(m) => write!(f, "rejected: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
        }
    }
}

impl std::error::Error for CommandError {}

/// An event a command produced, as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u32,
    pub data: String,
}

/// An event as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
    pub global_position: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub data: String,
    pub recorded_at: String,
}
