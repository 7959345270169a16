//! Aggregate plugins: [`WasmAggregate`], which runs commands (and each upcast) in instances of a
//! pre-linked component, through the bindings of the WIT version the component exports (0.1.0,
//! 0.2.0 or 0.3.0, linked side by side).
//!
//! A command is one call into a 0.3.0 component (`execute`: evolve what the host's state lacks,
//! decide, and apply the decided events, so the host keeps the state after the command and the
//! next one has nothing to evolve), two into older ones (`evolve` of the events appended since the
//! host's state, then `decide`). Measured with `scripts/bench` ("a command on the state the last
//! one left in the cache", one thread), the reference aggregate: 117,922 calls/s as 0.2.0 (evolve one
//! event, then decide), 176,580 as 0.3.0. Over HTTP, Wasm ÷ native through the host, with the
//! load switched between the hosts every 2 s (`--http-native --http-interleave 60`), both in
//! `sluice-bench serve`: 0.896 and 0.895 with an instance dropped every 64 commands; every
//! 1,024, 0.874 to 0.947 over five runs of two builds (median 0.927), and `sluice serve` against
//! the same native side 0.905 to 0.966 (median 0.948).
//!
//! A command's instance serves a batch: once it has decided, it goes back to a small set of warm
//! instances of the same plugin, and the next command of that plugin takes it instead of
//! instantiating again, for up to [`CALLS_PER_INSTANCE`] commands, or until its memory has grown
//! past a quarter of the sandbox's cap (a guest that leaks gets a fresh instance long before it
//! would run out: `tests/tests/sandbox.rs`); then it is dropped and a fresh one starts. An
//! instance that faulted, wrote to stderr, was refused memory or was stopped mid-call is never
//! reused. Each call has its own deadline and the store's memory cap. Measured
//! with `scripts/bench` (then "cached state + 1 new event + decide", one thread): 34,000 calls/s with a
//! fresh instance per command, 91,000 with warm ones; instantiating and dropping an instance alone
//! cost 12 µs, and a fresh instance's first calls pay its page faults on top. Nothing crosses
//! plugins: an instance only ever serves its own plugin. Within a batch, a guest that kept
//! globals between calls would see its own earlier commands; the contract (docs/plugins.md) is
//! that decide and evolve depend on their arguments alone, as every SDK aggregate does.
//!
//! Calls are async. A command's decide runs right on the async worker that received the
//! command, and the guest yields to the executor at every epoch tick, so a slow or spinning
//! plugin shares the worker instead of holding it, and is stopped at the call timeout as before.
//! Handing each call to a blocking thread and back cost two thread switches per command, which
//! measured as more host CPU than the sandbox itself. The synchronous entry points (describe at
//! load, render, upcast, all on threads that may block) drive the same futures to completion in
//! place.

use wasmtime::Store;

use crate::idle::IdleList;
use wasmtime::component::{Component, Linker};

use futures::executor::block_on;
use futures::future::BoxFuture;

use super::{PluginCtx, RuntimeError, WasmRuntime, classify_fault, fault_outcome, observed, observed_async};
use crate::event_store::{NewEvent, StoredEvent};
use crate::plugin::{
    AggregateLogic, AggregateManifest, CommandInput, CommandRoute, CommandSpec, Decision, EventSchema, HttpMethod,
    IdSource, PluginFault, Refusal,
};

use crate::bindings::aggregate::exports::sluice::plugin::aggregate as wit;
use crate::bindings::aggregate::{AggregatePlugin, AggregatePluginPre};
use crate::bindings::aggregate_v2 as v2;
use crate::bindings::aggregate_v2::exports::sluice::plugin::aggregate as wit_v2;
use crate::bindings::aggregate_v3 as v3;
use crate::bindings::aggregate_v3::exports::sluice::plugin::aggregate as wit_v3;
use crate::bindings::{types, types_v2};

/// Commands one instance decides before it is dropped for a fresh one (sooner when its memory
/// grows large). Every 64 commands, the fresh instances and the page faults of their memory
/// measured about 4% of the host's throughput under load (module doc).
pub const CALLS_PER_INSTANCE: u32 = 1024;

/// Warm instances kept between commands, per plugin: about one per async worker is used under
/// load; more only hold pool slots.
const WARM_INSTANCES: usize = 8;

