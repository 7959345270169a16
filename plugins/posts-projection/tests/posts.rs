//! Given events, when a query runs, then this answer: every event handler and every query of the
//! `posts` projection, on the SDK's in-memory store.

use posts_projection::Posts;
use serde_json::{Value, json};
use sluice_projection_sdk::testing::{ProjectionTest, QueryOutcome};
use sluice_projection_sdk::{Projection, QueryError};

type Test = ProjectionTest<Posts>;

const FIRST: &str = "11111111-1111-4111-8111-111111111111";
const SECOND: &str = "22222222-2222-4222-8222-222222222222";
const THIRD: &str = "33333333-3333-4333-8333-333333333333";
const HELLO: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const AGREED: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

fn created(id: &str, author: &str, date: &str) -> String {
    json!({ "id": id, "author": author, "message": format!("{author} says hi"), "datePosted": date }).to_string()
}

fn post_only(id: &str) -> String {
    json!({ "id": id }).to_string()
}

fn comment_added(id: &str, comment_id: &str, username: &str, comment: &str, date: &str) -> String {
    json!({ "id": id, "commentId": comment_id, "comment": comment, "username": username, "commentDate": date })
        .to_string()
}

/// Posts by Ada (first), Grace (second) and Ada again (third), posted in that order.
fn three_posts() -> Test {
    Test::given(&[])
        .and("PostCreatedEvent", &created(FIRST, "Ada", "2026-01-01T10:00:00.000Z"))
        .and("PostCreatedEvent", &created(SECOND, "Grace", "2026-01-02T10:00:00.000Z"))
        .and("PostCreatedEvent", &created(THIRD, "Ada", "2026-01-03T10:00:00.000Z"))
}

/// Three posts; the first with Grace's and Alan's comments, the second liked twice.
fn busy_posts() -> Test {
    three_posts()
        .and("CommentAddedEvent", &comment_added(FIRST, AGREED, "Alan", "Agreed.", "2026-01-05T10:00:00.000Z"))
        .and("CommentAddedEvent", &comment_added(FIRST, HELLO, "Grace", "Hello!", "2026-01-04T10:00:00.000Z"))
        .and("PostLikedEvent", &post_only(SECOND))
        .and("PostLikedEvent", &post_only(SECOND))
}

/// A 200 answer's message and posts.
#[track_caller]
fn answer(outcome: QueryOutcome) -> (Value, Vec<Value>) {
    let body = outcome.then_expect_status(200).json();
    let posts = body["posts"].as_array().cloned().unwrap_or_else(|| panic!("no posts in {body}"));
    (body["message"].clone(), posts)
}

/// A list's posts, after checking the message counts them as the seed did ("1 post", "2 posts").
#[track_caller]
fn posts(outcome: QueryOutcome) -> Vec<Value> {
    let (message, posts) = answer(outcome);
    let expected = match posts.len() {
        1 => "Successfully returned 1 post!".to_owned(),
        n => format!("Successfully returned {n} posts!"),
    };
    assert_eq!(message, expected);
    posts
}

