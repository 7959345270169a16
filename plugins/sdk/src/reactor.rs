//! The reactor contract: turn events into messages for channels the operator grants, with no
//! I/O of its own. A reactor sees one event at a time and hands what it sends to an [`Outbox`];
//! the host records the messages with the reactor's position, in one transaction, and delivers
//! them afterwards (at least once, in order per key, each with a stable idempotency key).

use crate::aggregate::StoredEvent;

/// Where a new reactor starts reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the log's head when first loaded: history is not sent.
    Now,
    /// At the log's first event.
    Beginning,
}

/// What a reactor declares to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactorManifest {
    /// Unique among plugins; names its position.
    pub name: String,
    /// Event types it reacts to; others never reach it.
    pub subscriptions: Vec<String>,
    /// Channels it sends to; each must be granted by the operator (`[channels.NAME]`).
    pub channels: Vec<String>,
    pub start: Start,
}

/// One message sent to a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: String,
    /// Messages of one key are delivered in order.
    pub key: String,
    /// JSON text.
    pub payload: String,
}

/// What a reactor sends while it handles one event.
#[derive(Debug, Default)]
pub struct Outbox {
    sent: Vec<Message>,
}

impl Outbox {
    /// Send `payload` to `channel`, ordered with the other messages of `key`.
    pub fn send(&mut self, channel: &str, key: &str, payload: &serde_json::Value) {
        self.sent.push(Message { channel: channel.to_owned(), key: key.to_owned(), payload: payload.to_string() });
    }

    /// Everything sent, in order.
    pub fn into_sent(self) -> Vec<Message> {
        self.sent
    }
}

/// A reactor: pure — what it sends depends only on the event.
pub trait Reactor {
    fn manifest() -> ReactorManifest;

    /// React to one event. An error sends nothing for the event; the host retries it and
    /// dead-letters it when it keeps failing.
    fn react(event: &StoredEvent, outbox: &mut Outbox) -> Result<(), String>;
}

/// Log severity, for [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Write a line to the host's log under the plugin's name (rate-limited by the host). Natively
/// (tests) the line goes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings_reactor::sluice::plugin::log as wit;
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// The component glue of [`export_reactor!`](crate::export_reactor); plugin code does not call it.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm {
    use super::{Outbox, Reactor, Start};
    use crate::aggregate::StoredEvent;
    use crate::bindings_reactor::exports::sluice::plugin::reactor as wit;
    use crate::bindings_reactor::sluice::plugin::outbox;
    use crate::bindings_reactor::sluice::plugin::types::EventEnvelope;

    pub fn manifest<R: Reactor>() -> wit::Manifest {
        let m = R::manifest();
        wit::Manifest {
            name: m.name,
            subscriptions: m.subscriptions,
            channels: m.channels,
            start: match m.start {
                Start::Now => wit::StartAt::Now,
                Start::Beginning => wit::StartAt::Beginning,
            },
        }
    }

    pub fn handle<R: Reactor>(events: Vec<EventEnvelope>) -> Result<(), String> {
        for e in events {
            let event = StoredEvent {
                aggregate_type: e.aggregate_type,
                aggregate_id: e.aggregate_id,
                version: e.version,
                global_position: e.global_position,
                event_type: e.event_type,
                schema_version: e.schema_version,
                data: e.data,
                recorded_at: e.recorded_at,
            };
            let mut sent = Outbox::default();
            R::react(&event, &mut sent)?;
            for message in sent.into_sent() {
                outbox::send(&message.channel, &message.key, &message.payload).map_err(|e| match e {
                    outbox::SendError::UndeclaredChannel(m) | outbox::SendError::InvalidPayload(m) => m,
                })?;
            }
        }
        Ok(())
    }
}