/// An aggregate plugin loaded from a component of either WIT version.
pub struct WasmAggregate {
    runtime: WasmRuntime,
    pre: Pre,
    manifest: AggregateManifest,
    /// Where its `log` lines go (0.2.0 components that import it).
    log: std::sync::Arc<crate::capabilities::log::LogSink>,
    /// Instances that decided a command cleanly and may decide the next ones.
    warm: IdleList<Warm>,
    /// The metrics of its commands.
    decides: crate::telemetry::PluginCalls,
}

/// An instance between two commands of its batch.
struct Warm {
    store: Store<PluginCtx>,
    instance: Instance,
    /// Commands it has decided.
    calls: u32,
}

/// The pre-linked component, by the WIT version it exports.
enum Pre {
    V1(AggregatePluginPre<PluginCtx>),
    V2(v2::UpcastingAggregatePluginPre<PluginCtx>),
    V3(v3::ExecutingAggregatePluginPre<PluginCtx>),
}

/// One fresh instance, by WIT version.
enum Instance {
    V1(AggregatePlugin),
    V2(v2::UpcastingAggregatePlugin),
    V3(v3::ExecutingAggregatePlugin),
}

/// The export of a 0.3.0 aggregate component.
pub const EXPORT_V3: &str = "sluice:plugin/aggregate@0.3.0";
/// The export of a 0.2.0 aggregate component.
pub const EXPORT_V2: &str = "sluice:plugin/aggregate@0.2.0";
/// The export of a 0.1.0 aggregate component.
pub const EXPORT_V1: &str = "sluice:plugin/aggregate@0.1.0";

/// The WIT version of an aggregate component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `sluice:plugin/aggregate@0.1.0`: no schema versions, no upcaster.
    V0_1,
    /// `sluice:plugin/aggregate@0.2.0`: schema versions per event type and `upcast`.
    V0_2,
    /// `sluice:plugin/aggregate@0.3.0`: `execute` (evolve, decide, apply) in place of `decide`.
    V0_3,
}

