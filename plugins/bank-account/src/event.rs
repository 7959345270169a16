//! What happens to a bank account: the seed's four events, under the seed's type names.
//!
//! The Rust variants read in the past tense (`AccountOpened`); the serde names are the stable
//! event types stored and published (`AccountOpenedEvent`), with the seed's camelCase fields.

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
        /// RFC 3339 time the host received the command.
        created_date: String,
        opening_balance: Money,
    },
    #[serde(rename = "FundsDepositedEvent")]
    FundsDeposited { id: String, amount: Money },
    #[serde(rename = "FundsWithdrawnEvent")]
    FundsWithdrawn { id: String, amount: Money },
    #[serde(rename = "AccountClosedEvent")]
    AccountClosed { id: String },
}

/// Every event is still at its first schema version: nothing to upcast.
impl DomainEvent for BankAccountEvent {}
