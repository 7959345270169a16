//! Given these events, when this command, then these events or this refusal.

use sluice_sdk::testing::{AggregateTest, test_context};
use {{snake}}::{ {{Pascal}}, {{Pascal}}Command, {{Pascal}}Event };

type Test = AggregateTest<{{Pascal}}>;

fn id() -> String {
    test_context().aggregate_id
}

fn created(name: &str) -> {{Pascal}}Event {
    {{Pascal}}Event::Created { id: id(), name: name.to_owned() }
}

#[test]
fn create_names_it() {
    Test::given_no_previous_events()
        .when({{Pascal}}Command::Create{{Pascal}} { name: " First ".to_owned() })
        .then_expect_events(vec![created("First")]);
}

#[test]
fn an_empty_name_is_invalid() {
    Test::given_no_previous_events().when({{Pascal}}Command::Create{{Pascal}} { name: "  ".to_owned() }).then_expect_invalid("name");
}

#[test]
fn it_cannot_be_created_twice() {
    Test::given(vec![created("First")])
        .when({{Pascal}}Command::Create{{Pascal}} { name: "Again".to_owned() })
        .then_expect_rejected("exists");
}

#[test]
fn rename_to_the_same_name_changes_nothing() {
    Test::given(vec![created("First")]).when({{Pascal}}Command::Rename{{Pascal}} { name: "First".to_owned() }).then_expect_events(vec![]);
    Test::given(vec![created("First")])
        .when({{Pascal}}Command::Rename{{Pascal}} { name: "Second".to_owned() })
        .then_expect_events(vec![{{Pascal}}Event::Renamed { id: id(), name: "Second".to_owned() }]);
}

#[test]
fn an_archived_one_refuses_everything() {
    let archived = vec![created("First"), {{Pascal}}Event::Archived { id: id() }];
    Test::given(archived.clone()).when({{Pascal}}Command::Rename{{Pascal}} { name: "x".to_owned() }).then_expect_rejected("archived");
    Test::given(archived).when({{Pascal}}Command::Archive{{Pascal}} {}).then_expect_rejected("archived");
}

#[test]
fn a_request_body_reads_as_its_command() {
    Test::given_no_previous_events().when_json("Create{{Pascal}}", r#"{"name":"From JSON"}"#).then_expect_events(vec![created("From JSON")]);
}
