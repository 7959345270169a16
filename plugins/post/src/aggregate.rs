//! The post aggregate: the seed's rules as pure decide (`handle`) and evolve (`apply`).
//!
//! A stream that has not started is `Post { created: None }`; only `NewPost` may start one, and
//! any other command there is "not found". A deleted post stays in its stream, inactive, and
//! refuses every command (`Rejected`); that is checked first, as in the seed. Then:
//!
//! - Text a command must carry (author, message, comment, username) that is empty or only white
//!   space is invalid input (`Invalid`), in the seed's "The value of … cannot be null or empty"
//!   wording; a missing or `null` field is already invalid when the body is read. So a refusal
//!   about what the body holds is `Invalid`, one about the post or who asks is `Rejected`.
//!   The seed let an edited comment (and a new post) be blank; here neither may be.
//! - A comment id the post does not have (never added, or removed) is "not found"; the seed
//!   answered it with a 500 from its dictionary lookup.
//! - Only a comment's author may edit or remove it, and only the post's author may delete the
//!   post. Usernames are compared ignoring case, as the seed's `CurrentCultureIgnoreCase` did:
//!   here by Unicode lower-casing, character by character, with no culture's special rules, so
//!   look-alikes such as Turkish `ı` or long `ſ` never pass for `i` or `s`.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Aggregate, CommandContext, CommandError, CommandSpec, Manifest, Method, Route};

use crate::command::PostCommand;
use crate::comment_id::CommentId;
use crate::event::PostEvent;

/// The state of one post stream; renders as the post itself, or `null` before it is created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Post {
    pub created: Option<CreatedPost>,
}

/// A created post, as `GET /api/aggregates/Post/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedPost {
    pub id: String,
    pub author: String,
    pub message: String,
    pub date_posted: String,
    pub likes: u64,
    /// False once the post has been deleted.
    pub active: bool,
    /// The comments not removed, oldest first.
    pub comments: Vec<Comment>,
}

/// A comment on a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub comment_id: CommentId,
    /// Who made it, as they spelled it then.
    pub username: String,
    pub comment: String,
    /// When it was made or last edited, as the seed's read model kept it.
    pub comment_date: String,
    pub edited: bool,
}

impl Aggregate for Post {
    type Command = PostCommand;
    type Event = PostEvent;

    fn manifest() -> Manifest {
        Manifest {
            aggregate_type: "Post".to_owned(),
            commands: vec![
                CommandSpec::creating("NewPost"),
                CommandSpec::updating("EditMessage"),
                CommandSpec::updating("LikePost"),
                CommandSpec::updating("AddComment"),
                CommandSpec::updating("EditComment"),
                CommandSpec::updating("RemoveComment"),
                CommandSpec::updating("DeletePost"),
            ],
            events: [
                "PostCreatedEvent",
                "MessageUpdatedEvent",
                "PostLikedEvent",
                "CommentAddedEvent",
                "CommentUpdatedEvent",
                "CommentRemovedEvent",
                "PostRemovedEvent",
            ]
            .map(String::from)
            .to_vec(),
            // ASP.NET matched the seed's routes ignoring case; clients may rely on it.
            routes: vec![
                Route::new(Method::Post, "/api/v1/newPost", "NewPost")
                    .with_new_id()
                    .status(201)
                    .message("New post creation request completed successfully!")
                    .case_insensitive(),
                Route::new(Method::Put, "/api/v1/editMessage/{id}", "EditMessage")
                    .message("Edit message request completed successfully!")
                    .case_insensitive(),
                Route::new(Method::Put, "/api/v1/likePost/{id}", "LikePost")
                    .message("Like post request completed successfully!")
                    .case_insensitive(),
                Route::new(Method::Put, "/api/v1/addComment/{id}", "AddComment")
                    .message("Add comment request completed successfully!")
                    .case_insensitive(),
                Route::new(Method::Put, "/api/v1/editComment/{id}", "EditComment")
                    .message("Edit comment request completed successfully!")
                    .case_insensitive(),
                Route::new(Method::Delete, "/api/v1/removeComment/{id}", "RemoveComment")
                    .message("Remove comment request completed successfully!")
                    .case_insensitive(),
                Route::new(Method::Delete, "/api/v1/deletePost/{id}", "DeletePost")
                    .message("Delete post request completed successfully!")
                    .case_insensitive(),
            ],
            topic: "SocialMediaPostEvents".to_owned(),
        }
        .with_command_schemas::<PostCommand>()
    }

