//! An aggregate plugin's own crate, compiled natively and run through the host's
//! [`AggregateLogic`] contract via the SDK's glue — the same path the component takes, minus the
//! sandbox. Its commands are timed and counted in the host's plugin-call metrics as a component's
//! are ([`sluice::telemetry::PluginCalls`]): that is the host's cost of a plugin call, not the
//! sandbox's.

use std::marker::PhantomData;

use sluice::event_store::{NewEvent, StoredEvent};
use sluice::plugin::PluginFault;
use sluice::plugin::{
    AggregateLogic, AggregateManifest, CommandInput, CommandRoute, CommandSpec, Decision, HttpMethod, IdSource, Refusal,
};
use sluice_sdk::{Aggregate, CommandContext, CommandError, runtime};

pub struct NativeAggregate<A> {
    manifest: AggregateManifest,
    decides: sluice::telemetry::PluginCalls,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> NativeAggregate<A> {
    pub fn new() -> Self {
        Self::with_manifest(host_manifest(A::manifest()))
    }

    /// Under `manifest` (the component's, as the host read it): the host then treats both alike.
    pub fn with_manifest(manifest: AggregateManifest) -> Self {
        let decides = sluice::telemetry::PluginCalls::new(&manifest.aggregate_type, "decide");
        Self { manifest, decides, aggregate: PhantomData }
    }

    fn evolve(&self, state: Option<&[u8]>, history: &[StoredEvent]) -> Result<Vec<u8>, PluginFault> {
        runtime::evolve::<A>(state, &sdk_events(history))
            .map_err(|detail| PluginFault::Contract { plugin: self.manifest.aggregate_type.clone(), detail })
    }
}

/// Stored events as the SDK's, as a component receives them.
fn sdk_events(events: &[StoredEvent]) -> Vec<sluice_sdk::StoredEvent> {
    events
        .iter()
        .map(|e| sluice_sdk::StoredEvent {
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            version: e.version,
            global_position: e.global_position,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            data: e.data.clone(),
            recorded_at: e.recorded_at.clone(),
        })
        .collect()
}

impl<A: Aggregate + 'static> AggregateLogic for NativeAggregate<A> {
    fn manifest(&self) -> &AggregateManifest {
        &self.manifest
    }

    fn execute(
        &self,
        state: Option<&[u8]>,
        events: &[StoredEvent],
        command: &CommandInput,
    ) -> Result<Decision, PluginFault> {
        let started = std::time::Instant::now();
        let decision = self.execute_counted(state, events, command);
        let outcome = match &decision {
            Ok(Decision { verdict: Err(_), .. }) => "refused",
            Ok(_) => "ok",
            Err(_) => "contract",
        };
        self.decides.record(started.elapsed(), outcome);
        decision
    }

    fn render(&self, history: &[StoredEvent]) -> Result<String, PluginFault> {
        let state = self.evolve(None, history)?;
        runtime::render::<A>(&state)
            .map_err(|detail| PluginFault::Contract { plugin: self.manifest.aggregate_type.clone(), detail })
    }
}

impl<A: Aggregate> NativeAggregate<A> {
    /// As the component's `execute` (WIT 0.3.0): evolve what the state lacks, decide, apply.
    fn execute_counted(
        &self,
        state: Option<&[u8]>,
        events: &[StoredEvent],
        command: &CommandInput,
    ) -> Result<Decision, PluginFault> {
        let ctx = CommandContext {
            aggregate_id: command.aggregate_id.clone(),
            issued_at: command.issued_at.clone(),
            fresh_id: command.fresh_id.clone(),
        };
        let executed = runtime::execute::<A>(state, &sdk_events(events), &command.command_type, &command.data, &ctx)
            .map_err(|detail| PluginFault::Contract { plugin: self.manifest.aggregate_type.clone(), detail })?;
        let verdict = match executed.verdict {
            Ok(events) => Ok(events
                .into_iter()
                .map(|e| NewEvent { event_type: e.event_type, schema_version: e.schema_version, data: e.data })
                .collect()),
            Err(CommandError::Invalid(m)) => Err(Refusal::Invalid(m)),
            Err(CommandError::Rejected(m)) => Err(Refusal::Rejected(m)),
            Err(CommandError::NotFound(m)) => Err(Refusal::NotFound(m)),
        };
        Ok(Decision { state: executed.decided_on, verdict, after: executed.after })
    }
}

fn host_manifest(m: sluice_sdk::Manifest) -> AggregateManifest {
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
                    sluice_sdk::Method::Get => HttpMethod::Get,
                    sluice_sdk::Method::Post => HttpMethod::Post,
                    sluice_sdk::Method::Put => HttpMethod::Put,
                    sluice_sdk::Method::Patch => HttpMethod::Patch,
                    sluice_sdk::Method::Delete => HttpMethod::Delete,
                },
                path: r.path,
                command: r.command,
                id: match r.id {
                    sluice_sdk::IdSource::PathParam(name) => IdSource::PathParam(name),
                    sluice_sdk::IdSource::NewUuid => IdSource::NewUuid,
                },
                success_status: r.success_status,
                success_message: r.success_message,
                case_insensitive: r.case_insensitive,
            })
            .collect(),
        topic: m.topic,
        // The SDK upcasts inside evolve natively: events pass as stored.
        schemas: None,
    }
}
