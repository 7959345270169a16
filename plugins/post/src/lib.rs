//! The seed's social media post (the original .NET services) as a Sluice aggregate plugin.
//!
//! Same routes (matched case-insensitively, as ASP.NET did), bodies, event names and refusals
//! as the seed; comment ids are minted from the host's fresh id, so deciding stays pure.
//!
//! - [`command`]: what clients ask for, read straight from the seed's JSON bodies.
//! - [`event`]: what happened, under the seed's event type names.
//! - [`aggregate`]: the aggregate — state, rules, and the manifest the host mounts.
//! - [`comment_id`]: the UUID that names a comment, compared as the seed's `Guid` was.

pub mod aggregate;
pub mod command;
pub mod comment_id;
pub mod event;

pub use aggregate::{Comment, CreatedPost, Post};
pub use command::PostCommand;
pub use comment_id::{CommentId, CommentIdError};
pub use event::PostEvent;

// Only the component exports it (WIT 0.2.0, for the commands' body schemas): the export names
// (`sluice:plugin/aggregate@0.2.0#decide`) are not valid symbols for a native linker, and
// native builds only run the tests. It stays on 0.2.0 (a command is an evolve and a decide)
// while the bank account moved to 0.3.0, so the end-to-end suite runs an aggregate of each.
sluice_sdk::export_upcasting_aggregate!(Post);
