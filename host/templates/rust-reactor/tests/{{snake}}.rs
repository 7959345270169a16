//! Given an event, then these messages: the reactor's behaviour, natively.

use serde_json::json;
use sluice_sdk::testing::ReactorTest;
use {{snake}}::{ {{Pascal}}, CHANNEL };

const ID: &str = "6f1c1a52-1d0e-4c55-9d7e-3d6c2a1b0c01";

#[test]
fn a_subscribed_event_sends_one_message_keyed_by_its_aggregate() {
    ReactorTest::<{{Pascal}}>::given_event("Thing", ID, 42, "{{Pascal}}Requested", r#"{"what":"tea"}"#).then_sends(&[(
        CHANNEL,
        ID,
        json!({"id": ID, "event": "{{Pascal}}Requested", "position": 42, "data": {"what": "tea"}}),
    )]);
}

#[test]
fn an_event_it_does_not_subscribe_to_sends_nothing() {
    ReactorTest::<{{Pascal}}>::given_event("Thing", ID, 1, "SomethingElse", r#"{"what":"tea"}"#).then_sends_nothing();
}

#[test]
fn data_that_is_not_an_object_is_refused() {
    ReactorTest::<{{Pascal}}>::given_event("Thing", ID, 3, "{{Pascal}}Requested", "[1, 2]").then_refuses("not a JSON object");
}
