//! The seed's bank account read model (the Java query service) as a Sluice projection.
//!
//! One row per open account in the `accounts` table, kept from the four bank account events; a
//! closed account disappears, as in the seed. The seed's `bankAccountLookup` routes answer from
//! it, and it declares the seed's shared `restoreReadDb` rebuild route.
//!
//! - [`event`]: the event payloads the projection reads, under the seed's field names.
//! - [`amount`]: exact decimal text for balances, read from JSON numbers without floats.
//! - [`accounts`]: the projection — tables, event handlers, queries and routes.

pub mod accounts;
pub mod amount;
pub mod event;

pub use accounts::Accounts;
pub use amount::Amount;

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(Accounts);
