//! Projection plugins: [`WasmProjection`], which handles event batches and answers queries,
//! each call in a fresh instance whose `sql` import is bound to one
//! [`SqlSession`](crate::read_store::session::SqlSession), through the bindings of the WIT
//! version the component exports: 0.1.0's `projection-plugin`, or 0.2.0's, which adds `log`
//! (its lines go to the host's log under the projection's name, rate-limited).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

use super::{PluginCtx, RuntimeError, WasmRuntime, classify_fault, fault_outcome, observed};
use crate::capabilities::log::{LogCapability, LogSink};
use crate::capabilities::sql::SqlCapability;
use crate::event_store::StoredEvent;
use crate::plugin::{
    HandleFailure, PluginFault, ProjectionLogic, ProjectionManifest, QueryOutcome, QueryRoute, RebuildRoute,
};
use crate::read_store::session::SqlSession;
use crate::read_store::{ColumnType, ProjectionSchema, TableSchema, schema::ColumnSchema};

use crate::bindings::projection::exports::sluice::plugin::projection as wit;
use crate::bindings::projection::{ProjectionPlugin, ProjectionPluginPre};
use crate::bindings::projection_v2 as v2;
use crate::bindings::projection_v2::exports::sluice::plugin::projection as wit_v2;

/// The export of a 0.2.0 projection component.
pub const EXPORT_V2: &str = "sluice:plugin/projection@0.2.0";
/// The export of a 0.1.0 projection component.
pub const EXPORT_V1: &str = "sluice:plugin/projection@0.1.0";

/// The most one batch may take: it includes the read store's round trips, not only guest CPU.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Events a batch may hold per plugin call timeout ([`SandboxLimits::call_timeout`]) of its own.
const EVENTS_PER_CALL_TIMEOUT: usize = 100;

/// How long a call handling `events` events may take: the configured call timeout (so one event
/// that loops is stopped as soon as a command would be, and parks after its retries within
/// seconds), one more for each [`EVENTS_PER_CALL_TIMEOUT`] events (their statements' round trips),
/// at most [`BATCH_TIMEOUT`].
fn batch_timeout(limits: super::SandboxLimits, events: usize) -> Duration {
    let calls = u32::try_from(1 + events / EVENTS_PER_CALL_TIMEOUT).unwrap_or(u32::MAX);
    limits.call_timeout.saturating_mul(calls).min(BATCH_TIMEOUT)
}

/// A projection plugin loaded from a component.
pub struct WasmProjection {
    runtime: WasmRuntime,
    pre: Pre,
    manifest: ProjectionManifest,
    /// Where its `log` lines go (0.2.0 components).
    log: Arc<LogSink>,
}

/// The pre-linked component, by the WIT version it exports.
enum Pre {
    V1(ProjectionPluginPre<PluginCtx>),
    V2(v2::ProjectionPluginPre<PluginCtx>),
}

/// One fresh instance, by WIT version.
enum Instance {
    V1(ProjectionPlugin),
    V2(v2::ProjectionPlugin),
}

impl Pre {
    fn instantiate(&self, store: &mut Store<PluginCtx>) -> wasmtime::Result<Instance> {
        match self {
            Self::V1(pre) => pre.instantiate(store).map(Instance::V1),
            Self::V2(pre) => pre.instantiate(store).map(Instance::V2),
        }
    }
}

impl Instance {
    fn describe(&self, store: &mut Store<PluginCtx>) -> wasmtime::Result<ProjectionManifest> {
        match self {
            Self::V1(plugin) => plugin.sluice_plugin_projection().call_describe(store).map(from_wit_manifest),
            Self::V2(plugin) => plugin.sluice_plugin_projection().call_describe(store).map(from_wit_manifest_v2),
        }
    }

