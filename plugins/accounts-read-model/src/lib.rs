//! What the bank account read models share: the `accounts` projection and the test plugin that
//! replaces it with a later schema (`accounts-projection-v2`).
//!
//! - [`event`]: the event payloads the projections read, under the seed's field names, and
//!   what each event does to an account's row.
//! - [`amount`]: exact decimal text for balances, read from JSON numbers without floats.
//! - [`lookup`]: the seed's `bankAccountLookup` routes and queries, and its account JSON.

pub mod amount;
pub mod event;
pub mod lookup;

pub use amount::Amount;
pub use event::AccountChange;
