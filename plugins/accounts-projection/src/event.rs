//! The payloads of the bank account events, as the `bank-account` aggregate writes them.
//!
//! Only the fields the read model keeps are read; amounts are [`Amount`]s, taken from the JSON
//! number's exact text. The projection does not depend on the aggregate crate: it links the
//! projection world only, and reads the stored JSON, which is the contract between the two.

use serde::Deserialize;

use crate::amount::Amount;

/// `AccountOpenedEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOpened {
    pub id: String,
    pub account_holder: String,
    pub account_type: String,
    /// RFC 3339.
    pub created_date: String,
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
