//! The seed's notification consumer as a Sluice reactor: on every deposit and withdrawal it
//! sends `{"accountId", "event", "amount", "position"}` to channel `notifications`, keyed by
//! the account id (so one account's notifications arrive in order). The host delivers them at
//! least once, each with a stable `Idempotency-Key`; which channel `notifications` is (a
//! webhook, a Kafka topic) is the operator's choice (`[channels.notifications]`).

use serde_json::{Value, json};
use sluice_sdk::reactor::{Level, log};
use sluice_sdk::{Outbox, Reactor, ReactorManifest, Start, StoredEvent};

/// The channel notifications go to.
pub const CHANNEL: &str = "notifications";

pub struct AccountNotifier;

impl Reactor for AccountNotifier {
    fn manifest() -> ReactorManifest {
        ReactorManifest {
            name: "account-notifier".into(),
            subscriptions: vec!["FundsDepositedEvent".into(), "FundsWithdrawnEvent".into()],
            channels: vec![CHANNEL.into()],
            start: Start::Now,
        }
    }

    fn react(event: &StoredEvent, outbox: &mut Outbox) -> Result<(), String> {
        let data: Value =
            serde_json::from_str(&event.data).map_err(|e| format!("{} is not JSON: {e}", event.event_type))?;
        let Some(amount) = data.get("amount") else {
            return Err(format!("{} at {} has no amount", event.event_type, event.global_position));
        };
        let notification = json!({
            "accountId": event.aggregate_id,
            "event": event.event_type,
            "amount": amount,
            "position": event.global_position,
        });
        log(Level::Debug, &format!("notifying {} of {}", event.aggregate_id, event.event_type));
        outbox.send(CHANNEL, &event.aggregate_id, &notification);
        Ok(())
    }
}

sluice_sdk::export_reactor!(AccountNotifier);