    fn handle(&self, store: &mut Store<PluginCtx>, events: &[StoredEvent]) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::V1(plugin) => {
                let envelopes: Vec<_> = events.iter().map(super::aggregate::to_envelope).collect();
                plugin.sluice_plugin_projection().call_handle(store, &envelopes)
            }
            Self::V2(plugin) => {
                let envelopes: Vec<_> = events.iter().map(super::aggregate::to_envelope_v2).collect();
                plugin.sluice_plugin_projection().call_handle(store, &envelopes)
            }
        }
    }

    fn query(
        &self,
        store: &mut Store<PluginCtx>,
        name: &str,
        params: &[(String, String)],
    ) -> wasmtime::Result<QueryOutcome> {
        Ok(match self {
            Self::V1(plugin) => match plugin.sluice_plugin_projection().call_query(store, name, params)? {
                Ok(answer) => QueryOutcome::Answer { status: answer.status, body: answer.body },
                Err(wit::QueryError::UnknownQuery(m)) => QueryOutcome::UnknownQuery(m),
                Err(wit::QueryError::Invalid(m)) => QueryOutcome::Invalid(m),
                Err(wit::QueryError::NotFound(m)) => QueryOutcome::NotFound(m),
                Err(wit::QueryError::Failed(m)) => QueryOutcome::Failed(m),
            },
            Self::V2(plugin) => match plugin.sluice_plugin_projection().call_query(store, name, params)? {
                Ok(answer) => QueryOutcome::Answer { status: answer.status, body: answer.body },
                Err(wit_v2::QueryError::UnknownQuery(m)) => QueryOutcome::UnknownQuery(m),
                Err(wit_v2::QueryError::Invalid(m)) => QueryOutcome::Invalid(m),
                Err(wit_v2::QueryError::NotFound(m)) => QueryOutcome::NotFound(m),
                Err(wit_v2::QueryError::Failed(m)) => QueryOutcome::Failed(m),
            },
        })
    }
}

impl WasmProjection {
    /// Link a compiled component, by the WIT version its export names, and read its manifest.
    pub fn load(runtime: &WasmRuntime, origin: &str, component: &Component) -> Result<Self, RuntimeError> {
        let exports_v2 = component.component_type().exports(runtime.engine()).any(|(name, _)| name == EXPORT_V2);
        let link_error =
            |e: wasmtime::Error| RuntimeError::Link { origin: origin.to_owned(), reason: format!("{e:#}") };
        let mut linker = Linker::<PluginCtx>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_error)?;
        let pre = if exports_v2 {
            crate::bindings::types_v2::add_to_linker::<PluginCtx, HasSelf<LogCapability>>(&mut linker, |ctx| {
                &mut ctx.log
            })
            .map_err(link_error)?;
            super::link_log(&mut linker).map_err(link_error)?;
            crate::bindings::sql_v2::add_to_linker::<PluginCtx, HasSelf<SqlCapability>>(&mut linker, |ctx| {
                &mut ctx.sql
            })
            .map_err(link_error)?;
            let instance_pre = linker.instantiate_pre(component).map_err(link_error)?;
            Pre::V2(v2::ProjectionPluginPre::new(instance_pre).map_err(link_error)?)
        } else {
            crate::bindings::types::add_to_linker::<PluginCtx, HasSelf<SqlCapability>>(&mut linker, |ctx| &mut ctx.sql)
                .map_err(link_error)?;
            crate::bindings::sql::add_to_linker::<PluginCtx, HasSelf<SqlCapability>>(&mut linker, |ctx| &mut ctx.sql)
                .map_err(link_error)?;
            let instance_pre = linker.instantiate_pre(component).map_err(link_error)?;
            Pre::V1(ProjectionPluginPre::new(instance_pre).map_err(link_error)?)
        };
        let name = origin.to_owned();
        let mut store = runtime.new_describe_store();
        // Lines written by `describe` go under the file's name: the projection's is not known yet.
        store.data_mut().log.grant(LogSink::new(origin));
        let manifest = pre.instantiate(&mut store).and_then(|plugin| plugin.describe(&mut store)).map_err(|e| {
            RuntimeError::Contract { plugin: name.clone(), reason: classify_fault(&name, &store, &e).to_string() }
        })?;
        manifest
            .validate()
            .map_err(|reason| RuntimeError::Contract { plugin: name, reason: format!("invalid manifest: {reason}") })?;
        let log = LogSink::new(manifest.name.clone());
        Ok(Self { runtime: runtime.clone(), pre, manifest, log })
    }
}

impl ProjectionLogic for WasmProjection {
    fn manifest(&self) -> &ProjectionManifest {
        &self.manifest
    }

