//! What happens to a post: the seed's seven events, under the seed's type names.
//!
//! The Rust variants read in the past tense (`PostCreated`); the serde names are the stable
//! event types stored and published (`PostCreatedEvent`), with the seed's camelCase fields.
//! Every event carries the post's `id`, as the seed's did. Times are RFC 3339 text: the time
//! the host received the command.

use serde::{Deserialize, Serialize};
use sluice_sdk::DomainEvent;

use crate::comment_id::CommentId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum PostEvent {
    #[serde(rename = "PostCreatedEvent")]
    PostCreated { id: String, author: String, message: String, date_posted: String },
    #[serde(rename = "MessageUpdatedEvent")]
    MessageUpdated { id: String, message: String },
    #[serde(rename = "PostLikedEvent")]
    PostLiked { id: String },
    #[serde(rename = "CommentAddedEvent")]
    CommentAdded { id: String, comment_id: CommentId, comment: String, username: String, comment_date: String },
    /// `username` is the editor as they spelled it, which may differ in case from the comment's
    /// author (the seed compared them ignoring case).
    #[serde(rename = "CommentUpdatedEvent")]
    CommentUpdated { id: String, comment_id: CommentId, comment: String, username: String, edit_date: String },
    #[serde(rename = "CommentRemovedEvent")]
    CommentRemoved { id: String, comment_id: CommentId },
    #[serde(rename = "PostRemovedEvent")]
    PostRemoved { id: String },
}

/// Every event is still at its first schema version: nothing to upcast.
impl DomainEvent for PostEvent {}
