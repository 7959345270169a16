//! Projection plugins: the `projection-plugin` world's bindings and [`WasmProjection`], which
//! handles event batches and answers queries, each call in a fresh instance whose `sql` import
//! is bound to one [`SqlSession`](crate::read_store::session::SqlSession).

use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};

use super::{PluginCtx, RuntimeError, WasmRuntime, classify_fault, fault_outcome, observed};
use crate::capabilities::sql::SqlCapability;
use crate::event_store::StoredEvent;
use crate::plugin::{
    HandleFailure, PluginFault, ProjectionLogic, ProjectionManifest, QueryOutcome, QueryRoute, RebuildRoute,
};
use crate::read_store::session::SqlSession;
use crate::read_store::{ColumnType, ProjectionSchema, TableSchema, schema::ColumnSchema};

use crate::bindings::projection::exports::sluice::plugin::projection as wit;
use crate::bindings::projection::{ProjectionPlugin, ProjectionPluginPre};

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
    pre: ProjectionPluginPre<PluginCtx>,
    manifest: ProjectionManifest,
}

impl WasmProjection {
    /// Link a compiled component and read its manifest.
    pub fn load(runtime: &WasmRuntime, origin: &str, component: &Component) -> Result<Self, RuntimeError> {
        let link_error =
            |e: wasmtime::Error| RuntimeError::Link { origin: origin.to_owned(), reason: format!("{e:#}") };
        let mut linker = Linker::<PluginCtx>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_error)?;
        crate::bindings::types::add_to_linker::<PluginCtx, HasSelf<SqlCapability>>(&mut linker, |ctx| &mut ctx.sql)
            .map_err(link_error)?;
        crate::bindings::sql::add_to_linker::<PluginCtx, HasSelf<SqlCapability>>(&mut linker, |ctx| &mut ctx.sql)
            .map_err(link_error)?;
        let pre =
            ProjectionPluginPre::new(linker.instantiate_pre(component).map_err(link_error)?).map_err(link_error)?;
        let name = origin.to_owned();
        let mut store = runtime.new_describe_store();
        let described = pre
            .instantiate(&mut store)
            .and_then(|plugin| plugin.sluice_plugin_projection().call_describe(&mut store))
            .map_err(|e| RuntimeError::Contract {
                plugin: name.clone(),
                reason: classify_fault(&name, &store, &e).to_string(),
            })?;
        let manifest = from_wit_manifest(described);
        manifest
            .validate()
            .map_err(|reason| RuntimeError::Contract { plugin: name, reason: format!("invalid manifest: {reason}") })?;
        Ok(Self { runtime: runtime.clone(), pre, manifest })
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
        let envelopes: Vec<_> = events.iter().map(super::aggregate::to_envelope).collect();
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|plugin: ProjectionPlugin| plugin.sluice_plugin_projection().call_handle(&mut store, &envelopes));
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
        let result = self.pre.instantiate(&mut store).and_then(|plugin: ProjectionPlugin| {
            plugin.sluice_plugin_projection().call_query(&mut store, name, params)
        });
        match result {
            Ok(Ok(answer)) => Ok(QueryOutcome::Answer { status: answer.status, body: answer.body }),
            Ok(Err(wit::QueryError::UnknownQuery(m))) => Ok(QueryOutcome::UnknownQuery(m)),
            Ok(Err(wit::QueryError::Invalid(m))) => Ok(QueryOutcome::Invalid(m)),
            Ok(Err(wit::QueryError::NotFound(m))) => Ok(QueryOutcome::NotFound(m)),
            Ok(Err(wit::QueryError::Failed(m))) => Ok(QueryOutcome::Failed(m)),
            Err(e) => Err(classify_fault(&self.manifest.name, &store, &e)),
        }
    }
}

fn from_wit_manifest(m: wit::Manifest) -> ProjectionManifest {
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
