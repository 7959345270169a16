//! Given these events, when this query, then this answer: on the SDK's in-memory store.

use serde_json::json;
use sluice_projection_sdk::testing::ProjectionTest;
use {{snake}}::{{Pascal}};

type Test = ProjectionTest<{{Pascal}}>;

fn created(id: &str, name: &str) -> String {
    json!({ "id": id, "name": name }).to_string()
}

#[test]
fn nothing_yet_is_no_content() {
    Test::given(&[]).query("all", &[]).then_expect_status(204);
}

#[test]
fn created_items_are_listed_and_found_by_id() {
    let mut test = Test::given(&[]).and("ItemCreatedEvent", &created("a", "First")).and("ItemCreatedEvent", &created("b", "Second"));
    let all = test.query("all", &[]).then_expect_status(200).json();
    assert_eq!(all["message"], "Successfully returned 2 item(s)!");
    assert_eq!(all["items"][1], json!({ "id": "b", "name": "Second", "renames": 0 }));
    let one = test.query("byId", &[("id", "a")]).then_expect_status(200).json();
    assert_eq!(one["items"], json!([{ "id": "a", "name": "First", "renames": 0 }]));
}

#[test]
fn a_rename_counts_and_an_archive_removes() {
    let mut test = Test::given(&[])
        .and("ItemCreatedEvent", &created("a", "First"))
        .and("ItemRenamedEvent", &created("a", "Renamed"))
        .and("ItemCreatedEvent", &created("b", "Other"))
        .and("ItemArchivedEvent", &json!({ "id": "b" }).to_string());
    let all = test.query("all", &[]).then_expect_status(200).json();
    assert_eq!(all["items"], json!([{ "id": "a", "name": "Renamed", "renames": 1 }]));
}

#[test]
fn an_unreadable_event_is_refused() {
    let mut test = Test::given(&[]);
    assert!(test.apply("ItemCreatedEvent", r#"{"id":1}"#).is_err());
}
