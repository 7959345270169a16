//! The commands a bank account accepts, as the seed's clients send them.
//!
//! Each variant name is the command type and its fields are the JSON body of the seed's route
//! (`PUT /api/v1/depositFunds/{id}` with `{"amount": 10.5}` is `DepositFunds`). Reading the body
//! already refuses ill-typed input — an unknown account type, an amount that is not a number or
//! has more than two decimal places — as invalid; the business rules live in [`crate::account`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::money::Money;

/// Its JSON Schema (schemars) is each command's body schema in the manifest, which the host
/// documents in its OpenAPI document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all_fields = "camelCase")]
pub enum BankAccountCommand {
    /// Start a new account. An absent `openingBalance` is 0, as it was in the seed.
    OpenAccount {
        account_holder: String,
        account_type: AccountType,
        #[serde(default)]
        opening_balance: Money,
    },
    DepositFunds {
        amount: Money,
    },
    WithdrawFunds {
        amount: Money,
    },
    /// Has no body; `{}` names no fields.
    CloseAccount {},
}

/// The kinds of account the seed offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountType {
    Savings,
    Current,
}