    fn handle(&self, session: SqlSession, events: &[StoredEvent]) -> (SqlSession, Result<(), HandleFailure>) {
        observed(
            &self.manifest.name,
            "handle",
            || self.handle_in_store(session, events),
            |(_, outcome)| match outcome {
                Ok(()) => "ok",
                Err(HandleFailure::Fault(fault)) => fault.reason(),
                Err(_) => "refused",
            },
        )
    }

    fn query(&self, session: SqlSession, name: &str, params: &[(String, String)]) -> Result<QueryOutcome, PluginFault> {
        observed(&self.manifest.name, "query", || self.query_in_store(session, name, params), fault_outcome)
    }
}

impl WasmProjection {
    fn handle_in_store(&self, session: SqlSession, events: &[StoredEvent]) -> (SqlSession, Result<(), HandleFailure>) {
        let plugin_name = self.manifest.name.clone();
        let mut store = self.runtime.new_store_with_timeout(batch_timeout(self.runtime.limits(), events.len()));
        store.data_mut().sql.grant(session);
        store.data_mut().log.grant(self.log.clone());
        let result = self.pre.instantiate(&mut store).and_then(|plugin| plugin.handle(&mut store, events));
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(HandleFailure::Refused(reason)),
            Err(e) => Err(HandleFailure::Fault(classify_fault(&plugin_name, &store, &e))),
        };
        let session =
            store.data_mut().sql.take().unwrap_or_else(|| unreachable!("the session is taken back by nobody else"));
        // A read-store failure explains the refusal better than the plugin's words for it.
        let outcome = match (outcome, session.backend_failure()) {
            (Err(_), Some(failure)) => Err(HandleFailure::Backend(failure.to_owned())),
            (outcome, _) => outcome,
        };
        (session, outcome)
    }

    fn query_in_store(
        &self,
        session: SqlSession,
        name: &str,
        params: &[(String, String)],
    ) -> Result<QueryOutcome, PluginFault> {
        let mut store = self.runtime.new_store();
        store.data_mut().sql.grant(session);
        store.data_mut().log.grant(self.log.clone());
        let result = self.pre.instantiate(&mut store).and_then(|plugin| plugin.query(&mut store, name, params));
        result.map_err(|e| classify_fault(&self.manifest.name, &store, &e))
    }
}

/// The manifest conversion of one WIT version (`wit` in scope at the call site).
macro_rules! manifest_conversion {
    () => {
        use super::{
            ColumnSchema, ColumnType, ProjectionManifest, ProjectionSchema, QueryRoute, RebuildRoute, TableSchema,
        };

        pub(super) fn from_wit_manifest(m: wit::Manifest) -> ProjectionManifest {
            let tables = m
                .tables
                .into_iter()
                .map(|t| TableSchema {
                    name: t.name,
                    columns: t
                        .columns
                        .into_iter()
                        .map(|c| ColumnSchema {
                            name: c.name,
                            column_type: match c.column_type {
                                wit::ColumnType::Text => ColumnType::Text,
                                wit::ColumnType::Integer => ColumnType::Integer,
                                wit::ColumnType::Decimal => ColumnType::Decimal,
                                wit::ColumnType::Boolean => ColumnType::Boolean,
                                wit::ColumnType::Timestamp => ColumnType::Timestamp,
                            },
                            nullable: c.nullable,
                        })
                        .collect(),
                    primary_key: t.primary_key,
                    indexes: t.indexes,
                })
                .collect();
            ProjectionManifest {
                schema: ProjectionSchema { projection: m.name.clone(), tables },
                name: m.name,
                subscriptions: m.subscriptions,
                schema_version: m.schema_version,
                queries: m.queries,
                routes: m
                    .routes
                    .into_iter()
                    .map(|r| QueryRoute { path: r.path, query: r.query, case_insensitive: r.case_insensitive })
                    .collect(),
                rebuild_routes: m
                    .rebuild_routes
                    .into_iter()
                    .map(|r| RebuildRoute {
                        path: r.path,
                        success_status: r.success_status,
                        success_message: r.success_message,
                    })
                    .collect(),
            }
        }
    };
}

/// 0.1.0's manifest.
mod v0_1 {
    use super::wit;
    manifest_conversion!();
}

/// 0.2.0's manifest: the same shape.
mod v0_2 {
    use super::wit_v2 as wit;
    manifest_conversion!();
}

use v0_1::from_wit_manifest;
use v0_2::from_wit_manifest as from_wit_manifest_v2;
