//! The seed's bank account read model (the Java query service) as a Sluice projection.
//!
//! One row per open account in the `accounts` table, kept from the four bank account events; a
//! closed account disappears, as in the seed. The seed's `bankAccountLookup` routes answer from
//! it, and it declares the seed's shared `restoreReadDb` rebuild route.
//!
//! - [`accounts`]: the projection — tables, event handlers, queries and routes.
//! - `accounts-read-model` (a library crate): the event payloads, exact amounts and the seed's
//!   lookup API, shared with the test plugin that replaces this one (`accounts-projection-v2`).

pub mod accounts;

pub use accounts::Accounts;

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(Accounts);
