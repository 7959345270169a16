//! Conversions between the generated WIT types and the SDK's plain types: 0.1.0 here, 0.2.0 in
//! [`v2`], 0.3.0 in [`v3`] (whose `types` are 0.2.0's).

use crate::aggregate::{Aggregate, CommandContext, CommandError, StoredEvent};
use crate::bindings::exports::sluice::plugin::aggregate as wit;
use crate::bindings::sluice::plugin::types;
use crate::manifest::{IdSource, Method};
use crate::runtime;

pub fn manifest<A: Aggregate>() -> wit::Manifest {
    let m = A::manifest();
    wit::Manifest {
        aggregate_type: m.aggregate_type,
        commands: m.commands.into_iter().map(|c| wit::CommandSpec { name: c.name, creates: c.creates }).collect(),
        events: m.events,
        routes: m
            .routes
            .into_iter()
            .map(|r| wit::CommandRoute {
                method: match r.method {
                    Method::Get => types::HttpMethod::Get,
                    Method::Post => types::HttpMethod::Post,
                    Method::Put => types::HttpMethod::Put,
                    Method::Patch => types::HttpMethod::Patch,
                    Method::Delete => types::HttpMethod::Delete,
                },
                path: r.path,
                command: r.command,
                id: match r.id {
                    IdSource::PathParam(name) => wit::IdSource::PathParam(name),
                    IdSource::NewUuid => wit::IdSource::NewUuid,
                },
                success_status: r.success_status,
                success_message: r.success_message,
                case_insensitive: r.case_insensitive,
            })
            .collect(),
        topic: m.topic,
    }
}

pub fn evolve<A: Aggregate>(state: Option<Vec<u8>>, events: Vec<types::EventEnvelope>) -> Result<Vec<u8>, String> {
    let events: Vec<StoredEvent> = events
        .into_iter()
        .map(|e| StoredEvent {
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            version: e.version,
            global_position: e.global_position,
            event_type: e.event_type,
            schema_version: e.schema_version,
            data: e.data,
            recorded_at: e.recorded_at,
        })
        .collect();
    runtime::evolve::<A>(state.as_deref(), &events)
}

pub fn decide<A: Aggregate>(
    state: Option<Vec<u8>>,
    command: wit::Command,
) -> Result<Vec<types::NewEvent>, wit::CommandError> {
    let ctx =
        CommandContext { aggregate_id: command.aggregate_id, issued_at: command.issued_at, fresh_id: command.fresh_id };
    runtime::decide::<A>(state.as_deref(), &command.command_type, &command.data, &ctx)
        .map(|events| {
            events
                .into_iter()
                .map(|e| types::NewEvent { event_type: e.event_type, schema_version: e.schema_version, data: e.data })
                .collect()
        })
        .map_err(|e| match e {
            CommandError::Invalid(m) => wit::CommandError::Invalid(m),
            CommandError::Rejected(m) => wit::CommandError::Rejected(m),
            CommandError::NotFound(m) => wit::CommandError::NotFound(m),
        })
}

/// The manifest of a 0.2.0 or 0.3.0 component (the same records, in each version's generated
/// module): `wit` and `types` name the version's aggregate and types modules where it expands.
macro_rules! manifest_with_schemas {
    () => {
        pub fn manifest<A: Aggregate>() -> wit::Manifest {
            let m = A::manifest();
            let event_schemas = m
                .events
                .iter()
                .map(|event_type| wit::EventSchema {
                    event_type: event_type.clone(),
                    current: A::Event::current_schema_version(event_type),
                    oldest: A::Event::oldest_schema_version(event_type),
                })
                .collect();
            wit::Manifest {
                aggregate_type: m.aggregate_type,
                commands: m
                    .commands
                    .into_iter()
                    .map(|c| wit::CommandSpec { name: c.name, creates: c.creates, body_schema: c.body_schema })
                    .collect(),
                events: m.events,
                routes: m
                    .routes
                    .into_iter()
                    .map(|r| wit::CommandRoute {
                        method: match r.method {
                            Method::Get => types::HttpMethod::Get,
                            Method::Post => types::HttpMethod::Post,
                            Method::Put => types::HttpMethod::Put,
                            Method::Patch => types::HttpMethod::Patch,
                            Method::Delete => types::HttpMethod::Delete,
                        },
                        path: r.path,
                        command: r.command,
                        id: match r.id {
                            IdSource::PathParam(name) => wit::IdSource::PathParam(name),
                            IdSource::NewUuid => wit::IdSource::NewUuid,
                        },
                        success_status: r.success_status,
                        success_message: r.success_message,
                        case_insensitive: r.case_insensitive,
                    })
                    .collect(),
                topic: m.topic,
                event_schemas,
            }
        }
    };
}

