//! Aggregate plugins: the `aggregate-plugin` world's bindings and [`WasmAggregate`], which runs
//! each command in a fresh instance of a pre-linked component.

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::{PluginCtx, RuntimeError, WasmRuntime, classify_fault};
use crate::event_store::{NewEvent, StoredEvent};
use crate::plugin::{
    AggregateLogic, AggregateManifest, CommandInput, CommandRoute, CommandSpec, Decision, HttpMethod, IdSource,
    PluginFault, Refusal,
};

use crate::bindings::aggregate::exports::sluice::plugin::aggregate as wit;
use crate::bindings::aggregate::{AggregatePlugin, AggregatePluginPre};
use crate::bindings::types;

/// An aggregate plugin loaded from a component.
pub struct WasmAggregate {
    runtime: WasmRuntime,
    pre: AggregatePluginPre<PluginCtx>,
    manifest: AggregateManifest,
}

impl WasmAggregate {
    /// Link a compiled component and read its manifest. `origin` names it in errors.
    pub fn load(runtime: &WasmRuntime, origin: &str, component: &Component) -> Result<Self, RuntimeError> {
        let link_error =
            |e: wasmtime::Error| RuntimeError::Link { origin: origin.to_owned(), reason: format!("{e:#}") };
        let mut linker = Linker::<PluginCtx>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_error)?;
        let pre =
            AggregatePluginPre::new(linker.instantiate_pre(component).map_err(link_error)?).map_err(link_error)?;
        let name = origin.to_owned();
        let mut store = runtime.new_store();
        let manifest = pre
            .instantiate(&mut store)
            .and_then(|plugin| plugin.sluice_plugin_aggregate().call_describe(&mut store))
            .map_err(|e| RuntimeError::Contract {
                plugin: name.clone(),
                reason: classify_fault(&name, &store, &e).to_string(),
            })?;
        let manifest = from_wit_manifest(manifest);
        manifest
            .validate()
            .map_err(|reason| RuntimeError::Contract { plugin: name, reason: format!("invalid manifest: {reason}") })?;
        Ok(Self { runtime: runtime.clone(), pre, manifest })
    }

    fn instantiate(&self) -> Result<(Store<PluginCtx>, AggregatePlugin), PluginFault> {
        let mut store = self.runtime.new_store();
        match self.pre.instantiate(&mut store) {
            Ok(plugin) => Ok((store, plugin)),
            Err(e) => Err(classify_fault(&self.manifest.aggregate_type, &store, &e)),
        }
    }

    fn evolve(
        &self,
        store: &mut Store<PluginCtx>,
        plugin: &AggregatePlugin,
        state: Option<&[u8]>,
        events: &[StoredEvent],
    ) -> Result<Vec<u8>, PluginFault> {
        let envelopes: Vec<types::EventEnvelope> = events.iter().map(to_envelope).collect();
        match plugin.sluice_plugin_aggregate().call_evolve(&mut *store, state, &envelopes) {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(reason)) => Err(self.contract(format!("cannot replay its own events: {reason}"))),
            Err(e) => Err(classify_fault(&self.manifest.aggregate_type, store, &e)),
        }
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
        let (mut store, plugin) = self.instantiate()?;
        // Nothing appended since the cached state: decide on it as it is.
        let state = if events.is_empty() {
            state.map(<[u8]>::to_vec)
        } else {
            Some(self.evolve(&mut store, &plugin, state, events)?)
        };
        let wit_command = wit::Command {
            command_type: command.command_type.clone(),
            aggregate_id: command.aggregate_id.clone(),
            data: command.data.clone(),
            issued_at: command.issued_at.clone(),
            fresh_id: command.fresh_id.clone(),
        };
        let verdict = match plugin.sluice_plugin_aggregate().call_decide(&mut store, state.as_deref(), &wit_command) {
            Ok(Ok(events)) => Ok(events
                .into_iter()
                .map(|e| NewEvent { event_type: e.event_type, schema_version: e.schema_version, data: e.data })
                .collect()),
            Ok(Err(refusal)) => Err(match refusal {
                wit::CommandError::Invalid(m) => Refusal::Invalid(m),
                wit::CommandError::Rejected(m) => Refusal::Rejected(m),
                wit::CommandError::NotFound(m) => Refusal::NotFound(m),
            }),
            Err(e) => return Err(classify_fault(&self.manifest.aggregate_type, &store, &e)),
        };
        Ok(Decision { state, verdict })
    }

    fn render(&self, history: &[StoredEvent]) -> Result<String, PluginFault> {
        let (mut store, plugin) = self.instantiate()?;
        let state = self.evolve(&mut store, &plugin, None, history)?;
        match plugin.sluice_plugin_aggregate().call_render(&mut store, &state) {
            Ok(Ok(json)) => Ok(json),
            Ok(Err(reason)) => Err(self.contract(format!("cannot render its state: {reason}"))),
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

fn from_wit_manifest(m: wit::Manifest) -> AggregateManifest {
    AggregateManifest {
        aggregate_type: m.aggregate_type,
        commands: m.commands.into_iter().map(|c| CommandSpec { name: c.name, creates: c.creates }).collect(),
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
    }
}
