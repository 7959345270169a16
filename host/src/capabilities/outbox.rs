//! The `outbox` capability: the host side of a reactor's `send`. Sends are only collected here,
//! in call order; the reactor runner ([`crate::reactor`]) writes them to the outbox inside the
//! transaction that advances the reactor's position, so they are recorded exactly once, or not
//! at all when the call fails.

use crate::bindings::outbox::{self as wit, SendError};

/// One message a reactor sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub channel: String,
    pub key: String,
    /// JSON text.
    pub payload: String,
}

/// The capability's context in a store: the channels the reactor declared and what it sent.
#[derive(Default)]
pub struct OutboxCapability {
    channels: Vec<String>,
    sent: Vec<Sent>,
}

impl OutboxCapability {
    /// Open the outbox to `channels` (the reactor's declared ones) for this call.
    pub fn grant(&mut self, channels: &[String]) {
        self.channels = channels.to_vec();
        self.sent.clear();
    }

    /// What was sent since the last take.
    pub fn take(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }
}

impl wit::Host for OutboxCapability {
    fn send(&mut self, channel: String, key: String, payload: String) -> Result<(), SendError> {
        if !self.channels.contains(&channel) {
            return Err(SendError::UndeclaredChannel(format!(
                "{channel:?} is not among the reactor's declared channels ({})",
                self.channels.join(", ")
            )));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&payload) {
            return Err(SendError::InvalidPayload(format!("not JSON: {e}")));
        }
        self.sent.push(Sent { channel, key, payload });
        Ok(())
    }
}
