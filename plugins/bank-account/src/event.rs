//! What happens to a bank account: the seed's four events, under the seed's type names.
//!
//! The Rust variants read in the past tense (`AccountOpened`); the serde names are the stable
//! event types stored and published (`AccountOpenedEvent`), with the seed's camelCase fields.
//!
//! Schema versions: `AccountOpenedEvent` is at version 2, which renamed the seed's `createdDate`
//! to `openedAt` (what the time is: when the account was opened, not when a record was
//! created). Version 1 events, already stored, are upcast by renaming the field back on the way
//! out; the store keeps them as written. The other three events are at version 1.

use serde::{Deserialize, Serialize};
use sluice_sdk::DomainEvent;

use crate::command::AccountType;
use crate::money::Money;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum BankAccountEvent {
    #[serde(rename = "AccountOpenedEvent")]
    AccountOpened {
        id: String,
        account_holder: String,
        account_type: AccountType,
        /// RFC 3339 time the host received the command. `createdDate` in schema version 1.
        opened_at: String,
        opening_balance: Money,
    },
    #[serde(rename = "FundsDepositedEvent")]
    FundsDeposited { id: String, amount: Money },
    #[serde(rename = "FundsWithdrawnEvent")]
    FundsWithdrawn { id: String, amount: Money },
    #[serde(rename = "AccountClosedEvent")]
    AccountClosed { id: String },
}

/// The event type whose shape changed.
const OPENED: &str = "AccountOpenedEvent";

impl DomainEvent for BankAccountEvent {
    fn current_schema_version(event_type: &str) -> u32 {
        if event_type == OPENED { 2 } else { 1 }
    }

    fn oldest_schema_version(_event_type: &str) -> u32 {
        1
    }

    fn upcast(event_type: &str, schema_version: u32, data: String) -> Result<String, String> {
        match (event_type, schema_version) {
            (OPENED, 1) => opened_v1_to_v2(&data),
            _ => Ok(data),
        }
    }
}

/// `AccountOpenedEvent` 1 → 2: `createdDate` becomes `openedAt`; the other fields, amounts
/// included, keep their exact JSON text.
fn opened_v1_to_v2(data: &str) -> Result<String, String> {
    let mut fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(data).map_err(|e| format!("not a JSON object: {e}"))?;
    let created = fields.remove("createdDate").ok_or("schema version 1 has a createdDate")?;
    fields.insert("openedAt".to_owned(), created);
    serde_json::to_string(&fields).map_err(|e| e.to_string())
}