/// The 0.2.0 exports: the 0.1.0 ones, plus schema versions in the manifest and `upcast`.
pub mod v2 {
    use crate::aggregate::{Aggregate, CommandContext, CommandError, DomainEvent, StoredEvent};
    use crate::bindings_v2::exports::sluice::plugin::aggregate as wit;
    use crate::bindings_v2::sluice::plugin::types;
    use crate::manifest::{IdSource, Method};
    use crate::runtime;

    manifest_with_schemas!();

    pub fn stored(events: Vec<types::EventEnvelope>) -> Vec<StoredEvent> {
        events
            .into_iter()
            .map(|e| StoredEvent {
                aggregate_type: e.aggregate_type,
                aggregate_id: e.aggregate_id,
                version: e.version,
                global_position: e.global_position,
                event_type: e.event_type,
                schema_version: e.schema_version,
                data: e.data,
                recorded_at: e.recorded_at,
            })
            .collect()
    }

    pub fn decide<A: Aggregate>(
        state: Option<Vec<u8>>,
        command: wit::Command,
    ) -> Result<Vec<types::NewEvent>, wit::CommandError> {
        let ctx = CommandContext {
            aggregate_id: command.aggregate_id,
            issued_at: command.issued_at,
            fresh_id: command.fresh_id,
        };
        runtime::decide::<A>(state.as_deref(), &command.command_type, &command.data, &ctx)
            .map(|events| {
                events
                    .into_iter()
                    .map(|e| types::NewEvent {
                        event_type: e.event_type,
                        schema_version: e.schema_version,
                        data: e.data,
                    })
                    .collect()
            })
            .map_err(|e| match e {
                CommandError::Invalid(m) => wit::CommandError::Invalid(m),
                CommandError::Rejected(m) => wit::CommandError::Rejected(m),
                CommandError::NotFound(m) => wit::CommandError::NotFound(m),
            })
    }

    pub fn upcast<A: Aggregate>(events: Vec<types::EventEnvelope>) -> Result<Vec<types::NewEvent>, String> {
        Ok(runtime::upcast::<A>(&stored(events))?
            .into_iter()
            .map(|e| types::NewEvent { event_type: e.event_type, schema_version: e.schema_version, data: e.data })
            .collect())
    }
}

/// The 0.3.0 exports: 0.2.0's, with `execute` in place of `decide`. Its `types` are bound to
/// 0.2.0's ([`crate::bindings_v3`]), so envelopes and new events convert as there.
pub mod v3 {
    use crate::aggregate::{Aggregate, CommandContext, CommandError, DomainEvent};
    use crate::bindings_v2::sluice::plugin::types;
    use crate::bindings_v3::exports::sluice::plugin::aggregate as wit;
    use crate::manifest::{IdSource, Method};
    use crate::runtime;

    manifest_with_schemas!();

    pub fn execute<A: Aggregate>(
        state: Option<Vec<u8>>,
        events: Vec<types::EventEnvelope>,
        command: wit::Command,
    ) -> Result<wit::Decision, String> {
        let ctx = CommandContext {
            aggregate_id: command.aggregate_id,
            issued_at: command.issued_at,
            fresh_id: command.fresh_id,
        };
        let events = super::v2::stored(events);
        let executed = runtime::execute::<A>(state.as_deref(), &events, &command.command_type, &command.data, &ctx)?;
        let verdict = executed
            .verdict
            .map(|events| {
                events
                    .into_iter()
                    .map(|e| types::NewEvent {
                        event_type: e.event_type,
                        schema_version: e.schema_version,
                        data: e.data,
                    })
                    .collect()
            })
            .map_err(|e| match e {
                CommandError::Invalid(m) => wit::CommandError::Invalid(m),
                CommandError::Rejected(m) => wit::CommandError::Rejected(m),
                CommandError::NotFound(m) => wit::CommandError::NotFound(m),
            });
        Ok(wit::Decision { decided_on: executed.decided_on, verdict, after: executed.after })
    }
}
