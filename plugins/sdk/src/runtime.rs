//! The JSON glue between envelopes and typed commands and events.
//!
//! Both the component exports and native callers (tests, the host's benchmark) go through
//! these functions, so what is tested natively is what runs in the sandbox.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::aggregate::{Aggregate, CommandContext, CommandError, DomainEvent, NewEvent, StoredEvent};

/// Rebuild the state: `state` (or the default) with `events` applied in order.
pub fn evolve<A: Aggregate>(state: Option<&[u8]>, events: &[StoredEvent]) -> Result<Vec<u8>, String> {
    let mut aggregate = load::<A>(state)?;
    for event in events {
        let data = A::Event::upcast(&event.event_type, event.schema_version, event.data.clone())?;
        let typed: A::Event = from_tagged(&event.event_type, &data)
            .map_err(|e| format!("event {} v{} cannot be read: {e}", event.event_type, event.version))?;
        aggregate.apply(typed);
    }
    save(&aggregate)
}

/// Decide on a command given as its type and JSON body.
pub fn decide<A: Aggregate>(
    state: Option<&[u8]>,
    command_type: &str,
    data: &str,
    ctx: &CommandContext,
) -> Result<Vec<NewEvent>, CommandError> {
    // A state the host got from `evolve` always loads; failing here is a plugin bug.
    let aggregate = load::<A>(state).unwrap_or_else(|e| panic!("{e}"));
    let command: A::Command = from_tagged(command_type, data).map_err(CommandError::Invalid)?;
    let events = aggregate.handle(command, ctx)?;
    Ok(events.iter().map(to_new_event).collect())
}

/// The state as JSON text.
pub fn render<A: Aggregate>(state: &[u8]) -> Result<String, String> {
    let aggregate = load::<A>(Some(state))?;
    serde_json::to_string(&aggregate).map_err(|e| e.to_string())
}

/// An event as the envelope the host stores, at its type's current schema version.
pub fn to_new_event<E: DomainEvent>(event: &E) -> NewEvent {
    let (event_type, data) = to_tagged(event).unwrap_or_else(|e| panic!("event cannot be written: {e}"));
    NewEvent { schema_version: E::current_schema_version(&event_type), event_type, data }
}

/// Bring stored events to their type's current schema version (what the host asks of a 0.2.0
/// plugin before anything sees them): one result per event, in order. The upcast data must read
/// as the current event, so a broken upcaster fails here, not in a projection. Fails on a
/// version older than the oldest the plugin reads, or newer than the current one.
pub fn upcast<A: Aggregate>(events: &[StoredEvent]) -> Result<Vec<NewEvent>, String> {
    events
        .iter()
        .map(|event| {
            let event_type = &event.event_type;
            let current = A::Event::current_schema_version(event_type);
            let oldest = A::Event::oldest_schema_version(event_type);
            let what = format!("event {event_type} v{} (schema {})", event.version, event.schema_version);
            if !(oldest..=current).contains(&event.schema_version) {
                return Err(format!("{what}: this plugin reads schema versions {oldest}..={current}"));
            }
            let data = A::Event::upcast(event_type, event.schema_version, event.data.clone())
                .map_err(|e| format!("{what} cannot be upcast: {e}"))?;
            from_tagged::<A::Event>(event_type, &data)
                .map_err(|e| format!("{what} upcast to schema {current} does not read as one: {e}"))?;
            Ok(NewEvent { event_type: event_type.clone(), schema_version: current, data })
        })
        .collect()
}

/// Read `data` as the variant `tag` of an externally tagged enum.
pub fn from_tagged<T: serde::de::DeserializeOwned>(tag: &str, data: &str) -> Result<T, String> {
    let tag_json = serde_json::to_string(tag).map_err(|e| e.to_string())?;
    let text = format!("{{{tag_json}:{data}}}");
    serde_json::from_str(&text).map_err(|e| without_position(&e))
}

/// Split an externally tagged enum value into its variant name and JSON data.
pub fn to_tagged<T: Serialize>(value: &T) -> Result<(String, String), String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    let map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(&text).map_err(|_| format!("{text} is not a variant with data"))?;
    let mut entries = map.into_iter();
    match (entries.next(), entries.next()) {
        (Some((tag, data)), None) => Ok((tag, data.get().to_owned())),
        _ => Err(format!("{text} is not a single variant")),
    }
}

fn load<A: Aggregate>(state: Option<&[u8]>) -> Result<A, String> {
    match state {
        None => Ok(A::default()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| format!("state cannot be read: {e}")),
    }
}

fn save<A: Aggregate>(aggregate: &A) -> Result<Vec<u8>, String> {
    serde_json::to_vec(aggregate).map_err(|e| format!("state cannot be written: {e}"))
}

/// serde_json's positions point into the wrapper we built, not the caller's body.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}
