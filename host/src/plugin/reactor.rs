//! The reactor contract: what the host needs of a reactor plugin — its manifest (name,
//! subscriptions, the channels it sends to, where a new one starts) and `handle`, which turns
//! events into messages without doing any I/O itself. The Wasm implementation lives in
//! [`crate::runtime::reactor`]; the runner that records its messages in the outbox and delivers
//! them lives in [`crate::reactor`].

use super::HandleFailure;
use crate::capabilities::outbox::Sent;
use crate::event_store::StoredEvent;

/// Where a reactor met for the first time starts reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// The log's head at its first load: history is never sent.
    Now,
    /// The log's first event.
    Beginning,
}

/// What a reactor declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactorManifest {
    pub name: String,
    pub subscriptions: Vec<String>,
    /// The channels it may send to; each must be granted by the operator's configuration.
    pub channels: Vec<String>,
    pub start: StartAt,
}

impl ReactorManifest {
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("reactor name {:?}: use letters, digits, '-' and '_'", self.name));
        }
        if self.channels.is_empty() {
            return Err("a reactor declares at least one channel".into());
        }
        if self.subscriptions.is_empty() {
            return Err("a reactor subscribes to at least one event type".into());
        }
        Ok(())
    }
}

/// A message a reactor sent while handling the event at `position`; `index` orders the
/// messages of one event. Together they make the message's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub position: u64,
    pub index: u32,
    pub sent: Sent,
}

/// A reactor plugin. Calls are synchronous (made on a blocking thread).
pub trait ReactorLogic: Send + Sync + 'static {
    fn manifest(&self) -> &ReactorManifest;

    /// React to `events`, in order: every message sent, each tagged with the event that sent it;
    /// nothing when the call fails.
    fn handle(&self, events: &[StoredEvent]) -> Result<Vec<Outgoing>, HandleFailure>;
}
