//! Parked deliveries as dead letters: a reactor's outbox message whose retries ran out is the
//! delivery worker's dead letter, as an event a consumer cannot apply is a consumer's. The
//! dead-letter routes, the dashboard and the CLI list both kinds side by side, each typed
//! (`kind`: `event` or `delivery`), and retry or drop either through the same routes.
//!
//! Ids stay apart by shape: an event letter's is a number (its row in `sluice_letters`), a
//! delivery letter's is [`PREFIX`] and the message id (`delivery:<reactor>:<position>:<index>`),
//! which names its reactor. A retry sends the message back to pending (the worker delivers it
//! under the same id, its key's later messages after it); a drop marks it `dropped` with who and
//! when — the outbox keeps the row as the audit — and its key's later messages go on.

use serde::{Deserialize, Serialize};

use super::{Admin, AdminError};
use crate::plugin::Plugin;
use crate::reactor::outbox::{self, Message, Outbox};
use crate::read_store::{ReadStore, ReadStoreError};

/// What starts the id of a delivery letter.
pub const PREFIX: &str = "delivery:";

/// Messages of one reactor a listing reads at most.
const LISTING_LIMIT: u32 = 1000;

/// A parked (or dropped) outbox message, listed with the dead letters.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryLetter {
    /// Always `delivery` (event letters say `event`).
    pub kind: String,
    /// `delivery:` and the message id: what the retry and drop routes take.
    pub id: String,
    /// The reactor that sent it.
    pub consumer: String,
    /// The message's id, its idempotency key on every delivery.
    pub message_id: String,
    pub channel: String,
    pub key: String,
    /// The global position of the event that sent it.
    pub position: u64,
    /// The message's JSON payload, as text.
    pub payload: String,
    /// `parked` or `dropped`.
    pub state: String,
    /// Calls made before it was parked.
    pub attempts: u32,
    /// The last failure.
    pub reason: String,
    /// When the reactor recorded it (none on rows older than the times).
    pub recorded_at: Option<String>,
    /// When its retries ran out.
    pub parked_at: Option<String>,
    /// Who dropped it (dropped letters only).
    pub dropped_by: Option<String>,
    /// When it was dropped.
    pub dropped_at: Option<String>,
}

impl DeliveryLetter {
    fn from_message(message: Message) -> Self {
        Self {
            kind: "delivery".into(),
            id: format!("{PREFIX}{}", message.id),
            consumer: message.reactor,
            message_id: message.id,
            channel: message.channel,
            key: message.key,
            position: message.position,
            payload: message.payload,
            state: message.state,
            attempts: message.attempts,
            reason: message.last_error.unwrap_or_default(),
            recorded_at: message.recorded_at,
            parked_at: message.parked_at,
            dropped_by: message.dropped_by,
            dropped_at: message.dropped_at,
        }
    }
}

/// The delivery letters in `state` (parked or dropped) of `reactors`, oldest first per reactor.
/// A name without an outbox (not a reactor, or never started) has none; an outbox of the first
/// shape (a stopped host not started since the upgrade) is brought to the current one first.
pub async fn delivery_letters(
    store: &ReadStore,
    reactors: &[String],
    state: &str,
) -> Result<Vec<DeliveryLetter>, ReadStoreError> {
    let mut letters = Vec::new();
    for reactor in reactors {
        let outbox = Outbox::new(store.clone(), reactor);
        let messages = match outbox.in_state(state, LISTING_LIMIT).await {
            Ok(messages) => messages,
            Err(e) if !outbox.exists().await? => {
                tracing::debug!(reactor, "no outbox to list: {e}");
                continue;
            }
            Err(_) => {
                outbox.migrate().await?;
                outbox.in_state(state, LISTING_LIMIT).await?
            }
        };
        letters.extend(messages.into_iter().map(DeliveryLetter::from_message));
    }
    Ok(letters)
}

/// The reactor and message id a delivery letter id names, or `None` when `id` is not one.
pub fn parse_id(id: &str) -> Option<(&str, &str)> {
    let message = id.strip_prefix(PREFIX)?;
    let (reactor, _) = message.split_once(':')?;
    Some((reactor, message))
}