    fn handle(&self, command: PostCommand, ctx: &CommandContext) -> Result<Vec<PostEvent>, CommandError> {
        let event = match (&self.created, command) {
            (None, PostCommand::NewPost { author, message }) => create(ctx, author, message),
            (None, _) => Err(CommandError::not_found(format!(
                "Incorrect post ID provided, no post {} exists!",
                ctx.aggregate_id
            ))),
            (Some(post), PostCommand::NewPost { .. }) => {
                Err(CommandError::rejected(format!("A post with ID {} has already been created!", post.id)))
            }
            (Some(post), PostCommand::EditMessage { message }) => post.edit_message(message),
            (Some(post), PostCommand::LikePost {}) => post.like(),
            (Some(post), PostCommand::AddComment { comment, username }) => post.add_comment(ctx, comment, username),
            (Some(post), PostCommand::EditComment { comment_id, comment, username }) => {
                post.edit_comment(ctx, comment_id, comment, username)
            }
            (Some(post), PostCommand::RemoveComment { comment_id, username }) => {
                post.remove_comment(comment_id, username)
            }
            (Some(post), PostCommand::DeletePost { username }) => post.delete(username),
        }?;
        Ok(vec![event])
    }

    fn apply(&mut self, event: PostEvent) {
        match event {
            PostEvent::PostCreated { id, author, message, date_posted } => {
                self.created = Some(CreatedPost {
                    id,
                    author,
                    message,
                    date_posted,
                    likes: 0,
                    active: true,
                    comments: Vec::new(),
                });
            }
            // On a stream never created, any other event contradicts `handle`; events are facts
            // and cannot be refused, so there is nothing to change.
            event => {
                if let Some(post) = &mut self.created {
                    post.apply(event);
                }
            }
        }
    }
}

fn create(ctx: &CommandContext, author: String, message: String) -> Result<PostEvent, CommandError> {
    require("author", &author)?;
    require("message", &message)?;
    Ok(PostEvent::PostCreated { id: ctx.aggregate_id.clone(), author, message, date_posted: ctx.issued_at.clone() })
}

impl CreatedPost {
    fn edit_message(&self, message: String) -> Result<PostEvent, CommandError> {
        self.require_active("You cannot edit the message of an inactive post!")?;
        require("message", &message)?;
        Ok(PostEvent::MessageUpdated { id: self.id.clone(), message })
    }

    fn like(&self) -> Result<PostEvent, CommandError> {
        self.require_active("You cannot like an inactive post!")?;
        Ok(PostEvent::PostLiked { id: self.id.clone() })
    }

    fn add_comment(&self, ctx: &CommandContext, comment: String, username: String) -> Result<PostEvent, CommandError> {
        self.require_active("You cannot add a comment to an inactive post!")?;
        require("comment", &comment)?;
        require("username", &username)?;
        // The host always sends a UUID; anything else is its bug, not the client's.
        let comment_id: CommentId =
            ctx.fresh_id.parse().unwrap_or_else(|e| panic!("the command's fresh id is not a UUID: {e}"));
        Ok(PostEvent::CommentAdded {
            id: self.id.clone(),
            comment_id,
            comment,
            username,
            comment_date: ctx.issued_at.clone(),
        })
    }

