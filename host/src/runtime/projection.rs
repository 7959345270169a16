//! Projection plugins: the `projection-plugin` world's bindings and [`WasmProjection`], which
//! handles event batches and answers queries, each call in a fresh instance whose `sql` import
//! is bound to one [`SqlSession`](crate::capabilities::sql::SqlSession).

use std::path::Path;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};

use super::{PluginCtx, PluginFault, RuntimeError, WasmRuntime, classify_fault};
use crate::capabilities::sql::SqlSession;
use crate::event_store::StoredEvent;
use crate::read_store::{ColumnType, ProjectionSchema, TableSchema, schema::ColumnSchema};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "projection-plugin",
        // One set of shared types for every world, so envelopes convert once.
        with: { "sluice:plugin/types": crate::runtime::aggregate::bindings::sluice::plugin::types },
    });
}

use bindings::exports::sluice::plugin::projection as wit;
use bindings::{ProjectionPlugin, ProjectionPluginPre};

/// How long one batch may take: it includes the read store's round trips, not only guest CPU.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A query route a projection declares (always `GET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRoute {
    pub path: String,
    pub query: String,
    pub case_insensitive: bool,
}

/// A route that rebuilds every read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildRoute {
    pub path: String,
    pub success_status: u16,
    pub success_message: String,
}

/// A projection plugin's manifest, as the host holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionManifest {
    pub name: String,
    pub subscriptions: Vec<String>,
    pub schema_version: u32,
    pub schema: ProjectionSchema,
    pub queries: Vec<String>,
    pub routes: Vec<QueryRoute>,
    pub rebuild_routes: Vec<RebuildRoute>,
}

impl ProjectionManifest {
    pub fn validate(&self) -> Result<(), String> {
        self.schema.validate()?;
        for route in &self.routes {
            if !route.path.starts_with('/') {
                return Err(format!("route {}: the path must start with '/'", route.path));
            }
            if !self.queries.contains(&route.query) {
                return Err(format!("route {}: names undeclared query {:?}", route.path, route.query));
            }
        }
        for route in &self.rebuild_routes {
            if !route.path.starts_with('/') || !(200..300).contains(&route.success_status) {
                return Err(format!("rebuild route {}: needs a '/' path and a 2xx status", route.path));
            }
        }
        Ok(())
    }
}

/// Why a batch was not applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandleFailure {
    /// The plugin refused an event (a bug or bad data): retry alone, then dead-letter.
    #[error("projection refused the batch: {0}")]
    Refused(String),
    #[error(transparent)]
    Fault(#[from] PluginFault),
    /// The read store failed: not the events' fault; retry later.
    #[error("read store failure: {0}")]
    Backend(String),
}

/// A query's answer or why there is none.
#[derive(Debug, Clone)]
pub enum QueryOutcome {
    Answer { status: u16, body: String },
    UnknownQuery(String),
    Invalid(String),
    NotFound(String),
    Failed(String),
}

/// A projection plugin loaded from a component.
pub struct WasmProjection {
    runtime: WasmRuntime,
    pre: ProjectionPluginPre<PluginCtx>,
    manifest: ProjectionManifest,
}

impl WasmProjection {
    /// Link a compiled component and read its manifest.
    pub fn load(runtime: &WasmRuntime, origin: &Path, component: &Component) -> Result<Self, RuntimeError> {
        let link_error = |e: wasmtime::Error| RuntimeError::Link { path: origin.into(), reason: format!("{e:#}") };
        let mut linker = Linker::<PluginCtx>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_error)?;
        ProjectionPlugin::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(&mut linker, |ctx| ctx).map_err(link_error)?;
        let pre =
            ProjectionPluginPre::new(linker.instantiate_pre(component).map_err(link_error)?).map_err(link_error)?;
        let name =
            origin.file_name().map_or_else(|| origin.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut store = runtime.new_store();
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

    pub fn manifest(&self) -> &ProjectionManifest {
        &self.manifest
    }

    /// Apply `events` through `session` (a write transaction). Returns the session so the
    /// caller can commit or roll back.
    pub fn handle(&self, session: SqlSession, events: &[StoredEvent]) -> (SqlSession, Result<(), HandleFailure>) {
        let plugin_name = self.manifest.name.clone();
        let mut store = self.runtime.new_store_with_timeout(BATCH_TIMEOUT);
        store.data_mut().sql = Some(session);
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
            store.data_mut().sql.take().unwrap_or_else(|| unreachable!("the session is put back by nobody else"));
        // A read-store failure explains the refusal better than the plugin's words for it.
        let outcome = match (outcome, session.backend_failure()) {
            (Err(_), Some(failure)) => Err(HandleFailure::Backend(failure.to_owned())),
            (outcome, _) => outcome,
        };
        (session, outcome)
    }

    /// Answer a query through `session` (read-only).
    pub fn query(
        &self,
        session: SqlSession,
        name: &str,
        params: &[(String, String)],
    ) -> Result<QueryOutcome, PluginFault> {
        let mut store = self.runtime.new_store();
        store.data_mut().sql = Some(session);
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
