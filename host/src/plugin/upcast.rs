//! Upcasting at one point: every path that hands stored events to a plugin (command replay and
//! cached-state catch-up, rendered and temporal state, the events route's `?upcast=true`,
//! projections fed by the embedded bus or by Kafka, rebuilds) passes them through here first.
//!
//! An event whose type has a declared current schema version (a WIT 0.2.0 aggregate) and is
//! stored at another version goes through the `upcast` of the aggregate that owns its aggregate
//! type, in one call per owner and batch; the envelope keeps everything but its schema version
//! and data. Events already current, and events of 0.1.0 aggregates (which declare no versions
//! and read their own history as stored), pass through without a copy or a Wasm call, so the hot
//! path stays free. Stored events are never rewritten: upcasting happens on the way out.

use std::borrow::Cow;
use std::sync::Arc;

use super::{AggregateLogic, PluginFault, PluginRegistry};
use crate::event_store::StoredEvent;

/// Brings events to the current shape through the aggregates loaded in a registry (the one
/// that is current when the batch arrives, so a replaced aggregate's new upcasters apply from
/// the next batch on).
#[derive(Clone, Default)]
pub struct Upcaster {
    /// `None`: nothing is upcast (benchmarks, which run no aggregate plugins).
    registry: Option<PluginRegistry>,
}

impl Upcaster {
    pub fn new(registry: PluginRegistry) -> Self {
        Self { registry: Some(registry) }
    }

    /// An upcaster that passes every event as stored.
    pub fn none() -> Self {
        Self::default()
    }

    /// `events` with every old event upcast by its aggregate: borrowed as they are when none
    /// needs it. Events of an aggregate type no loaded plugin owns pass as stored. Fails when
    /// an owner's upcaster fails (a plugin or data fault).
    pub async fn upcast<'a>(&self, events: &'a [StoredEvent]) -> Result<Cow<'a, [StoredEvent]>, PluginFault> {
        self.upcast_where(events, |_| true).await
    }

    /// [`Self::upcast`] for the events `wanted` picks; the others pass as stored (a projection
    /// never sees the events it does not subscribe to, so they are not worth a Wasm call).
    pub async fn upcast_where<'a>(
        &self,
        events: &'a [StoredEvent],
        wanted: impl Fn(&StoredEvent) -> bool,
    ) -> Result<Cow<'a, [StoredEvent]>, PluginFault> {
        let Some(registry) = &self.registry else { return Ok(Cow::Borrowed(events)) };
        // Per aggregate type, its owner and the positions in `events` of its old events; owners
        // are looked up once per type.
        let mut owners: Vec<(&str, Option<Owner>, Vec<usize>)> = Vec::new();
        for (i, event) in events.iter().enumerate().filter(|(_, e)| wanted(e)) {
            let at = match owners.iter().position(|(t, ..)| *t == event.aggregate_type) {
                Some(at) => at,
                None => {
                    owners.push((event.aggregate_type.as_str(), registry.aggregate(&event.aggregate_type), Vec::new()));
                    owners.len() - 1
                }
            };
            let (_, owner, old) = &mut owners[at];
            if owner.as_ref().is_some_and(|o| o.manifest().needs_upcast(&event.event_type, event.schema_version)) {
                old.push(i);
            }
        }
        if owners.iter().all(|(.., old)| old.is_empty()) {
            return Ok(Cow::Borrowed(events));
        }
        let mut out = events.to_vec();
        for (_, owner, old) in owners {
            let Some(owner) = owner.filter(|_| !old.is_empty()) else { continue };
            let picked: Vec<StoredEvent> = old.iter().map(|&i| events[i].clone()).collect();
            let plugin = owner.manifest().aggregate_type.clone();
            // A Wasm call: off the async threads.
            let upcast = tokio::task::spawn_blocking(move || upcast_all(&*owner, picked))
                .await
                .map_err(|e| PluginFault::Trapped { plugin, detail: format!("host task failed: {e}") })??;
            for (i, event) in old.into_iter().zip(upcast) {
                out[i] = event;
            }
        }
        Ok(Cow::Owned(out))
    }
}

/// The loaded aggregate that owns an aggregate type.
type Owner = Arc<dyn AggregateLogic>;

