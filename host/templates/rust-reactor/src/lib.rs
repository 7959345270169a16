//! The {{snake}} reactor: for every event it subscribes to, it sends a message to channel
//! `{{snake}}`, keyed by the event's aggregate id (one aggregate's messages arrive in order).
//!
//! What `react` sends is recorded in the host's outbox in the same transaction as the reactor's
//! position, so it is sent exactly once per event; the host then delivers it at least once, with
//! a stable `Idempotency-Key`. Which channel `{{snake}}` is (a webhook, a Kafka topic) is the
//! operator's choice: the host refuses the reactor until `[channels.{{snake}}]` is configured.
//! A reactor has no files, sockets, clock or environment: it only sends through the outbox.

use serde_json::{Value, json};
use sluice_sdk::reactor::{Level, log};
use sluice_sdk::{Outbox, Reactor, ReactorManifest, Start, StoredEvent};

/// The channel its messages go to.
pub const CHANNEL: &str = "{{snake}}";

pub struct {{Pascal}};

impl Reactor for {{Pascal}} {
    fn manifest() -> ReactorManifest {
        ReactorManifest {
            name: "{{snake}}".into(),
            // The event types it reacts to: replace with your aggregates' events.
            subscriptions: vec!["{{Pascal}}Requested".into()],
            channels: vec![CHANNEL.into()],
            // A new reactor starts at the log's head: history is not sent.
            start: Start::Now,
        }
    }

    fn react(event: &StoredEvent, outbox: &mut Outbox) -> Result<(), String> {
        let data: Value =
            serde_json::from_str(&event.data).map_err(|e| format!("{} is not JSON: {e}", event.event_type))?;
        if !data.is_object() {
            return Err(format!("{} at {} is not a JSON object", event.event_type, event.global_position));
        }
        let message = json!({
            "id": event.aggregate_id,
            "event": event.event_type,
            "position": event.global_position,
            "data": data,
        });
        log(Level::Debug, &format!("sending {} of {}", event.event_type, event.aggregate_id));
        outbox.send(CHANNEL, &event.aggregate_id, &message);
        Ok(())
    }
}

sluice_sdk::export_reactor!({{Pascal}});