impl WasmAggregate {
    /// Link a compiled component, by the WIT version its export names, and read its manifest.
    /// `origin` names it in errors.
    pub fn load(runtime: &WasmRuntime, origin: &str, component: &Component) -> Result<Self, RuntimeError> {
        let exports =
            |export: &str| component.component_type().exports(runtime.engine()).any(|(name, _)| name == export);
        let version = if exports(EXPORT_V3) {
            Version::V0_3
        } else if exports(EXPORT_V2) {
            Version::V0_2
        } else {
            Version::V0_1
        };
        let link_error =
            |e: wasmtime::Error| RuntimeError::Link { origin: origin.to_owned(), reason: format!("{e:#}") };
        let mut linker = Linker::<PluginCtx>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_error)?;
        // Every component gets `log`; one that does not import it (all of 0.1.0) never sees it.
        super::link_log(&mut linker).map_err(link_error)?;
        super::link_log_v3(&mut linker).map_err(link_error)?;
        let instance_pre = linker.instantiate_pre(component).map_err(link_error)?;
        let pre = match version {
            Version::V0_1 => Pre::V1(AggregatePluginPre::new(instance_pre).map_err(link_error)?),
            Version::V0_2 => Pre::V2(v2::UpcastingAggregatePluginPre::new(instance_pre).map_err(link_error)?),
            Version::V0_3 => Pre::V3(v3::ExecutingAggregatePluginPre::new(instance_pre).map_err(link_error)?),
        };
        let name = origin.to_owned();
        let mut store = runtime.new_yielding_store(runtime.limits().describe_timeout);
        let contract = |store: &Store<PluginCtx>, e: wasmtime::Error| RuntimeError::Contract {
            plugin: name.clone(),
            reason: classify_fault(&name, store, &e).to_string(),
        };
        let manifest = match &pre {
            Pre::V1(pre) => {
                let described = block_on(async {
                    let plugin = pre.instantiate_async(&mut store).await?;
                    plugin.sluice_plugin_aggregate().call_describe(&mut store).await
                });
                from_wit_manifest(described.map_err(|e| contract(&store, e))?)
            }
            Pre::V2(pre) => {
                let described = block_on(async {
                    let plugin = pre.instantiate_async(&mut store).await?;
                    plugin.sluice_plugin_aggregate().call_describe(&mut store).await
                });
                from_wit_manifest_v2(described.map_err(|e| contract(&store, e))?)
                    .map_err(|reason| RuntimeError::Contract { plugin: name.clone(), reason })?
            }
            Pre::V3(pre) => {
                let described = block_on(async {
                    let plugin = pre.instantiate_async(&mut store).await?;
                    plugin.sluice_plugin_aggregate().call_describe(&mut store).await
                });
                from_wit_manifest_v3(described.map_err(|e| contract(&store, e))?)
                    .map_err(|reason| RuntimeError::Contract { plugin: name.clone(), reason })?
            }
        };
        manifest
            .validate()
            .map_err(|reason| RuntimeError::Contract { plugin: name, reason: format!("invalid manifest: {reason}") })?;
        let log = crate::capabilities::log::LogSink::new(manifest.aggregate_type.clone());
        let decides = crate::telemetry::PluginCalls::new(&manifest.aggregate_type, "decide");
        Ok(Self { runtime: runtime.clone(), pre, manifest, log, warm: IdleList::new(WARM_INSTANCES), decides })
    }

    /// The WIT version the component exports.
    pub fn version(&self) -> Version {
        match self.pre {
            Pre::V1(_) => Version::V0_1,
            Pre::V2(_) => Version::V0_2,
            Pre::V3(_) => Version::V0_3,
        }
    }

    /// A fresh instance in a fresh store that yields at each epoch tick and stops at the call
    /// timeout.
    async fn instantiate(&self) -> Result<(Store<PluginCtx>, Instance), PluginFault> {
        let mut store = self.runtime.new_yielding_store(self.runtime.limits().call_timeout);
        store.data_mut().log.grant(self.log.clone());
        let instance = match &self.pre {
            Pre::V1(pre) => pre.instantiate_async(&mut store).await.map(Instance::V1),
            Pre::V2(pre) => pre.instantiate_async(&mut store).await.map(Instance::V2),
            Pre::V3(pre) => pre.instantiate_async(&mut store).await.map(Instance::V3),
        };
        match instance {
            Ok(instance) => Ok((store, instance)),
            Err(e) => Err(classify_fault(&self.manifest.aggregate_type, &store, &e)),
        }
    }

    async fn evolve(
        &self,
        store: &mut Store<PluginCtx>,
        instance: &Instance,
        state: Option<&[u8]>,
        events: &[StoredEvent],
    ) -> Result<Vec<u8>, PluginFault> {
        let evolved = match instance {
            Instance::V1(plugin) => {
                let envelopes: Vec<types::EventEnvelope> = events.iter().map(to_envelope).collect();
                plugin.sluice_plugin_aggregate().call_evolve(&mut *store, state, &envelopes).await
            }
            Instance::V2(plugin) => {
                let envelopes: Vec<types_v2::EventEnvelope> = events.iter().map(to_envelope_v2).collect();
                plugin.sluice_plugin_aggregate().call_evolve(&mut *store, state, &envelopes).await
            }
            Instance::V3(plugin) => {
                let envelopes: Vec<types_v2::EventEnvelope> = events.iter().map(to_envelope_v2).collect();
                plugin.sluice_plugin_aggregate().call_evolve(&mut *store, state, &envelopes).await
            }
        };
        match evolved {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(reason)) => Err(self.contract(format!("cannot replay its own events: {reason}"))),
            Err(e) => Err(classify_fault(&self.manifest.aggregate_type, store, &e)),
        }
    }

    async fn decide(
        &self,
        store: &mut Store<PluginCtx>,
        instance: &Instance,
        state: Option<&[u8]>,
        command: &CommandInput,
    ) -> Result<Result<Vec<NewEvent>, Refusal>, PluginFault> {
        let decided = match instance {
            Instance::V1(plugin) => {
                let command = wit::Command {
                    command_type: command.command_type.clone(),
                    aggregate_id: command.aggregate_id.clone(),
                    data: command.data.clone(),
                    issued_at: command.issued_at.clone(),
                    fresh_id: command.fresh_id.clone(),
                };
                plugin.sluice_plugin_aggregate().call_decide(&mut *store, state, &command).await.map(|verdict| {
                    verdict
                        .map(|events| {
                            events
                                .into_iter()
                                .map(|e| NewEvent {
                                    event_type: e.event_type,
                                    schema_version: e.schema_version,
                                    data: e.data,
                                })
                                .collect()
                        })
                        .map_err(|refusal| match refusal {
                            wit::CommandError::Invalid(m) => Refusal::Invalid(m),
                            wit::CommandError::Rejected(m) => Refusal::Rejected(m),
                            wit::CommandError::NotFound(m) => Refusal::NotFound(m),
                        })
                })
            }
            Instance::V2(plugin) => {
                let command = wit_v2::Command {
                    command_type: command.command_type.clone(),
                    aggregate_id: command.aggregate_id.clone(),
                    data: command.data.clone(),
                    issued_at: command.issued_at.clone(),
                    fresh_id: command.fresh_id.clone(),
                };
                plugin.sluice_plugin_aggregate().call_decide(&mut *store, state, &command).await.map(|verdict| {
                    verdict.map(new_events).map_err(|refusal| match refusal {
                        wit_v2::CommandError::Invalid(m) => Refusal::Invalid(m),
                        wit_v2::CommandError::Rejected(m) => Refusal::Rejected(m),
                        wit_v2::CommandError::NotFound(m) => Refusal::NotFound(m),
                    })
                })
            }
            // `execute` on no events is 0.3.0's decide.
            Instance::V3(plugin) => return Ok(self.execute_v3(store, plugin, state, &[], command).await?.verdict),
        };
        decided.map_err(|e| classify_fault(&self.manifest.aggregate_type, store, &e))
    }

    /// One 0.3.0 `execute`: `state` evolved with `events`, the command decided on it, and the
    /// state after the decided events when the plugin worked it out.
    async fn execute_v3(
        &self,
        store: &mut Store<PluginCtx>,
        plugin: &v3::ExecutingAggregatePlugin,
        state: Option<&[u8]>,
        events: &[StoredEvent],
        command: &CommandInput,
    ) -> Result<Decision, PluginFault> {
        let envelopes: Vec<types_v2::EventEnvelope> = events.iter().map(to_envelope_v2).collect();
        let command = wit_v3::Command {
            command_type: command.command_type.clone(),
            aggregate_id: command.aggregate_id.clone(),
            data: command.data.clone(),
            issued_at: command.issued_at.clone(),
            fresh_id: command.fresh_id.clone(),
        };
        let executed = plugin.sluice_plugin_aggregate().call_execute(&mut *store, state, &envelopes, &command).await;
        let decision = match executed {
            Ok(Ok(decision)) => decision,
            Ok(Err(reason)) => return Err(self.contract(format!("cannot replay its own events: {reason}"))),
            Err(e) => return Err(classify_fault(&self.manifest.aggregate_type, store, &e)),
        };
        if decision.decided_on.is_none() && !events.is_empty() {
            return Err(self.contract("executed a command on events without the state they make".into()));
        }
        let verdict = decision.verdict.map(new_events).map_err(|refusal| match refusal {
            wit_v3::CommandError::Invalid(m) => Refusal::Invalid(m),
            wit_v3::CommandError::Rejected(m) => Refusal::Rejected(m),
            wit_v3::CommandError::NotFound(m) => Refusal::NotFound(m),
        });
        // A state after a refusal would be the state decided on: the host keeps that one.
        let after = if verdict.is_ok() { decision.after } else { None };
        Ok(Decision { state: decision.decided_on, verdict, after })
    }

    fn contract(&self, detail: String) -> PluginFault {
        PluginFault::Contract { plugin: self.manifest.aggregate_type.clone(), detail }
    }
}

