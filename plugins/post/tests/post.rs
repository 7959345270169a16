//! Given/when/then tests of every post rule, through the same JSON glue the component uses:
//! typed commands for the rules, raw request bodies (`when_json`) for what clients send.

use post::{CommentId, Post, PostCommand, PostEvent};
use sluice_sdk::testing::{AggregateTest, test_context};
use sluice_sdk::{Aggregate, CommandContext, CommandError, IdSource, Method, StoredEvent, runtime};

type Test = AggregateTest<Post>;

const ADA: &str = "Ada Lovelace";
const GRACE: &str = "Grace Hopper";
const FIRST: &str = "11111111-1111-4111-8111-111111111111";
const SECOND: &str = "22222222-2222-4222-8222-222222222222";

fn id() -> String {
    test_context().aggregate_id
}

fn now() -> String {
    test_context().issued_at
}

#[track_caller]
fn comment_id(text: &str) -> CommentId {
    text.parse().unwrap_or_else(|e| panic!("test comment id {text}: {e}"))
}

/// The id `AddComment` mints under the default test context.
fn fresh() -> CommentId {
    comment_id(&test_context().fresh_id)
}

/// A context other than the default, to see that ids and times come from it.
fn other_context() -> CommandContext {
    CommandContext {
        aggregate_id: "5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9d10".to_owned(),
        issued_at: "2026-03-04T05:06:07Z".to_owned(),
        fresh_id: "5F0C6A5E-8D1E-4C43-9A53-6B2F1C3E9DFF".to_owned(),
    }
}

fn created() -> PostEvent {
    PostEvent::PostCreated { id: id(), author: ADA.to_owned(), message: "Hello, world!".to_owned(), date_posted: now() }
}

fn message_updated(message: &str) -> PostEvent {
    PostEvent::MessageUpdated { id: id(), message: message.to_owned() }
}

fn liked() -> PostEvent {
    PostEvent::PostLiked { id: id() }
}

fn comment_added(comment_id_text: &str, username: &str, comment: &str) -> PostEvent {
    PostEvent::CommentAdded {
        id: id(),
        comment_id: comment_id(comment_id_text),
        comment: comment.to_owned(),
        username: username.to_owned(),
        comment_date: now(),
    }
}

fn comment_updated(comment_id_text: &str, username: &str, comment: &str) -> PostEvent {
    PostEvent::CommentUpdated {
        id: id(),
        comment_id: comment_id(comment_id_text),
        comment: comment.to_owned(),
        username: username.to_owned(),
        edit_date: now(),
    }
}

fn comment_removed(comment_id_text: &str) -> PostEvent {
    PostEvent::CommentRemoved { id: id(), comment_id: comment_id(comment_id_text) }
}

fn removed() -> PostEvent {
    PostEvent::PostRemoved { id: id() }
}

/// A post with one comment by Grace, under the id `FIRST`.
fn commented() -> Vec<PostEvent> {
    vec![created(), comment_added(FIRST, GRACE, "Nice post!")]
}

fn edit_comment(comment_id_text: &str, username: &str, comment: &str) -> PostCommand {
    PostCommand::EditComment {
        comment_id: comment_id(comment_id_text),
        comment: comment.to_owned(),
        username: username.to_owned(),
    }
}

fn remove_comment(comment_id_text: &str, username: &str) -> PostCommand {
    PostCommand::RemoveComment { comment_id: comment_id(comment_id_text), username: username.to_owned() }
}

fn delete_post(username: &str) -> PostCommand {
    PostCommand::DeletePost { username: username.to_owned() }
}

/// One of each command, valid on a post made by Ada with Grace's comment `FIRST`.
fn every_command() -> Vec<PostCommand> {
    vec![
        PostCommand::NewPost { author: ADA.to_owned(), message: "Again".to_owned() },
        PostCommand::EditMessage { message: "Edited".to_owned() },
        PostCommand::LikePost {},
        PostCommand::AddComment { comment: "Me too".to_owned(), username: GRACE.to_owned() },
        edit_comment(FIRST, GRACE, "Edited comment"),
        remove_comment(FIRST, GRACE),
        delete_post(ADA),
    ]
}

#[track_caller]
fn expect_not_found(outcome: sluice_sdk::testing::Outcome<Post>, expected: &str) {
    match outcome.into_result() {
        Err(CommandError::NotFound(message)) => assert_eq!(message, expected),
        other => panic!("expected not found, got {other:?}"),
    }
}

fn no_post() -> String {
    format!("Incorrect post ID provided, no post {} exists!", id())
}

