//! The bank account aggregate: the seed's rules as pure decide (`handle`) and evolve (`apply`).
//!
//! A stream that has not started is `BankAccount { account: None }`; only `OpenAccount` may
//! start one, and any other command there is "not found". Refusals follow the seed's wording.
//! Amounts that are zero or negative are business refusals (`Rejected`), as the seed answered
//! them with its 400 business errors; input that cannot be read at all is `Invalid`.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Aggregate, CommandContext, CommandError, CommandSpec, Manifest, Method, Route};

use crate::command::{AccountType, BankAccountCommand};
use crate::event::BankAccountEvent;
use crate::money::Money;

/// The state of one bank account stream; renders as the account itself, or `null` before it
/// is opened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BankAccount {
    pub account: Option<Account>,
}

/// An opened account, as `GET /api/aggregates/BankAccount/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub account_holder: String,
    pub account_type: AccountType,
    pub balance: Money,
    pub active: bool,
    pub created_date: String,
}

impl Aggregate for BankAccount {
    type Command = BankAccountCommand;
    type Event = BankAccountEvent;

    fn manifest() -> Manifest {
        Manifest {
            aggregate_type: "BankAccount".to_owned(),
            commands: vec![
                CommandSpec::creating("OpenAccount"),
                CommandSpec::updating("DepositFunds"),
                CommandSpec::updating("WithdrawFunds"),
                CommandSpec::updating("CloseAccount"),
            ],
            events: ["AccountOpenedEvent", "FundsDepositedEvent", "FundsWithdrawnEvent", "AccountClosedEvent"]
                .map(String::from)
                .to_vec(),
            routes: vec![
                Route::new(Method::Post, "/api/v1/openBankAccount", "OpenAccount")
                    .with_new_id()
                    .status(201)
                    .message("Bank account creation request completed successfully!"),
                Route::new(Method::Put, "/api/v1/depositFunds/{id}", "DepositFunds")
                    .message("Deposit funds request completed successfully!"),
                Route::new(Method::Put, "/api/v1/withdrawFunds/{id}", "WithdrawFunds")
                    .message("Withdraw funds request completed successfully!"),
                Route::new(Method::Delete, "/api/v1/closeBankAccount/{id}", "CloseAccount")
                    .message("Bank account closure request successfully completed!"),
            ],
            topic: "BankAccountEvents".to_owned(),
        }
        .with_command_schemas::<BankAccountCommand>()
    }

    fn handle(&self, command: BankAccountCommand, ctx: &CommandContext) -> Result<Vec<BankAccountEvent>, CommandError> {
        let event = match (&self.account, command) {
            (None, BankAccountCommand::OpenAccount { account_holder, account_type, opening_balance }) => {
                open(ctx, account_holder, account_type, opening_balance)
            }
            (None, _) => Err(CommandError::not_found(format!(
                "Incorrect account ID provided, no bank account {} exists!",
                ctx.aggregate_id
            ))),
            (Some(account), BankAccountCommand::OpenAccount { .. }) => {
                Err(CommandError::rejected(format!("A bank account with ID {} has already been opened!", account.id)))
            }
            (Some(account), BankAccountCommand::DepositFunds { amount }) => account.deposit(amount),
            (Some(account), BankAccountCommand::WithdrawFunds { amount }) => account.withdraw(amount),
            (Some(account), BankAccountCommand::CloseAccount {}) => account.close(),
        }?;
        Ok(vec![event])
    }

    fn apply(&mut self, event: BankAccountEvent) {
        match event {
            BankAccountEvent::AccountOpened { id, account_holder, account_type, opened_at, opening_balance } => {
                // The state keeps the seed's `createdDate`.
                self.account = Some(Account {
                    id,
                    account_holder,
                    account_type,
                    balance: opening_balance,
                    active: true,
                    created_date: opened_at,
                });
            }
            // On a stream never opened, any other event contradicts `handle`; events are facts
            // and cannot be refused, so there is nothing to change.
            event => {
                if let Some(account) = &mut self.account {
                    account.apply(event);
                }
            }
        }
    }
}

fn open(
    ctx: &CommandContext,
    account_holder: String,
    account_type: AccountType,
    opening_balance: Money,
) -> Result<BankAccountEvent, CommandError> {
    if account_holder.trim().is_empty() {
        return Err(CommandError::invalid("The account holder is required and cannot be blank!"));
    }
    if opening_balance.is_negative() {
        return Err(CommandError::rejected("The opening balance cannot be negative!"));
    }
    Ok(BankAccountEvent::AccountOpened {
        id: ctx.aggregate_id.clone(),
        account_holder,
        account_type,
        opened_at: ctx.issued_at.clone(),
        opening_balance,
    })
}

impl Account {
    fn deposit(&self, amount: Money) -> Result<BankAccountEvent, CommandError> {
        if !self.active {
            return Err(CommandError::rejected("Funds cannot be deposited into a closed account!"));
        }
        if !amount.is_positive() {
            return Err(CommandError::rejected("The deposit amount must be greater than 0!"));
        }
        if self.balance.checked_add(amount).is_none() {
            return Err(CommandError::rejected(format!("Deposit declined, the balance cannot exceed {}!", Money::MAX)));
        }
        Ok(BankAccountEvent::FundsDeposited { id: self.id.clone(), amount })
    }

    fn withdraw(&self, amount: Money) -> Result<BankAccountEvent, CommandError> {
        if !self.active {
            return Err(CommandError::rejected("Funds cannot be withdrawn from a closed account!"));
        }
        if !amount.is_positive() {
            return Err(CommandError::rejected("The withdrawal amount must be greater than 0!"));
        }
        if amount > self.balance {
            return Err(CommandError::rejected("Withdrawal declined, insufficient funds!"));
        }
        Ok(BankAccountEvent::FundsWithdrawn { id: self.id.clone(), amount })
    }

    fn close(&self) -> Result<BankAccountEvent, CommandError> {
        if !self.active {
            return Err(CommandError::rejected("The bank account has already been closed!"));
        }
        Ok(BankAccountEvent::AccountClosed { id: self.id.clone() })
    }

    fn apply(&mut self, event: BankAccountEvent) {
        // `handle` keeps every balance within `Money`'s bounds, so the fallbacks are never taken.
        match event {
            BankAccountEvent::AccountOpened { .. } => {} // applied by `BankAccount::apply`
            BankAccountEvent::FundsDeposited { amount, .. } => {
                self.balance = self.balance.checked_add(amount).unwrap_or(Money::MAX);
            }
            BankAccountEvent::FundsWithdrawn { amount, .. } => {
                self.balance = self.balance.checked_sub(amount).unwrap_or(Money::ZERO);
            }
            BankAccountEvent::AccountClosed { .. } => self.active = false,
        }
    }
}