impl AggregateLogic for WasmAggregate {
    fn manifest(&self) -> &AggregateManifest {
        &self.manifest
    }

    fn execute(
        &self,
        state: Option<&[u8]>,
        events: &[StoredEvent],
        command: &CommandInput,
    ) -> Result<Decision, PluginFault> {
        block_on(self.execute_async(state, events, command))
    }

    fn execute_async<'a>(
        &'a self,
        state: Option<&'a [u8]>,
        events: &'a [StoredEvent],
        command: &'a CommandInput,
    ) -> BoxFuture<'a, Result<Decision, PluginFault>> {
        Box::pin(observed_async(&self.decides, self.execute_in_store(state, events, command), |r| match r {
            Ok(Decision { verdict: Err(_), .. }) => "refused",
            other => fault_outcome(other),
        }))
    }

    fn render(&self, history: &[StoredEvent]) -> Result<String, PluginFault> {
        observed(&self.manifest.aggregate_type, "render", || block_on(self.render_in_store(history)), fault_outcome)
    }

    fn upcast(&self, events: &[StoredEvent]) -> Result<Vec<NewEvent>, PluginFault> {
        observed(&self.manifest.aggregate_type, "upcast", || block_on(self.upcast_in_store(events)), fault_outcome)
    }
}

impl WasmAggregate {
    async fn execute_in_store(
        &self,
        state: Option<&[u8]>,
        events: &[StoredEvent],
        command: &CommandInput,
    ) -> Result<Decision, PluginFault> {
        let mut warm = match self.warm.take() {
            Some(warm) => warm,
            None => {
                let (store, instance) = self.instantiate().await?;
                Warm { store, instance, calls: 0 }
            }
        };
        super::rearm(&mut warm.store, self.runtime.limits().call_timeout);
        let decision = match &warm.instance {
            Instance::V3(plugin) => self.execute_v3(&mut warm.store, plugin, state, events, command).await?,
            instance => {
                // Nothing appended since the cached state: decide on it as it is.
                let evolved = match events.is_empty() {
                    true => None,
                    false => Some(self.evolve(&mut warm.store, instance, state, events).await?),
                };
                let decided_on = evolved.as_deref().or(state);
                let verdict = self.decide(&mut warm.store, instance, decided_on, command).await?;
                Decision { state: evolved, verdict, after: None }
            }
        };
        warm.calls += 1;
        self.give_back(warm);
        Ok(decision)
    }

