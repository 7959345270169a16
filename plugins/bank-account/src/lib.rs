//! The seed's bank account (the original Java services) as a Sluice aggregate plugin.
//!
//! Same routes, bodies, event names and refusals as the seed, with exact money: amounts are
//! decimals with at most two fractional digits, never binary floating point.
//!
//! - [`command`]: what clients ask for, read straight from the seed's JSON bodies.
//! - [`event`]: what happened, under the seed's event type names.
//! - [`account`]: the aggregate — state, rules, and the manifest the host mounts.
//! - [`money`]: the exact amount type every command, event and balance uses.

pub mod account;
pub mod command;
pub mod event;
pub mod money;

pub use account::{Account, BankAccount};
pub use command::{AccountType, BankAccountCommand};
pub use event::BankAccountEvent;
pub use money::{Money, MoneyError};

// Only the component exports it: the export names (`sluice:plugin/aggregate@0.3.0#execute`)
// are not valid symbols for a native linker, and native builds only run the tests. WIT 0.3.0:
// the host upcasts the version 1 `AccountOpenedEvent`s already stored ([`event`]), and a
// command is one call that leaves the state after it in the host's cache.
sluice_sdk::export_executing_aggregate!(BankAccount);
