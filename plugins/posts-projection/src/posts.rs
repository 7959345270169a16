//! The `posts` projection: what it declares, how each event changes the `posts` and `comments`
//! tables, and the seed's `postLookup` queries over them.

use std::collections::HashMap;

use serde_json::json;
use sluice_projection_sdk::sql::Record;
use sluice_projection_sdk::{
    Answer, Assignment, Column, ColumnType, Comparison, Condition, Db, Event, Manifest, Params, Projection, QueryError,
    QueryRoute, RebuildRoute, Rows, Select, SqlError, Table, Value,
};

use crate::event::{CommentAdded, CommentRemoved, CommentUpdated, MessageUpdated, PostCreated, PostOnly};

/// The social media post read model.
pub struct Posts;

const POSTS: &str = "posts";
const COMMENTS: &str = "comments";

/// The seed's lookup routes, each with the query it answers.
const ROUTES: [(&str, &str); 6] = [
    ("/api/v1/postLookup/", "all"),
    ("/api/v1/postLookup", "all"),
    ("/api/v1/postLookup/byId/{postId}", "byId"),
    ("/api/v1/postLookup/byAuthor/{author}", "byAuthor"),
    ("/api/v1/postLookup/withComments", "withComments"),
    ("/api/v1/postLookup/withLikes/{numberOfLikes}", "withLikes"),
];

impl Projection for Posts {
    fn manifest() -> Manifest {
        let posts = Table::new(
            POSTS,
            vec![
                Column::new("post_id", ColumnType::Text),
                Column::new("author", ColumnType::Text),
                Column::new("date_posted", ColumnType::Timestamp),
                Column::new("message", ColumnType::Text),
                Column::new("likes", ColumnType::Integer),
            ],
            &["post_id"],
        )
        .index(&["author"])
        .index(&["likes"]);
        let comments = Table::new(
            COMMENTS,
            vec![
                Column::new("comment_id", ColumnType::Text),
                Column::new("post_id", ColumnType::Text),
                Column::new("username", ColumnType::Text),
                Column::new("comment_date", ColumnType::Timestamp),
                Column::new("comment", ColumnType::Text),
                Column::new("edited", ColumnType::Boolean),
            ],
            &["comment_id"],
        )
        .index(&["post_id"]);
        Manifest {
            name: "posts".to_owned(),
            subscriptions: [
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
            schema_version: 1,
            tables: vec![posts, comments],
            queries: ["all", "byId", "byAuthor", "withComments", "withLikes"].map(String::from).to_vec(),
            routes: ROUTES.iter().map(|(path, query)| QueryRoute::new(path, query).case_insensitive()).collect(),
            rebuild_routes: vec![RebuildRoute {
                path: "/api/v1/restoreReadDb".to_owned(),
                success_status: 201,
                success_message: "Read database restore request completed successfully!".to_owned(),
            }],
        }
    }

    /// Updates and deletes of a post or comment that is not in the tables change nothing, as in
    /// the seed.
    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        apply(db, event)
    }

    fn query(db: &mut dyn Db, name: &str, params: &Params) -> Result<Answer, QueryError> {
        let select = Select::from(POSTS).order_by("date_posted").order_by("post_id");
        let select = match name {
            "all" | "withComments" => select,
            "byId" => select.filter(Condition::eq("post_id", Value::text(params.require("postId")?))),
            "byAuthor" => select.filter(Condition::eq("author", Value::text(params.require("author")?))),
            "withLikes" => select.filter(Condition::new("likes", Comparison::Ge, Value::Integer(at_least(params)?))),
            other => return Err(QueryError::UnknownQuery(other.to_owned())),
        };
        let posts = db.select(select)?;
        if posts.is_empty() {
            return Ok(Answer::no_content());
        }
        // Every post's comments are needed when the query reads every post; otherwise each
        // post's are looked up by the indexed `post_id`.
        let mut comments = if matches!(name, "all" | "withComments") {
            comments_by_post(db.select(comments())?)
        } else {
            let mut found = HashMap::new();
            for post in posts.records() {
                let rows = db.select(comments().filter(Condition::eq("post_id", Value::Text(post.text("post_id")))))?;
                found.extend(comments_by_post(rows));
            }
            found
        };
        let posts: Vec<serde_json::Value> = posts
            .records()
            .filter_map(|post| {
                let comments = comments.remove(&post.text("post_id"));
                if name == "withComments" && comments.is_none() {
                    return None;
                }
                Some(post_json(post, comments.unwrap_or_default()))
            })
            .collect();
        if posts.is_empty() {
            return Ok(Answer::no_content());
        }
        // The seed's words: the lookup of one post says so, a list counts "1 post", "2 posts".
        let message = match (name, posts.len()) {
            ("byId", _) => "Successfully returned post!".to_owned(),
            (_, 1) => "Successfully returned 1 post!".to_owned(),
            (_, n) => format!("Successfully returned {n} posts!"),
        };
        Ok(Answer::ok(&json!({ "message": message, "posts": posts })))
    }
}