    /// Keep an instance that decided cleanly for the next command, unless its batch is done. A
    /// faulted call never gets here: its instance is dropped with it.
    fn give_back(&self, warm: Warm) {
        if warm.calls < CALLS_PER_INSTANCE && super::left_clean(&warm.store) && !super::grown_large(&warm.store) {
            self.warm.give_back(warm);
        }
    }

    async fn render_in_store(&self, history: &[StoredEvent]) -> Result<String, PluginFault> {
        let (mut store, instance) = self.instantiate().await?;
        let state = self.evolve(&mut store, &instance, None, history).await?;
        let rendered = match &instance {
            Instance::V1(plugin) => plugin.sluice_plugin_aggregate().call_render(&mut store, &state).await,
            Instance::V2(plugin) => plugin.sluice_plugin_aggregate().call_render(&mut store, &state).await,
            Instance::V3(plugin) => plugin.sluice_plugin_aggregate().call_render(&mut store, &state).await,
        };
        match rendered {
            Ok(Ok(json)) => Ok(json),
            Ok(Err(reason)) => Err(self.contract(format!("cannot render its state: {reason}"))),
            Err(e) => Err(classify_fault(&self.manifest.aggregate_type, &store, &e)),
        }
    }

    async fn upcast_in_store(&self, events: &[StoredEvent]) -> Result<Vec<NewEvent>, PluginFault> {
        let (mut store, instance) = self.instantiate().await?;
        let envelopes: Vec<types_v2::EventEnvelope> = events.iter().map(to_envelope_v2).collect();
        let upcast = match &instance {
            Instance::V1(_) => return Err(self.contract("is a 0.1.0 component: it has no upcaster".into())),
            Instance::V2(plugin) => plugin.sluice_plugin_aggregate().call_upcast(&mut store, &envelopes).await,
            Instance::V3(plugin) => plugin.sluice_plugin_aggregate().call_upcast(&mut store, &envelopes).await,
        };
        match upcast {
            Ok(Ok(events)) => Ok(new_events(events)),
            Ok(Err(reason)) => Err(self.contract(format!("cannot upcast its events: {reason}"))),
            Err(e) => Err(classify_fault(&self.manifest.aggregate_type, &store, &e)),
        }
    }
}

pub(crate) fn to_envelope(event: &StoredEvent) -> types::EventEnvelope {
    types::EventEnvelope {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        version: event.version,
        global_position: event.global_position,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        data: event.data.clone(),
        recorded_at: event.recorded_at.clone(),
    }
}

/// Events a 0.2.0 or 0.3.0 plugin asks to append, as the host appends them.
fn new_events(events: Vec<types_v2::NewEvent>) -> Vec<NewEvent> {
    events
        .into_iter()
        .map(|e| NewEvent { event_type: e.event_type, schema_version: e.schema_version, data: e.data })
        .collect()
}

pub(crate) fn to_envelope_v2(event: &StoredEvent) -> types_v2::EventEnvelope {
    types_v2::EventEnvelope {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        version: event.version,
        global_position: event.global_position,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        data: event.data.clone(),
        recorded_at: event.recorded_at.clone(),
    }
}