impl Admin {
    /// The loaded reactors, or the one named `consumer` (none when it is not a reactor).
    fn reactor_names(&self, consumer: Option<&str>) -> Vec<String> {
        self.registry()
            .plugins()
            .into_iter()
            .filter(|loaded| matches!(loaded.plugin, Plugin::Reactor(_)))
            .map(|loaded| loaded.info.name.clone())
            .filter(|name| consumer.is_none_or(|c| c == name))
            .collect()
    }

    /// Parked deliveries of the loaded reactors (of `consumer` alone when given).
    pub async fn delivery_letters(&self, consumer: Option<&str>) -> Result<Vec<DeliveryLetter>, AdminError> {
        let names = self.reactor_names(consumer);
        delivery_letters(&self.parts().read_store, &names, outbox::PARKED).await.map_err(AdminError::Outbox)
    }

    /// Dropped deliveries of the loaded reactors (of `consumer` alone when given).
    pub async fn dropped_deliveries(&self, consumer: Option<&str>) -> Result<Vec<DeliveryLetter>, AdminError> {
        let names = self.reactor_names(consumer);
        delivery_letters(&self.parts().read_store, &names, outbox::DROPPED).await.map_err(AdminError::Outbox)
    }

    /// The parked delivery `id` (`delivery:<message id>`) and its outbox.
    async fn parked_delivery(&self, id: &str) -> Result<(Outbox, Message), AdminError> {
        let unknown = || AdminError::UnknownDeliveryLetter(id.to_owned());
        let (reactor, message_id) = parse_id(id).ok_or_else(unknown)?;
        if self.reactor_names(Some(reactor)).is_empty() {
            return Err(unknown());
        }
        let outbox = Outbox::new(self.parts().read_store.clone(), reactor);
        let message = outbox.get(message_id).await.map_err(AdminError::Outbox)?.ok_or_else(unknown)?;
        if message.state != outbox::PARKED {
            return Err(AdminError::MessageNotParked { id: id.to_owned(), state: message.state });
        }
        Ok((outbox, message))
    }

    /// Send the parked delivery `id` again: it is pending, its attempts start over, and the
    /// worker delivers it under the same message id (its key's later messages after it).
    pub async fn retry_delivery(&self, id: &str) -> Result<DeliveryLetter, AdminError> {
        let (outbox, message) = self.parked_delivery(id).await?;
        if !outbox.retry(&message.id).await.map_err(AdminError::Outbox)? {
            return Err(AdminError::MessageNotParked { id: id.to_owned(), state: "no longer parked".into() });
        }
        let retried = Message { state: outbox::PENDING.into(), attempts: 0, parked_at: None, ..message };
        Ok(DeliveryLetter::from_message(retried))
    }

    /// Drop the parked delivery `id`: it is never sent, the drop is recorded with `by` and the
    /// time on its row, and its key's later messages go on.
    pub async fn drop_delivery(&self, id: &str, by: &str) -> Result<DeliveryLetter, AdminError> {
        let (outbox, message) = self.parked_delivery(id).await?;
        let at = crate::read_store::dead_letters::now();
        if !outbox.drop_parked(&message.id, by, &at).await.map_err(AdminError::Outbox)? {
            return Err(AdminError::MessageNotParked { id: id.to_owned(), state: "no longer parked".into() });
        }
        tracing::warn!(reactor = %message.reactor, id = %message.id, by, "parked delivery dropped by an operator");
        let dropped =
            Message { state: outbox::DROPPED.into(), dropped_by: Some(by.to_owned()), dropped_at: Some(at), ..message };
        Ok(DeliveryLetter::from_message(dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_name_their_reactor_and_event_ids_are_not_theirs() {
        assert_eq!(parse_id("delivery:notifier:12:0"), Some(("notifier", "notifier:12:0")));
        assert_eq!(parse_id("delivery:notifier:r2:12:0"), Some(("notifier", "notifier:r2:12:0")));
        assert_eq!(parse_id("42"), None);
        assert_eq!(parse_id("delivery:"), None);
        assert_eq!(parse_id("notifier:12:0"), None);
    }
}