    fn edit_comment(
        &self,
        ctx: &CommandContext,
        comment_id: CommentId,
        comment: String,
        username: String,
    ) -> Result<PostEvent, CommandError> {
        self.require_active("You cannot edit a comment of an inactive post!")?;
        require("comment", &comment)?;
        require("username", &username)?;
        if !same_user(&self.comment(&comment_id)?.username, &username) {
            return Err(CommandError::rejected("You are not allowed to edit a comment that was made by another user!"));
        }
        Ok(PostEvent::CommentUpdated {
            id: self.id.clone(),
            comment_id,
            comment,
            username,
            edit_date: ctx.issued_at.clone(),
        })
    }

    fn remove_comment(&self, comment_id: CommentId, username: String) -> Result<PostEvent, CommandError> {
        self.require_active("You cannot remove a comment of an inactive post!")?;
        require("username", &username)?;
        if !same_user(&self.comment(&comment_id)?.username, &username) {
            return Err(CommandError::rejected(
                "You are not allowed to remove a comment that was made by another user!",
            ));
        }
        Ok(PostEvent::CommentRemoved { id: self.id.clone(), comment_id })
    }

    fn delete(&self, username: String) -> Result<PostEvent, CommandError> {
        self.require_active("The post has already been removed!")?;
        require("username", &username)?;
        if !same_user(&self.author, &username) {
            return Err(CommandError::rejected("You are not allowed to delete a post that was made by someone else!"));
        }
        Ok(PostEvent::PostRemoved { id: self.id.clone() })
    }

    /// Refuses with `refusal` once the post has been deleted.
    fn require_active(&self, refusal: &str) -> Result<(), CommandError> {
        if self.active { Ok(()) } else { Err(CommandError::rejected(refusal)) }
    }

    fn comment(&self, comment_id: &CommentId) -> Result<&Comment, CommandError> {
        self.comments.iter().find(|comment| comment.comment_id == *comment_id).ok_or_else(|| {
            CommandError::not_found(format!(
                "Incorrect comment ID provided, no comment {comment_id} exists on post {}!",
                self.id
            ))
        })
    }

    fn apply(&mut self, event: PostEvent) {
        match event {
            PostEvent::PostCreated { .. } => {} // applied by `Post::apply`
            PostEvent::MessageUpdated { message, .. } => self.message = message,
            // A like is one event, so the count cannot get near `u64::MAX`.
            PostEvent::PostLiked { .. } => self.likes = self.likes.saturating_add(1),
            PostEvent::CommentAdded { comment_id, comment, username, comment_date, .. } => {
                self.comments.push(Comment { comment_id, username, comment, comment_date, edited: false });
            }
            // The comment keeps its author's spelling of the username, as the seed's read model did.
            PostEvent::CommentUpdated { comment_id, comment, edit_date, .. } => {
                if let Some(edited) = self.comments.iter_mut().find(|c| c.comment_id == comment_id) {
                    edited.comment = comment;
                    edited.comment_date = edit_date;
                    edited.edited = true;
                }
            }
            PostEvent::CommentRemoved { comment_id, .. } => self.comments.retain(|c| c.comment_id != comment_id),
            PostEvent::PostRemoved { .. } => self.active = false,
        }
    }
}

/// Refuses text a command must carry that is empty or only white space, in the seed's words.
fn require(field: &str, value: &str) -> Result<(), CommandError> {
    if value.trim().is_empty() {
        return Err(CommandError::invalid(format!(
            "The value of {field} cannot be null or empty. Please provide a valid {field}!"
        )));
    }
    Ok(())
}

/// Whether two usernames name the same user: equal once lower-cased, as the seed compared them.
fn same_user(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::same_user;

    #[test]
    fn usernames_are_compared_ignoring_case_only() {
        assert!(same_user("Ada", "ada"));
        assert!(same_user("ADA LOVELACE", "ada lovelace"));
        assert!(same_user("ÉMILE", "émile"));
        assert!(same_user("ΑΘΗΝΆ", "αθηνά"));
        assert!(!same_user("Ada", "Ada "));
        assert!(!same_user("Ada", "Adam"));
        assert!(!same_user("Emile", "Émile"));
        assert!(!same_user("admin", "admın"));
        assert!(!same_user("sam", "ſam"));
    }
}