/// A 0.2.0 manifest is a 0.1.0 one plus the event schemas, which must name declared event
/// types, each once; 0.3.0's is 0.2.0's (the same records, in its own generated module).
macro_rules! manifest_reader {
    ($name:ident, $wit:ident) => {
        fn $name(m: $wit::Manifest) -> Result<AggregateManifest, String> {
            for (i, schema) in m.event_schemas.iter().enumerate() {
                if !m.events.contains(&schema.event_type) {
                    return Err(format!(
                        "invalid manifest: schema versions of undeclared event type {:?}",
                        schema.event_type
                    ));
                }
                if m.event_schemas[..i].iter().any(|s| s.event_type == schema.event_type) {
                    return Err(format!("invalid manifest: schema versions of {:?} declared twice", schema.event_type));
                }
            }
            let schemas = m
                .events
                .iter()
                .map(|event_type| {
                    m.event_schemas
                        .iter()
                        .find(|s| &s.event_type == event_type)
                        .map_or(EventSchema::FIRST, |s| EventSchema { current: s.current, oldest: s.oldest })
                })
                .collect();
            let mut body_schemas = Vec::with_capacity(m.commands.len());
            for command in &m.commands {
                let schema = match &command.body_schema {
                    Some(text) => Some(serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                        format!("invalid manifest: command {:?}: the body schema is not JSON: {e}", command.name)
                    })?),
                    None => None,
                };
                body_schemas.push(schema);
            }
            let v1 = wit::Manifest {
                aggregate_type: m.aggregate_type,
                commands: m
                    .commands
                    .into_iter()
                    .map(|c| wit::CommandSpec { name: c.name, creates: c.creates })
                    .collect(),
                events: m.events,
                routes: m
                    .routes
                    .into_iter()
                    .map(|r| wit::CommandRoute {
                        method: match r.method {
                            types_v2::HttpMethod::Get => types::HttpMethod::Get,
                            types_v2::HttpMethod::Post => types::HttpMethod::Post,
                            types_v2::HttpMethod::Put => types::HttpMethod::Put,
                            types_v2::HttpMethod::Patch => types::HttpMethod::Patch,
                            types_v2::HttpMethod::Delete => types::HttpMethod::Delete,
                        },
                        path: r.path,
                        command: r.command,
                        id: match r.id {
                            $wit::IdSource::PathParam(name) => wit::IdSource::PathParam(name),
                            $wit::IdSource::NewUuid => wit::IdSource::NewUuid,
                        },
                        success_status: r.success_status,
                        success_message: r.success_message,
                        case_insensitive: r.case_insensitive,
                    })
                    .collect(),
                topic: m.topic,
            };
            let mut manifest = AggregateManifest { schemas: Some(schemas), ..from_wit_manifest(v1) };
            for (command, schema) in manifest.commands.iter_mut().zip(body_schemas) {
                command.body_schema = schema;
            }
            Ok(manifest)
        }
    };
}
manifest_reader!(from_wit_manifest_v2, wit_v2);
manifest_reader!(from_wit_manifest_v3, wit_v3);

fn from_wit_manifest(m: wit::Manifest) -> AggregateManifest {
    AggregateManifest {
        aggregate_type: m.aggregate_type,
        commands: m
            .commands
            .into_iter()
            .map(|c| CommandSpec { name: c.name, creates: c.creates, body_schema: None })
            .collect(),
        events: m.events,
        routes: m
            .routes
            .into_iter()
            .map(|r| CommandRoute {
                method: match r.method {
                    types::HttpMethod::Get => HttpMethod::Get,
                    types::HttpMethod::Post => HttpMethod::Post,
                    types::HttpMethod::Put => HttpMethod::Put,
                    types::HttpMethod::Patch => HttpMethod::Patch,
                    types::HttpMethod::Delete => HttpMethod::Delete,
                },
                path: r.path,
                command: r.command,
                id: match r.id {
                    wit::IdSource::PathParam(name) => IdSource::PathParam(name),
                    wit::IdSource::NewUuid => IdSource::NewUuid,
                },
                success_status: r.success_status,
                success_message: r.success_message,
                case_insensitive: r.case_insensitive,
            })
            .collect(),
        topic: m.topic,
        schemas: None,
    }
}
