//! The payloads of the bank account events, as the `bank-account` aggregate writes them.
//!
//! Only the fields the read models keep are read; amounts are [`Amount`]s, taken from the JSON
//! number's exact text. The projections do not depend on the aggregate crate: they link the
//! projection world only, and read the stored JSON, which is the contract between the two.
//! [`AccountChange::read`] turns an event into what it does to an account's row.

use serde::Deserialize;
use sluice_projection_sdk::Event;

use crate::amount::Amount;

/// `AccountOpenedEvent` at its current schema version, 2. Version 1 (`createdDate` for
/// `openedAt`) never reaches a projection: the host has the aggregate upcast it first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOpened {
    pub id: String,
    pub account_holder: String,
    pub account_type: String,
    /// RFC 3339: when the account was opened (the read model's `creationDate`).
    pub opened_at: String,
    pub opening_balance: Amount,
}

/// `FundsDepositedEvent` and `FundsWithdrawnEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FundsMoved {
    pub id: String,
    pub amount: Amount,
}

/// `AccountClosedEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountClosed {
    pub id: String,
}

/// What an event does to an account's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// A new row.
    Opened(AccountOpened),
    /// The balance changes by `amount`: positive for a deposit, negative for a withdrawal.
    Moved { id: String, amount: Amount },
    /// The row goes.
    Closed { id: String },
}

impl AccountChange {
    /// Reads one of the four bank account events; `None` for any other type.
    pub fn read(event: &Event) -> Result<Option<Self>, String> {
        let change = match event.event_type.as_str() {
            "AccountOpenedEvent" => Self::Opened(event.parse()?),
            "FundsDepositedEvent" => {
                let FundsMoved { id, amount } = event.parse()?;
                Self::Moved { id, amount }
            }
            "FundsWithdrawnEvent" => {
                let FundsMoved { id, amount } = event.parse()?;
                Self::Moved { id, amount: amount.negated() }
            }
            "AccountClosedEvent" => {
                let AccountClosed { id } = event.parse()?;
                Self::Closed { id }
            }
            _ => return Ok(None),
        };
        Ok(Some(change))
    }
}