fn no_comment(comment_id_text: &str) -> String {
    format!("Incorrect comment ID provided, no comment {comment_id_text} exists on post {}!", id())
}

/// The state the host would keep after `events`, rendered as `GET /api/aggregates/...` shows it.
/// (`AggregateTest` has no way to look at the state, so this replays through the runtime.)
#[track_caller]
fn rendered_state(events: &[PostEvent]) -> String {
    let stored: Vec<StoredEvent> = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let new = runtime::to_new_event(event);
            StoredEvent {
                aggregate_type: "Post".to_owned(),
                aggregate_id: id(),
                version: i as u64 + 1,
                global_position: i as u64 + 1,
                event_type: new.event_type,
                schema_version: new.schema_version,
                data: new.data,
                recorded_at: now(),
            }
        })
        .collect();
    let state = runtime::evolve::<Post>(None, &stored).unwrap_or_else(|e| panic!("evolve: {e}"));
    runtime::render::<Post>(&state).unwrap_or_else(|e| panic!("render: {e}"))
}

#[track_caller]
fn state_json(events: &[PostEvent]) -> serde_json::Value {
    serde_json::from_str(&rendered_state(events)).unwrap_or_else(|e| panic!("state is not JSON: {e}"))
}

// ---- NewPost -----------------------------------------------------------------------------

#[test]
fn new_post_creates_it_under_the_routes_id_at_the_commands_time() {
    Test::given_no_previous_events()
        .when(PostCommand::NewPost { author: ADA.to_owned(), message: "Hello, world!".to_owned() })
        .then_expect_events(vec![created()]);
}

