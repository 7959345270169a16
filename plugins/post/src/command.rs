//! The commands a post accepts, as the seed's clients send them.
//!
//! Each variant name is the command type and its fields are the JSON body of the seed's route
//! (`PUT /api/v1/addComment/{id}` with `{"comment": "...", "username": "..."}` is `AddComment`).
//! Reading the body already refuses ill-typed input — a missing or `null` field, a number where
//! text belongs, a comment id that is not a UUID — as invalid; the rules live in
//! [`crate::aggregate`]. Fields the seed did not know are ignored, as the seed ignored them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::comment_id::CommentId;

/// Its JSON Schema (schemars) is each command's body schema in the manifest, which the host
/// documents in its OpenAPI document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all_fields = "camelCase")]
pub enum PostCommand {
    /// Start a new post under the id the route minted.
    NewPost {
        author: String,
        message: String,
    },
    EditMessage {
        message: String,
    },
    /// Has no body; `{}` names no fields.
    LikePost {},
    /// Comment as `username`; the comment's id is minted from the command's fresh id.
    AddComment {
        comment: String,
        username: String,
    },
    /// Only the user who made the comment may edit it.
    EditComment {
        comment_id: CommentId,
        comment: String,
        username: String,
    },
    /// Only the user who made the comment may remove it.
    RemoveComment {
        comment_id: CommentId,
        username: String,
    },
    /// Only the post's author may delete it.
    DeletePost {
        username: String,
    },
}