/// The ids of a 200 answer's posts, in order.
#[track_caller]
fn ids(outcome: QueryOutcome) -> Vec<String> {
    posts(outcome).iter().map(|p| p["postId"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The one post `byId` finds.
#[track_caller]
fn post(test: &mut Test, id: &str) -> Value {
    let (message, mut found) = answer(test.query("byId", &[("postId", id)]));
    assert_eq!(message, "Successfully returned post!");
    assert_eq!(found.len(), 1);
    found.remove(0)
}

#[track_caller]
fn with_likes(test: &mut Test, n: &str) -> QueryOutcome {
    test.query("withLikes", &[("numberOfLikes", n)])
}

#[track_caller]
fn expect_no_content(outcome: QueryOutcome) {
    let outcome = outcome.then_expect_status(204);
    assert_eq!(outcome.result.map(|a| a.body), Ok(String::new()));
}

#[track_caller]
fn expect_invalid(outcome: QueryOutcome) -> String {
    match outcome.result {
        Err(QueryError::Invalid(message)) => message,
        other => panic!("expected an invalid query, got {other:?}"),
    }
}

#[test]
fn declares_the_seed_routes_ignoring_case_and_the_shared_rebuild_route() {
    let manifest = Posts::manifest();
    assert_eq!(manifest.name, "posts");
    assert_eq!(manifest.subscriptions.len(), 7);
    let tables: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tables, ["posts", "comments"]);
    for route in &manifest.routes {
        assert!(manifest.queries.contains(&route.query), "{} names an undeclared query", route.path);
        assert!(route.case_insensitive, "{}: the .NET seed matched routes ignoring case", route.path);
    }
    let rebuild = &manifest.rebuild_routes[0];
    assert_eq!(
        (rebuild.path.as_str(), rebuild.success_status, rebuild.success_message.as_str()),
        ("/api/v1/restoreReadDb", 201, "Read database restore request completed successfully!")
    );
}

#[test]
fn no_posts_is_no_content() {
    let mut test = Test::given(&[]);
    for query in ["all", "withComments"] {
        expect_no_content(test.query(query, &[]));
    }
    expect_no_content(with_likes(&mut test, "0"));
}

#[test]
fn a_new_post_is_listed_as_the_seed_showed_it() {
    let mut test = Test::given(&[]).and("PostCreatedEvent", &created(FIRST, "Ada", "2026-01-01T10:00:00.000Z"));
    assert_eq!(
        test.query("all", &[]).then_expect_status(200).json(),
        json!({
            "message": "Successfully returned 1 post!",
            "posts": [{
                "postId": FIRST,
                "author": "Ada",
                "datePosted": "2026-01-01T10:00:00.000Z",
                "message": "Ada says hi",
                "likes": 0,
                "comments": [],
            }],
        })
    );
}

#[test]
fn all_is_ordered_by_date_posted_then_id() {
    let same_time = "2026-01-01T09:00:00.000Z";
    let mut test = three_posts()
        .and("PostCreatedEvent", &created("z", "Zed", same_time))
        .and("PostCreatedEvent", &created("y", "Y", same_time));
    assert_eq!(ids(test.query("all", &[])), ["y", "z", FIRST, SECOND, THIRD]);
}

#[test]
fn an_edited_message_replaces_the_old_one() {
    let mut test = three_posts().and("MessageUpdatedEvent", &json!({ "id": FIRST, "message": "Edited" }).to_string());
    assert_eq!(post(&mut test, FIRST)["message"], "Edited");
    assert_eq!(post(&mut test, THIRD)["message"], "Ada says hi");
}

#[test]
fn likes_count_up_by_one() {
    let mut test = busy_posts();
    assert_eq!(post(&mut test, SECOND)["likes"], 2);
    assert_eq!(post(&mut test, FIRST)["likes"], 0);
    let mut test = test.and("PostLikedEvent", &post_only(FIRST));
    assert_eq!(post(&mut test, FIRST)["likes"], 1);
}

#[test]
fn comments_are_listed_with_their_post_oldest_first() {
    let mut test = busy_posts();
    assert_eq!(
        post(&mut test, FIRST)["comments"],
        json!([
            { "commentId": HELLO, "username": "Grace", "commentDate": "2026-01-04T10:00:00.000Z", "comment": "Hello!", "edited": false },
            { "commentId": AGREED, "username": "Alan", "commentDate": "2026-01-05T10:00:00.000Z", "comment": "Agreed.", "edited": false },
        ])
    );
    assert_eq!(post(&mut test, SECOND)["comments"], json!([]));
    let all = posts(test.query("all", &[]));
    assert_eq!(all[0]["comments"].as_array().map(Vec::len), Some(2));
    assert_eq!(all[1]["comments"], json!([]));
}

#[test]
fn an_edited_comment_takes_the_edit_date_and_is_marked_edited() {
    let edited = json!({
        "id": FIRST,
        "commentId": HELLO,
        "comment": "Hello again!",
        "username": "GRACE",
        "editDate": "2026-01-06T10:00:00.000Z",
    });
    let mut test = busy_posts().and("CommentUpdatedEvent", &edited.to_string());
    assert_eq!(
        post(&mut test, FIRST)["comments"],
        json!([
            { "commentId": AGREED, "username": "Alan", "commentDate": "2026-01-05T10:00:00.000Z", "comment": "Agreed.", "edited": false },
            { "commentId": HELLO, "username": "Grace", "commentDate": "2026-01-06T10:00:00.000Z", "comment": "Hello again!", "edited": true },
        ])
    );
}

#[test]
fn a_removed_comment_is_gone_and_the_others_stay() {
    let removed = json!({ "id": FIRST, "commentId": HELLO }).to_string();
    let mut test = busy_posts().and("CommentRemovedEvent", &removed);
    let comments = post(&mut test, FIRST)["comments"].clone();
    assert_eq!(
        comments.as_array().map(|c| c.iter().map(|c| c["commentId"].clone()).collect()),
        Some(vec![json!(AGREED)])
    );
}

#[test]
fn a_removed_post_takes_its_comments_with_it() {
    let mut test = busy_posts()
        .and("CommentAddedEvent", &comment_added(THIRD, "c3", "Ada", "Mine", "2026-01-07T10:00:00.000Z"))
        .and("PostRemovedEvent", &post_only(FIRST));
    expect_no_content(test.query("byId", &[("postId", FIRST)]));
    assert_eq!(ids(test.query("all", &[])), [SECOND, THIRD]);
    let comments = test.db().rows("comments");
    assert_eq!(comments.len(), 1, "only the third post's comment is left: {comments:?}");
    let mut test = test.and("PostRemovedEvent", &post_only(SECOND)).and("PostRemovedEvent", &post_only(THIRD));
    expect_no_content(test.query("all", &[]));
    assert!(test.db().rows("comments").is_empty());
}

#[test]
fn events_for_posts_or_comments_not_in_the_tables_change_nothing() {
    let mut test = three_posts()
        .and("MessageUpdatedEvent", &json!({ "id": "nope", "message": "x" }).to_string())
        .and("PostLikedEvent", &post_only("nope"))
        .and("CommentRemovedEvent", &json!({ "id": FIRST, "commentId": HELLO }).to_string())
        .and("PostRemovedEvent", &post_only("nope"));
    assert_eq!(ids(test.query("all", &[])), [FIRST, SECOND, THIRD]);
}

#[test]
fn unreadable_events_are_refused() {
    let mut test = three_posts();
    assert!(test.apply("PostCreatedEvent", &post_only("x")).is_err_and(|e| e.contains("PostCreatedEvent")));
    assert!(test.apply("PostCreatedEvent", &created(FIRST, "Again", "2026-01-09T00:00:00.000Z")).is_err());
    assert!(test.apply("CommentAddedEvent", &post_only(FIRST)).is_err());
}

#[test]
fn by_id_finds_one_post_or_none() {
    let mut test = busy_posts();
    assert_eq!(post(&mut test, SECOND)["postId"], SECOND);
    expect_no_content(test.query("byId", &[("postId", "44444444-4444-4444-8444-444444444444")]));
}

#[test]
fn by_author_finds_every_post_of_the_author() {
    let mut test = busy_posts();
    let found = posts(test.query("byAuthor", &[("author", "Ada")]));
    let found_ids: Vec<&Value> = found.iter().map(|p| &p["postId"]).collect();
    assert_eq!(found_ids, [FIRST, THIRD]);
    assert_eq!(found[0]["comments"].as_array().map(Vec::len), Some(2), "with their comments");
    expect_no_content(test.query("byAuthor", &[("author", "Alan")]));
}

#[test]
fn with_comments_lists_only_posts_that_have_some() {
    let mut test =
        busy_posts().and("CommentAddedEvent", &comment_added(THIRD, "c3", "Ada", "Mine", "2026-01-07T10:00:00.000Z"));
    assert_eq!(ids(test.query("withComments", &[])), [FIRST, THIRD]);
    let mut test = test.and("CommentRemovedEvent", &json!({ "id": THIRD, "commentId": "c3" }).to_string());
    assert_eq!(ids(test.query("withComments", &[])), [FIRST]);
    expect_no_content(three_posts().query("withComments", &[]));
}

#[test]
fn with_likes_includes_posts_with_exactly_that_many() {
    let mut test = busy_posts().and("PostLikedEvent", &post_only(THIRD));
    assert_eq!(ids(with_likes(&mut test, "0")), [FIRST, SECOND, THIRD]);
    assert_eq!(ids(with_likes(&mut test, "1")), [SECOND, THIRD]);
    assert_eq!(ids(with_likes(&mut test, "2")), [SECOND]);
    expect_no_content(with_likes(&mut test, "3"));
    expect_no_content(with_likes(&mut test, &i64::MAX.to_string()));
}

#[test]
fn with_likes_refuses_what_is_not_a_whole_number_from_zero() {
    let mut test = busy_posts();
    for n in ["-1", "1.5", "many", "", "99999999999999999999"] {
        let message = expect_invalid(with_likes(&mut test, n));
        assert!(message.starts_with("numberOfLikes must be a whole number"), "{message}");
    }
}

#[test]
fn missing_parameters_and_unknown_queries_are_refused() {
    let mut test = busy_posts();
    assert!(expect_invalid(test.query("byId", &[])).contains("postId"));
    assert!(expect_invalid(test.query("byAuthor", &[])).contains("author"));
    assert!(expect_invalid(test.query("withLikes", &[])).contains("numberOfLikes"));
    assert!(matches!(test.query("byLikes", &[]).result, Err(QueryError::UnknownQuery(name)) if name == "byLikes"));
}