#[test]
fn new_post_takes_the_seeds_body() {
    Test::given_no_previous_events()
        .with_context(other_context())
        .when_json("NewPost", r#"{"author": "John Doe", "message": "My first post"}"#)
        .then_expect_events(vec![PostEvent::PostCreated {
            id: "5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9d10".to_owned(),
            author: "John Doe".to_owned(),
            message: "My first post".to_owned(),
            date_posted: "2026-03-04T05:06:07Z".to_owned(),
        }]);
}

#[test]
fn new_post_ignores_fields_it_does_not_know_as_the_seed_did() {
    Test::given_no_previous_events()
        .when_json("NewPost", r#"{"id": "ignored", "author": "Ada Lovelace", "message": "Hello, world!", "likes": 7}"#)
        .then_expect_events(vec![created()]);
}

#[test]
fn new_post_without_an_author_is_invalid() {
    Test::given_no_previous_events()
        .when_json("NewPost", r#"{"message": "Hello"}"#)
        .then_expect_invalid("missing field `author`");
}

#[test]
fn new_post_with_a_null_author_is_invalid() {
    Test::given_no_previous_events()
        .when_json("NewPost", r#"{"author": null, "message": "Hello"}"#)
        .then_expect_invalid("invalid type: null, expected a string");
}

#[test]
fn new_post_with_a_blank_author_is_invalid() {
    for author in ["", " ", " \t\n "] {
        Test::given_no_previous_events()
            .when(PostCommand::NewPost { author: author.to_owned(), message: "Hello".to_owned() })
            .then_expect_error(CommandError::Invalid(
                "The value of author cannot be null or empty. Please provide a valid author!".to_owned(),
            ));
    }
}

#[test]
fn new_post_without_a_message_is_invalid() {
    Test::given_no_previous_events()
        .when_json("NewPost", r#"{"author": "Ada"}"#)
        .then_expect_invalid("missing field `message`");
}

#[test]
fn new_post_with_a_blank_message_is_invalid() {
    Test::given_no_previous_events().when_json("NewPost", r#"{"author": "Ada", "message": "   "}"#).then_expect_error(
        CommandError::Invalid(
            "The value of message cannot be null or empty. Please provide a valid message!".to_owned(),
        ),
    );
}

#[test]
fn new_post_with_a_message_that_is_not_text_is_invalid() {
    Test::given_no_previous_events()
        .when_json("NewPost", r#"{"author": "Ada", "message": 42}"#)
        .then_expect_invalid("invalid type: integer `42`, expected a string");
}

#[test]
fn new_post_with_malformed_json_is_invalid() {
    Test::given_no_previous_events()
        .when_json("NewPost", r#"{"author": "Ada", "message": "#)
        .then_expect_invalid("EOF while parsing a value");
}

#[test]
fn new_post_with_a_body_that_is_not_an_object_is_invalid() {
    Test::given_no_previous_events().when_json("NewPost", r#""Hello""#).then_expect_invalid("invalid type: string");
}

#[test]
fn a_body_that_smuggles_a_second_command_is_invalid() {
    Test::given(vec![created()])
        .when_json("LikePost", r#"{}, "DeletePost": {"username": "Ada Lovelace"}"#)
        .then_expect_invalid("");
    Test::given(vec![created()]).when_json("LikePost", "{}}").then_expect_invalid("trailing characters");
}

#[test]
fn new_post_on_an_existing_post_is_rejected() {
    Test::given(vec![created(), liked()])
        .when_json("NewPost", r#"{"author": "Ada", "message": "Again"}"#)
        .then_expect_error(CommandError::Rejected(format!("A post with ID {} has already been created!", id())));
}

#[test]
fn new_post_on_a_deleted_post_is_rejected() {
    Test::given(vec![created(), removed()])
        .when_json("NewPost", r#"{"author": "Ada", "message": "Again"}"#)
        .then_expect_rejected("has already been created");
}

// ---- EditMessage -------------------------------------------------------------------------

#[test]
fn edit_message() {
    Test::given(vec![created()])
        .when_json("EditMessage", r#"{"message": "Hello again"}"#)
        .then_expect_events(vec![message_updated("Hello again")]);
}

#[test]
fn edit_message_any_number_of_times() {
    Test::given(vec![created(), message_updated("Hello again")])
        .when(PostCommand::EditMessage { message: "Hello, world!".to_owned() })
        .then_expect_events(vec![message_updated("Hello, world!")]);
}

#[test]
fn edit_message_to_blank_is_invalid() {
    Test::given(vec![created()]).when_json("EditMessage", r#"{"message": ""}"#).then_expect_error(
        CommandError::Invalid(
            "The value of message cannot be null or empty. Please provide a valid message!".to_owned(),
        ),
    );
    Test::given(vec![created()])
        .when_json("EditMessage", r#"{"message": "\t \r\n"}"#)
        .then_expect_invalid("The value of message cannot be null or empty");
}

#[test]
fn edit_message_without_a_message_is_invalid() {
    Test::given(vec![created()]).when_json("EditMessage", "{}").then_expect_invalid("missing field `message`");
    Test::given(vec![created()])
        .when_json("EditMessage", r#"{"message": null}"#)
        .then_expect_invalid("invalid type: null");
}

#[test]
fn edit_message_of_a_deleted_post_is_rejected() {
    Test::given(vec![created(), removed()])
        .when_json("EditMessage", r#"{"message": "Hello again"}"#)
        .then_expect_error(CommandError::Rejected("You cannot edit the message of an inactive post!".to_owned()));
}

#[test]
fn a_deleted_post_is_refused_before_the_body_is_judged() {
    Test::given(vec![created(), removed()])
        .when_json("EditMessage", r#"{"message": " "}"#)
        .then_expect_rejected("You cannot edit the message of an inactive post!");
}

#[test]
fn edit_message_of_a_post_never_created_is_not_found() {
    expect_not_found(Test::given_no_previous_events().when_json("EditMessage", r#"{"message": "Hi"}"#), &no_post());
}

// ---- LikePost ----------------------------------------------------------------------------

#[test]
fn like_post() {
    Test::given(vec![created()]).when_json("LikePost", "{}").then_expect_events(vec![liked()]);
}

#[test]
fn like_post_again_and_again() {
    Test::given(vec![created(), liked(), liked()]).when(PostCommand::LikePost {}).then_expect_events(vec![liked()]);
}

#[test]
fn like_post_ignores_a_body() {
    Test::given(vec![created()]).when_json("LikePost", r#"{"likes": 100}"#).then_expect_events(vec![liked()]);
}

#[test]
fn like_post_with_a_body_that_is_not_an_object_is_invalid() {
    Test::given(vec![created()]).when_json("LikePost", "42").then_expect_invalid("invalid type: integer `42`");
}

#[test]
fn like_a_deleted_post_is_rejected() {
    Test::given(vec![created(), removed()])
        .when_json("LikePost", "{}")
        .then_expect_error(CommandError::Rejected("You cannot like an inactive post!".to_owned()));
}

#[test]
fn like_a_post_never_created_is_not_found() {
    expect_not_found(Test::given_no_previous_events().when(PostCommand::LikePost {}), &no_post());
}

// ---- AddComment --------------------------------------------------------------------------

#[test]
fn add_comment_under_the_commands_fresh_id_at_the_commands_time() {
    Test::given(vec![created()])
        .when(PostCommand::AddComment { comment: "Nice post!".to_owned(), username: GRACE.to_owned() })
        .then_expect_events(vec![PostEvent::CommentAdded {
            id: id(),
            comment_id: fresh(),
            comment: "Nice post!".to_owned(),
            username: GRACE.to_owned(),
            comment_date: now(),
        }]);
}

#[test]
fn add_comment_takes_the_seeds_body_and_its_id_from_the_context() {
    let ctx = other_context();
    let events = vec![PostEvent::PostCreated {
        id: ctx.aggregate_id.clone(),
        author: ADA.to_owned(),
        message: "Hello".to_owned(),
        date_posted: now(),
    }];
    Test::given(events)
        .with_context(ctx)
        .when_json("AddComment", r#"{"comment": "Nice post!", "username": "Grace Hopper"}"#)
        .then_expect_events(vec![PostEvent::CommentAdded {
            id: "5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9d10".to_owned(),
            // The fresh id, in the lower case every comment id is kept in.
            comment_id: comment_id("5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9dff"),
            comment: "Nice post!".to_owned(),
            username: GRACE.to_owned(),
            comment_date: "2026-03-04T05:06:07Z".to_owned(),
        }]);
}

#[test]
fn add_comment_writes_the_fresh_id_as_the_comment_id() {
    let outcome = Test::given(vec![created()])
        .with_context(other_context())
        .when_json("AddComment", r#"{"comment": "Nice post!", "username": "Grace Hopper"}"#);
    let events = outcome.into_result().unwrap_or_else(|e| panic!("{e}"));
    let written = runtime::to_new_event(&events[0]);
    assert!(written.data.contains(r#""commentId":"5f0c6a5e-8d1e-4c43-9a53-6b2f1c3e9dff""#), "{}", written.data);
}

#[test]
fn add_comment_by_anyone_including_the_author() {
    Test::given(commented())
        .when(PostCommand::AddComment { comment: "Thanks!".to_owned(), username: ADA.to_owned() })
        .then_expect_events(vec![PostEvent::CommentAdded {
            id: id(),
            comment_id: fresh(),
            comment: "Thanks!".to_owned(),
            username: ADA.to_owned(),
            comment_date: now(),
        }]);
}

#[test]
fn add_a_blank_comment_is_invalid() {
    Test::given(vec![created()])
        .when_json("AddComment", r#"{"comment": "  ", "username": "Grace Hopper"}"#)
        .then_expect_error(CommandError::Invalid(
            "The value of comment cannot be null or empty. Please provide a valid comment!".to_owned(),
        ));
}

#[test]
fn add_a_comment_without_a_username_is_invalid() {
    Test::given(vec![created()])
        .when_json("AddComment", r#"{"comment": "Nice post!", "username": ""}"#)
        .then_expect_error(CommandError::Invalid(
            "The value of username cannot be null or empty. Please provide a valid username!".to_owned(),
        ));
    Test::given(vec![created()])
        .when_json("AddComment", r#"{"comment": "Nice post!"}"#)
        .then_expect_invalid("missing field `username`");
}

#[test]
fn add_a_comment_without_a_comment_is_invalid() {
    Test::given(vec![created()])
        .when_json("AddComment", r#"{"username": "Grace Hopper"}"#)
        .then_expect_invalid("missing field `comment`");
    Test::given(vec![created()])
        .when_json("AddComment", r#"{"comment": ["Nice"], "username": "Grace Hopper"}"#)
        .then_expect_invalid("invalid type: sequence, expected a string");
}

#[test]
fn add_a_comment_to_a_deleted_post_is_rejected() {
    Test::given(vec![created(), removed()])
        .when(PostCommand::AddComment { comment: "Nice post!".to_owned(), username: GRACE.to_owned() })
        .then_expect_error(CommandError::Rejected("You cannot add a comment to an inactive post!".to_owned()));
}

#[test]
fn add_a_comment_to_a_post_never_created_is_not_found() {
    expect_not_found(
        Test::given_no_previous_events()
            .when_json("AddComment", r#"{"comment": "Nice post!", "username": "Grace Hopper"}"#),
        &no_post(),
    );
}

// ---- EditComment -------------------------------------------------------------------------

#[test]
fn edit_comment_by_its_author() {
    Test::given(commented())
        .when(edit_comment(FIRST, GRACE, "Very nice post!"))
        .then_expect_events(vec![comment_updated(FIRST, GRACE, "Very nice post!")]);
}

#[test]
fn edit_comment_takes_the_seeds_body() {
    Test::given(commented())
        .with_context(other_context())
        .when_json(
            "EditComment",
            r#"{"commentId": "11111111-1111-4111-8111-111111111111", "comment": "Very nice post!", "username": "Grace Hopper"}"#,
        )
        .then_expect_events(vec![PostEvent::CommentUpdated {
            id: id(),
            comment_id: comment_id(FIRST),
            comment: "Very nice post!".to_owned(),
            username: GRACE.to_owned(),
            edit_date: "2026-03-04T05:06:07Z".to_owned(),
        }]);
}

#[test]
fn edit_comment_names_the_comment_in_either_case_as_the_seeds_guid_did() {
    const KEPT: &str = "aaaaaaaa-1111-4111-8111-11111111111b";
    Test::given(vec![created(), comment_added(KEPT, GRACE, "Nice post!")])
        .when_json(
            "EditComment",
            r#"{"commentId": "AAAAAAAA-1111-4111-8111-11111111111B", "comment": "Edited", "username": "Grace Hopper"}"#,
        )
        .then_expect_events(vec![comment_updated(KEPT, GRACE, "Edited")]);
}

#[test]
fn edit_comment_compares_usernames_ignoring_case() {
    Test::given(commented())
        .when(edit_comment(FIRST, "GRACE hopper", "Edited"))
        .then_expect_events(vec![comment_updated(FIRST, "GRACE hopper", "Edited")]);
}

#[test]
fn edit_an_edited_comment() {
    let mut history = commented();
    history.push(comment_updated(FIRST, GRACE, "Edited"));
    Test::given(history).when(edit_comment(FIRST, GRACE, "Edited again")).then_expect_events(vec![comment_updated(
        FIRST,
        GRACE,
        "Edited again",
    )]);
}

#[test]
fn edit_a_comment_made_by_another_user_is_rejected() {
    Test::given(commented()).when(edit_comment(FIRST, ADA, "Edited")).then_expect_error(CommandError::Rejected(
        "You are not allowed to edit a comment that was made by another user!".to_owned(),
    ));
}

#[test]
fn edit_a_comment_as_a_user_whose_name_only_starts_alike_is_rejected() {
    Test::given(commented())
        .when(edit_comment(FIRST, "Grace Hopper ", "Edited"))
        .then_expect_rejected("made by another user");
}

#[test]
fn edit_a_comment_the_post_does_not_have_is_not_found() {
    expect_not_found(Test::given(commented()).when(edit_comment(SECOND, GRACE, "Edited")), &no_comment(SECOND));
}

#[test]
fn edit_a_removed_comment_is_not_found() {
    let mut history = commented();
    history.push(comment_removed(FIRST));
    expect_not_found(Test::given(history).when(edit_comment(FIRST, GRACE, "Edited")), &no_comment(FIRST));
}

#[test]
fn edit_a_comment_to_blank_is_invalid() {
    Test::given(commented()).when(edit_comment(FIRST, GRACE, " ")).then_expect_error(CommandError::Invalid(
        "The value of comment cannot be null or empty. Please provide a valid comment!".to_owned(),
    ));
}

#[test]
fn edit_a_comment_without_a_username_is_invalid() {
    Test::given(commented())
        .when(edit_comment(FIRST, "", "Edited"))
        .then_expect_invalid("The value of username cannot be null or empty. Please provide a valid username!");
    Test::given(commented())
        .when_json("EditComment", &format!(r#"{{"commentId": "{FIRST}", "comment": "Edited"}}"#))
        .then_expect_invalid("missing field `username`");
}

#[test]
fn edit_a_comment_without_a_comment_id_is_invalid() {
    Test::given(commented())
        .when_json("EditComment", r#"{"comment": "Edited", "username": "Grace Hopper"}"#)
        .then_expect_invalid("missing field `commentId`");
}

#[test]
fn edit_a_comment_whose_id_is_not_a_uuid_is_invalid() {
    Test::given(commented())
        .when_json("EditComment", r#"{"commentId": "first", "comment": "Edited", "username": "Grace Hopper"}"#)
        .then_expect_invalid(r#""first" is not a comment id: expected a UUID"#);
    Test::given(commented())
        .when_json("EditComment", r#"{"commentId": 1, "comment": "Edited", "username": "Grace Hopper"}"#)
        .then_expect_invalid("invalid type: integer `1`, expected a string");
}

#[test]
fn edit_a_comment_of_a_deleted_post_is_rejected() {
    let mut history = commented();
    history.push(removed());
    Test::given(history.clone())
        .when(edit_comment(FIRST, GRACE, "Edited"))
        .then_expect_error(CommandError::Rejected("You cannot edit a comment of an inactive post!".to_owned()));
    Test::given(history)
        .when(edit_comment(SECOND, GRACE, "Edited"))
        .then_expect_rejected("You cannot edit a comment of an inactive post!");
}

#[test]
fn edit_a_comment_of_a_post_never_created_is_not_found() {
    expect_not_found(Test::given_no_previous_events().when(edit_comment(FIRST, GRACE, "Edited")), &no_post());
}

// ---- RemoveComment -----------------------------------------------------------------------

#[test]
fn remove_comment_by_its_author() {
    Test::given(commented())
        .when_json("RemoveComment", &format!(r#"{{"commentId": "{FIRST}", "username": "Grace Hopper"}}"#))
        .then_expect_events(vec![comment_removed(FIRST)]);
}

#[test]
fn remove_comment_compares_usernames_ignoring_case() {
    Test::given(commented())
        .when(remove_comment(FIRST, "grace HOPPER"))
        .then_expect_events(vec![comment_removed(FIRST)]);
}

#[test]
fn remove_one_of_several_comments() {
    let mut history = commented();
    history.push(comment_added(SECOND, ADA, "Thanks!"));
    Test::given(history).when(remove_comment(SECOND, ADA)).then_expect_events(vec![comment_removed(SECOND)]);
}

#[test]
fn remove_a_comment_made_by_another_user_is_rejected() {
    // Not even the post's author may remove someone else's comment, as in the seed.
    Test::given(commented()).when(remove_comment(FIRST, ADA)).then_expect_error(CommandError::Rejected(
        "You are not allowed to remove a comment that was made by another user!".to_owned(),
    ));
}

#[test]
fn remove_a_comment_the_post_does_not_have_is_not_found() {
    expect_not_found(Test::given(commented()).when(remove_comment(SECOND, GRACE)), &no_comment(SECOND));
}

#[test]
fn remove_a_removed_comment_is_not_found() {
    let mut history = commented();
    history.push(comment_removed(FIRST));
    expect_not_found(Test::given(history).when(remove_comment(FIRST, GRACE)), &no_comment(FIRST));
}

#[test]
fn remove_a_comment_without_a_username_is_invalid() {
    Test::given(commented())
        .when(remove_comment(FIRST, "\t"))
        .then_expect_invalid("The value of username cannot be null or empty. Please provide a valid username!");
    Test::given(commented())
        .when_json("RemoveComment", &format!(r#"{{"commentId": "{FIRST}"}}"#))
        .then_expect_invalid("missing field `username`");
}

#[test]
fn remove_a_comment_whose_id_is_not_a_uuid_is_invalid() {
    Test::given(commented())
        .when_json("RemoveComment", r#"{"commentId": "{11111111-1111-4111-8111-111111111111}", "username": "Grace"}"#)
        .then_expect_invalid("is not a comment id");
    Test::given(commented())
        .when_json("RemoveComment", r#"{"commentId": null, "username": "Grace"}"#)
        .then_expect_invalid("invalid type: null, expected a string");
}

#[test]
fn remove_a_comment_of_a_deleted_post_is_rejected() {
    let mut history = commented();
    history.push(removed());
    Test::given(history)
        .when(remove_comment(FIRST, GRACE))
        .then_expect_error(CommandError::Rejected("You cannot remove a comment of an inactive post!".to_owned()));
}

#[test]
fn remove_a_comment_of_a_post_never_created_is_not_found() {
    expect_not_found(Test::given_no_previous_events().when(remove_comment(FIRST, GRACE)), &no_post());
}

// ---- DeletePost --------------------------------------------------------------------------

#[test]
fn delete_post_by_its_author() {
    Test::given(commented())
        .when_json("DeletePost", r#"{"username": "Ada Lovelace"}"#)
        .then_expect_events(vec![removed()]);
}

#[test]
fn delete_post_compares_usernames_ignoring_case() {
    Test::given(vec![created()]).when(delete_post("ADA LOVELACE")).then_expect_events(vec![removed()]);
    Test::given(vec![created()]).when(delete_post("ada lovelace")).then_expect_events(vec![removed()]);
}

#[test]
fn delete_a_post_made_by_someone_else_is_rejected() {
    Test::given(commented()).when(delete_post(GRACE)).then_expect_error(CommandError::Rejected(
        "You are not allowed to delete a post that was made by someone else!".to_owned(),
    ));
}

#[test]
fn delete_a_post_without_a_username_is_invalid() {
    Test::given(vec![created()])
        .when(delete_post(" "))
        .then_expect_invalid("The value of username cannot be null or empty. Please provide a valid username!");
    Test::given(vec![created()]).when_json("DeletePost", "{}").then_expect_invalid("missing field `username`");
}

#[test]
fn delete_a_deleted_post_is_rejected() {
    Test::given(vec![created(), removed()])
        .when(delete_post(ADA))
        .then_expect_error(CommandError::Rejected("The post has already been removed!".to_owned()));
}

#[test]
fn delete_a_post_never_created_is_not_found() {
    expect_not_found(Test::given_no_previous_events().when(delete_post(ADA)), &no_post());
}

// ---- Every command -----------------------------------------------------------------------

#[test]
fn every_command_is_accepted_on_a_live_post_except_a_second_new_post() {
    for command in every_command() {
        let creates = matches!(command, PostCommand::NewPost { .. });
        let result = Test::given(commented()).when(command.clone()).into_result();
        assert_eq!(result.is_ok(), !creates, "{command:?}: {result:?}");
    }
}

#[test]
fn a_deleted_post_rejects_every_command() {
    let mut history = commented();
    history.push(removed());
    for command in every_command() {
        match Test::given(history.clone()).when(command.clone()).into_result() {
            Err(CommandError::Rejected(_)) => {}
            other => panic!("{command:?} on a deleted post: expected a rejection, got {other:?}"),
        }
    }
}

#[test]
fn a_post_never_created_knows_no_command_but_new_post() {
    for command in every_command() {
        let creates = matches!(command, PostCommand::NewPost { .. });
        let result = Test::given_no_previous_events().when(command.clone()).into_result();
        match result {
            Ok(_) if creates => {}
            Err(CommandError::NotFound(message)) if !creates => assert_eq!(message, no_post()),
            other => panic!("{command:?} on a post never created: got {other:?}"),
        }
    }
}

#[test]
fn an_unknown_command_is_invalid() {
    Test::given(vec![created()])
        .when_json("SharePost", r#"{"username": "Ada"}"#)
        .then_expect_invalid("unknown variant `SharePost`");
}

#[test]
fn command_names_are_case_sensitive_unlike_routes() {
    Test::given(vec![created()]).when_json("likePost", "{}").then_expect_invalid("unknown variant `likePost`");
}

// ---- State -------------------------------------------------------------------------------

#[test]
fn state_renders_as_the_post() {
    let history = vec![
        created(),
        liked(),
        liked(),
        message_updated("Hello again"),
        comment_added(FIRST, GRACE, "Nice post!"),
        comment_added(SECOND, ADA, "Thanks!"),
        PostEvent::CommentUpdated {
            id: id(),
            comment_id: comment_id(FIRST),
            comment: "Very nice post!".to_owned(),
            username: "GRACE HOPPER".to_owned(),
            edit_date: "2026-02-03T04:05:06Z".to_owned(),
        },
    ];
    assert_eq!(
        rendered_state(&history),
        format!(
            concat!(
                r#"{{"id":"{id}","author":"Ada Lovelace","message":"Hello again","datePosted":"{now}","likes":2,"#,
                r#""active":true,"comments":["#,
                r#"{{"commentId":"{first}","username":"Grace Hopper","comment":"Very nice post!","#,
                r#""commentDate":"2026-02-03T04:05:06Z","edited":true}},"#,
                r#"{{"commentId":"{second}","username":"Ada Lovelace","comment":"Thanks!","#,
                r#""commentDate":"{now}","edited":false}}]}}"#
            ),
            id = id(),
            now = now(),
            first = FIRST,
            second = SECOND
        )
    );
}

#[test]
fn a_removed_comment_leaves_the_state() {
    let state = state_json(&[
        created(),
        comment_added(FIRST, GRACE, "Nice post!"),
        comment_added(SECOND, ADA, "Thanks!"),
        comment_removed(FIRST),
    ]);
    let ids: Vec<&str> = state["comments"]
        .as_array()
        .map(|comments| comments.iter().filter_map(|c| c["commentId"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![SECOND]);
}

#[test]
fn a_deleted_post_renders_inactive_with_what_it_had() {
    let state = state_json(&[created(), liked(), comment_added(FIRST, GRACE, "Nice post!"), removed()]);
    assert_eq!(state["active"], serde_json::Value::Bool(false));
    assert_eq!(state["likes"], serde_json::json!(1));
    assert_eq!(state["message"], serde_json::json!("Hello, world!"));
}

#[test]
fn a_post_never_created_renders_as_null() {
    assert_eq!(rendered_state(&[]), "null");
}

// ---- The contract with the host and the projection ---------------------------------------

#[test]
fn events_are_written_with_the_seeds_names_and_fields() {
    let (id, now) = (id(), now());
    let written: Vec<(String, u32, String)> = [
        created(),
        message_updated("Hi"),
        liked(),
        comment_added(FIRST, GRACE, "Nice"),
        comment_updated(FIRST, GRACE, "Nicer"),
        comment_removed(FIRST),
        removed(),
    ]
    .iter()
    .map(|event| {
        let new = runtime::to_new_event(event);
        (new.event_type, new.schema_version, new.data)
    })
    .collect();
    let expected: Vec<(String, u32, String)> = [
        (
            "PostCreatedEvent",
            format!(r#"{{"id":"{id}","author":"Ada Lovelace","message":"Hello, world!","datePosted":"{now}"}}"#),
        ),
        ("MessageUpdatedEvent", format!(r#"{{"id":"{id}","message":"Hi"}}"#)),
        ("PostLikedEvent", format!(r#"{{"id":"{id}"}}"#)),
        (
            "CommentAddedEvent",
            format!(
                r#"{{"id":"{id}","commentId":"{FIRST}","comment":"Nice","username":"Grace Hopper","commentDate":"{now}"}}"#
            ),
        ),
        (
            "CommentUpdatedEvent",
            format!(
                r#"{{"id":"{id}","commentId":"{FIRST}","comment":"Nicer","username":"Grace Hopper","editDate":"{now}"}}"#
            ),
        ),
        ("CommentRemovedEvent", format!(r#"{{"id":"{id}","commentId":"{FIRST}"}}"#)),
        ("PostRemovedEvent", format!(r#"{{"id":"{id}"}}"#)),
    ]
    .into_iter()
    .map(|(event_type, data)| (event_type.to_owned(), 1, data))
    .collect();
    assert_eq!(written, expected);
}

#[test]
fn the_manifest_declares_every_command_and_event_the_code_has() {
    let manifest = Post::manifest();
    assert_eq!(manifest.aggregate_type, "Post");
    assert_eq!(manifest.topic, "SocialMediaPostEvents");

    let events: Vec<String> = [
        created(),
        message_updated("Hi"),
        liked(),
        comment_added(FIRST, GRACE, "Nice"),
        comment_updated(FIRST, GRACE, "Nicer"),
        comment_removed(FIRST),
        removed(),
    ]
    .iter()
    .map(|event| runtime::to_new_event(event).event_type)
    .collect();
    assert_eq!(manifest.events, events);

    let commands: Vec<(String, bool)> = every_command()
        .iter()
        .map(|command| {
            let (name, _) = runtime::to_tagged(command).unwrap_or_else(|e| panic!("{e}"));
            let creates = name == "NewPost";
            (name, creates)
        })
        .collect();
    let declared: Vec<(String, bool)> = manifest.commands.into_iter().map(|c| (c.name, c.creates)).collect();
    assert_eq!(declared, commands);

    for route in &manifest.routes {
        assert!(declared.iter().any(|(name, _)| *name == route.command), "route to unknown {}", route.command);
    }
}

#[test]
fn the_manifest_mounts_the_seeds_routes_matched_ignoring_case() {
    let routes: Vec<_> = Post::manifest()
        .routes
        .into_iter()
        .map(|r| (r.method, r.path, r.command, r.id, r.success_status, r.success_message, r.case_insensitive))
        .collect();
    let route = |method, path: &str, command: &str, message: &str| {
        let id = IdSource::PathParam("id".to_owned());
        (method, path.to_owned(), command.to_owned(), id, 200, message.to_owned(), true)
    };
    assert_eq!(
        routes,
        vec![
            (
                Method::Post,
                "/api/v1/newPost".to_owned(),
                "NewPost".to_owned(),
                IdSource::NewUuid,
                201,
                "New post creation request completed successfully!".to_owned(),
                true
            ),
            route(
                Method::Put,
                "/api/v1/editMessage/{id}",
                "EditMessage",
                "Edit message request completed successfully!"
            ),
            route(Method::Put, "/api/v1/likePost/{id}", "LikePost", "Like post request completed successfully!"),
            route(Method::Put, "/api/v1/addComment/{id}", "AddComment", "Add comment request completed successfully!"),
            route(
                Method::Put,
                "/api/v1/editComment/{id}",
                "EditComment",
                "Edit comment request completed successfully!"
            ),
            route(
                Method::Delete,
                "/api/v1/removeComment/{id}",
                "RemoveComment",
                "Remove comment request completed successfully!"
            ),
            route(
                Method::Delete,
                "/api/v1/deletePost/{id}",
                "DeletePost",
                "Delete post request completed successfully!"
            ),
        ]
    );
}