fn apply(db: &mut dyn Db, event: &Event) -> Result<(), String> {
    let post = |id: String| Condition::eq("post_id", Value::Text(id));
    let comment = |id: String| Condition::eq("comment_id", Value::Text(id));
    let written: Result<u64, SqlError> = match event.event_type.as_str() {
        "PostCreatedEvent" => {
            let created: PostCreated = event.parse()?;
            db.insert(
                POSTS,
                &["post_id", "author", "date_posted", "message", "likes"],
                vec![
                    Value::Text(created.id),
                    Value::Text(created.author),
                    Value::Text(created.date_posted),
                    Value::Text(created.message),
                    Value::Integer(0),
                ],
            )
            .map(|()| 1)
        }
        "MessageUpdatedEvent" => {
            let updated: MessageUpdated = event.parse()?;
            db.update(POSTS, vec![Assignment::set("message", Value::Text(updated.message))], vec![post(updated.id)])
        }
        "PostLikedEvent" => {
            let liked: PostOnly = event.parse()?;
            db.update(POSTS, vec![Assignment::add("likes", Value::Integer(1))], vec![post(liked.id)])
        }
        "CommentAddedEvent" => {
            let added: CommentAdded = event.parse()?;
            db.insert(
                COMMENTS,
                &["comment_id", "post_id", "username", "comment_date", "comment", "edited"],
                vec![
                    Value::Text(added.comment_id),
                    Value::Text(added.id),
                    Value::Text(added.username),
                    Value::Text(added.comment_date),
                    Value::Text(added.comment),
                    Value::Boolean(false),
                ],
            )
            .map(|()| 1)
        }
        "CommentUpdatedEvent" => {
            // As the seed did: the comment's date becomes the edit's, and it is marked edited.
            let updated: CommentUpdated = event.parse()?;
            db.update(
                COMMENTS,
                vec![
                    Assignment::set("comment", Value::Text(updated.comment)),
                    Assignment::set("comment_date", Value::Text(updated.edit_date)),
                    Assignment::set("edited", Value::Boolean(true)),
                ],
                vec![comment(updated.comment_id), post(updated.id)],
            )
        }
        "CommentRemovedEvent" => {
            let removed: CommentRemoved = event.parse()?;
            db.delete(COMMENTS, vec![comment(removed.comment_id), post(removed.id)])
        }
        "PostRemovedEvent" => {
            let removed: PostOnly = event.parse()?;
            db.delete(COMMENTS, vec![post(removed.id.clone())]).and_then(|_| db.delete(POSTS, vec![post(removed.id)]))
        }
        // Only subscribed types arrive; anything else has nothing to change here.
        _ => Ok(0),
    };
    written.map(drop).map_err(|e| format!("{}: {e}", event.event_type))
}

/// All comments, oldest first.
fn comments() -> Select {
    Select::from(COMMENTS).order_by("comment_date").order_by("comment_id")
}

/// `withLikes`'s `numberOfLikes`: a whole number, 0 or more.
fn at_least(params: &Params) -> Result<i64, QueryError> {
    let text = params.require("numberOfLikes")?;
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| QueryError::Invalid(format!("numberOfLikes must be a whole number, 0 or more, not {text:?}")))
}

/// Comment rows as the seed's comment JSON, by post id, keeping their order.
fn comments_by_post(rows: Rows) -> HashMap<String, Vec<serde_json::Value>> {
    let mut by_post: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for row in rows.records() {
        by_post.entry(row.text("post_id")).or_default().push(json!({
            "commentId": row.text("comment_id"),
            "username": row.text("username"),
            "commentDate": row.text("comment_date"),
            "comment": row.text("comment"),
            "edited": row.boolean("edited"),
        }));
    }
    by_post
}

/// One post row and its comments as the seed's post JSON.
fn post_json(post: Record<'_>, comments: Vec<serde_json::Value>) -> serde_json::Value {
    json!({
        "postId": post.text("post_id"),
        "author": post.text("author"),
        "datePosted": post.text("date_posted"),
        "message": post.text("message"),
        "likes": post.integer("likes"),
        "comments": comments,
    })
}
