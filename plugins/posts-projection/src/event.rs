//! The payloads of the post events, as the `post` aggregate writes them.
//!
//! The projection does not depend on the aggregate crate: it links the projection world only,
//! and reads the stored JSON, which is the contract between the two. Times are RFC 3339 text;
//! comment ids are the aggregate's lower-case UUIDs.

use serde::Deserialize;

/// `PostCreatedEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostCreated {
    pub id: String,
    pub author: String,
    pub message: String,
    pub date_posted: String,
}

/// `MessageUpdatedEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageUpdated {
    pub id: String,
    pub message: String,
}

/// `PostLikedEvent` and `PostRemovedEvent`: only the post's id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PostOnly {
    pub id: String,
}

/// `CommentAddedEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentAdded {
    pub id: String,
    pub comment_id: String,
    pub comment: String,
    pub username: String,
    pub comment_date: String,
}

/// `CommentUpdatedEvent`. Its `username` (the editor, who may spell their name in another case)
/// is not read: the comment keeps its author's name, as in the seed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentUpdated {
    pub id: String,
    pub comment_id: String,
    pub comment: String,
    pub edit_date: String,
}

/// `CommentRemovedEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentRemoved {
    pub id: String,
    pub comment_id: String,
}
