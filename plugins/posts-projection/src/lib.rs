//! The seed's social media post read model (the .NET query service) as a Sluice projection.
//!
//! Posts in the `posts` table and their comments in `comments`, kept from the seven post
//! events; a removed post takes its comments with it. The seed's `postLookup` routes (matched
//! ignoring case, as ASP.NET did) answer from them, and it declares the seed's shared
//! `restoreReadDb` rebuild route.
//!
//! - [`event`]: the event payloads the projection reads, under the seed's field names.
//! - [`posts`]: the projection — tables, event handlers, queries and routes.

pub mod event;
pub mod posts;

pub use posts::Posts;

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(Posts);