/// `events` (of `logic`'s aggregate type) with the old ones upcast by `logic`: for the paths
/// that already hold the aggregate and run on a blocking thread (commands, state).
pub fn upcast_with(logic: &dyn AggregateLogic, events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>, PluginFault> {
    let manifest = logic.manifest();
    let old: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.aggregate_type == manifest.aggregate_type)
        .filter(|(_, e)| manifest.needs_upcast(&e.event_type, e.schema_version))
        .map(|(i, _)| i)
        .collect();
    if old.is_empty() {
        return Ok(events);
    }
    let picked: Vec<StoredEvent> = old.iter().map(|&i| events[i].clone()).collect();
    let upcast = upcast_all(logic, picked)?;
    let mut events = events;
    for (i, event) in old.into_iter().zip(upcast) {
        events[i] = event;
    }
    Ok(events)
}

/// One call of `logic`'s upcaster over `events`, its answer held to the contract: one event per
/// event, in order, of the same type, at the type's current version, carrying a JSON object.
fn upcast_all(logic: &dyn AggregateLogic, events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>, PluginFault> {
    let manifest = logic.manifest();
    let fault = |detail: String| PluginFault::Contract { plugin: manifest.aggregate_type.clone(), detail };
    let upcast = logic.upcast(&events)?;
    if upcast.len() != events.len() {
        return Err(fault(format!("upcast {} events into {}", events.len(), upcast.len())));
    }
    events
        .into_iter()
        .zip(upcast)
        .map(|(stored, new)| {
            let what = format!(
                "{} v{} of {} {}",
                stored.event_type, stored.schema_version, stored.aggregate_type, stored.aggregate_id
            );
            if new.event_type != stored.event_type {
                return Err(fault(format!("upcast {what} into another event type, {}", new.event_type)));
            }
            let current = manifest.schema(&stored.event_type).map_or(stored.schema_version, |s| s.current);
            if new.schema_version != current {
                return Err(fault(format!(
                    "upcast {what} to schema version {}, not the current {current}",
                    new.schema_version
                )));
            }
            if !new.data.trim_start().starts_with('{')
                || serde_json::from_str::<serde::de::IgnoredAny>(&new.data).is_err()
            {
                return Err(fault(format!("upcast {what} into data that is no JSON object")));
            }
            Ok(StoredEvent { schema_version: new.schema_version, data: new.data, ..stored })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::event_store::NewEvent;
    use crate::plugin::{AggregateManifest, CommandInput, CommandSpec, Decision, EventSchema, Plugin};

    /// An aggregate whose `Moved` is at version 2 (`to` for version 1's `at`), answering its
    /// upcasts with `answer` (the right one when `None`) and counting its calls.
    struct Thing {
        manifest: AggregateManifest,
        answer: Option<Vec<NewEvent>>,
        calls: Mutex<Vec<usize>>,
    }

    fn thing(schemas: Option<Vec<EventSchema>>, answer: Option<Vec<NewEvent>>) -> Arc<Thing> {
        Arc::new(Thing {
            manifest: AggregateManifest {
                aggregate_type: "Thing".into(),
                commands: vec![CommandSpec { name: "Move".into(), creates: true, body_schema: None }],
                events: vec!["Made".into(), "Moved".into()],
                routes: Vec::new(),
                topic: "Things".into(),
                schemas,
            },
            answer,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn moved_at_2() -> Option<Vec<EventSchema>> {
        Some(vec![EventSchema::FIRST, EventSchema { current: 2, oldest: 1 }])
    }

    impl AggregateLogic for Thing {
        fn manifest(&self) -> &AggregateManifest {
            &self.manifest
        }
        fn execute(&self, _: Option<&[u8]>, _: &[StoredEvent], _: &CommandInput) -> Result<Decision, PluginFault> {
            Ok(Decision { state: None, verdict: Ok(Vec::new()), after: None })
        }
        fn render(&self, _: &[StoredEvent]) -> Result<String, PluginFault> {
            Ok("{}".into())
        }
        fn upcast(&self, events: &[StoredEvent]) -> Result<Vec<NewEvent>, PluginFault> {
            self.calls.lock().expect("not poisoned").push(events.len());
            if let Some(answer) = &self.answer {
                return Ok(answer.clone());
            }
            Ok(events
                .iter()
                .map(|e| NewEvent {
                    event_type: e.event_type.clone(),
                    schema_version: 2,
                    data: e.data.replace("\"at\"", "\"to\""),
                })
                .collect())
        }
    }

    fn event(aggregate_type: &str, position: u64, event_type: &str, schema_version: u32, data: &str) -> StoredEvent {
        StoredEvent {
            aggregate_type: aggregate_type.into(),
            aggregate_id: "t-1".into(),
            version: position,
            global_position: position,
            event_type: event_type.into(),
            schema_version,
            data: data.into(),
            recorded_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    fn registry_with(logic: Arc<Thing>) -> PluginRegistry {
        let registry = PluginRegistry::new();
        registry.add(Plugin::Aggregate(logic), "thing.wasm".into(), String::new()).expect("added");
        registry
    }

    #[tokio::test]
    async fn current_events_pass_borrowed_without_a_call() {
        let logic = thing(moved_at_2(), None);
        let upcaster = Upcaster::new(registry_with(logic.clone()));
        let events = vec![
            event("Thing", 1, "Made", 1, "{}"),
            event("Thing", 2, "Moved", 2, r#"{"to":1}"#),
            event("Other", 3, "Moved", 1, "{}"),
        ];
        let out = upcaster.upcast(&events).await.expect("upcast");
        assert!(matches!(out, Cow::Borrowed(_)), "nothing to upcast: no copy");
        assert!(logic.calls.lock().expect("not poisoned").is_empty(), "no Wasm call");
        assert!(matches!(Upcaster::none().upcast(&events).await.expect("upcast"), Cow::Borrowed(_)));
    }

    #[tokio::test]
    async fn old_events_are_upcast_in_one_call_keeping_their_envelope() {
        let logic = thing(moved_at_2(), None);
        let upcaster = Upcaster::new(registry_with(logic.clone()));
        let events = vec![
            event("Thing", 1, "Moved", 1, r#"{"at":1}"#),
            event("Thing", 2, "Made", 1, "{}"),
            event("Thing", 3, "Moved", 1, r#"{"at":3}"#),
            event("Nobody", 4, "Moved", 1, r#"{"at":4}"#),
        ];
        let out = upcaster.upcast(&events).await.expect("upcast").into_owned();
        assert_eq!(*logic.calls.lock().expect("not poisoned"), [2], "one call for the two old events");
        assert_eq!((out[0].schema_version, out[0].data.as_str()), (2, r#"{"to":1}"#));
        assert_eq!((out[0].global_position, out[0].version), (1, 1), "the envelope is kept");
        assert_eq!(out[1], events[1]);
        assert_eq!((out[2].schema_version, out[2].data.as_str()), (2, r#"{"to":3}"#));
        assert_eq!(out[3], events[3], "no loaded aggregate owns it: as stored");

        let only_made = upcaster.upcast_where(&events, |e| e.event_type == "Made").await.expect("upcast");
        assert!(matches!(only_made, Cow::Borrowed(_)), "the events not wanted are not upcast");
    }

    #[test]
    fn a_plugin_declaring_no_versions_is_never_asked() {
        let logic = thing(None, None);
        let events = vec![event("Thing", 1, "Moved", 1, r#"{"at":1}"#), event("Thing", 2, "Moved", 7, "{}")];
        assert_eq!(upcast_with(&*logic, events.clone()).expect("upcast"), events);
        assert!(logic.calls.lock().expect("not poisoned").is_empty());
    }

    #[test]
    fn answers_that_break_the_contract_are_faults() {
        let old = vec![event("Thing", 1, "Moved", 1, r#"{"at":1}"#)];
        let answer = |event_type: &str, schema_version: u32, data: &str| {
            vec![NewEvent { event_type: event_type.into(), schema_version, data: data.into() }]
        };
        for (answer, fault) in [
            (Vec::new(), "upcast 1 events into 0"),
            (answer("Made", 2, "{}"), "another event type"),
            (answer("Moved", 3, "{}"), "not the current 2"),
            (answer("Moved", 2, "[1]"), "no JSON object"),
        ] {
            let logic = thing(moved_at_2(), Some(answer));
            let error = upcast_with(&*logic, old.clone()).expect_err("a fault");
            assert!(error.to_string().contains(fault), "{error} should say {fault:?}");
        }
    }
}
