//! The plugin contracts, independent of how plugins run: what the host needs of an aggregate
//! ([`AggregateLogic`]), of a projection ([`ProjectionLogic`]) and of a reactor
//! ([`ReactorLogic`]), what they declare
//! ([`manifest`]), how their calls fail ([`PluginFault`]), the [`registry`] of loaded plugins
//! and their routes, and the one point where old events are brought to their current shape
//! ([`upcast`]). The Wasm implementations live in [`crate::runtime`]; nothing here names a
//! WIT binding, so the dispatcher, the projection runner and the HTTP edge depend on contracts
//! only.
//!
//! A plugin kind is data: one [`PluginKind`] variant and one entry in the runtime's loader
//! table ([`crate::runtime::loader`]), which names the export that tells the kind.

pub mod aggregate;
pub mod fault;
pub mod manifest;
pub mod projection;
pub mod reactor;
pub mod registry;
pub mod upcast;

use std::sync::Arc;

pub use aggregate::{AggregateLogic, CommandInput, Decision, Refusal};
pub use fault::PluginFault;
pub use manifest::{
    AggregateManifest, CommandRoute, CommandSpec, EventSchema, HttpMethod, IdSource, ProjectionManifest, QueryRoute,
    RebuildRoute,
};
pub use projection::{HandleFailure, ProjectionLogic, QueryOutcome};
pub use reactor::{Outgoing, ReactorLogic, ReactorManifest, StartAt};
pub use registry::{Loaded, PluginInfo, PluginRegistry, RegistryError, RouteMatch, RouteTarget};
pub use upcast::Upcaster;

/// Hex sha256 of a component's bytes: how the host names a plugin version (in the registry, the
/// plugins directory, the version store and the compile cache).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// What a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Aggregate,
    Projection,
    Reactor,
}

impl PluginKind {
    /// Every kind, in listing order.
    pub const ALL: &'static [Self] = &[Self::Aggregate, Self::Projection, Self::Reactor];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aggregate => "aggregate",
            Self::Projection => "projection",
            Self::Reactor => "reactor",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A loaded plugin of some kind.
#[derive(Clone)]
pub enum Plugin {
    Aggregate(Arc<dyn AggregateLogic>),
    Projection(Arc<dyn ProjectionLogic>),
    Reactor(Arc<dyn ReactorLogic>),
}

impl Plugin {
    /// Aggregate type or projection name: unique among all loaded plugins.
    pub fn name(&self) -> &str {
        match self {
            Self::Aggregate(logic) => &logic.manifest().aggregate_type,
            Self::Projection(logic) => &logic.manifest().name,
            Self::Reactor(logic) => &logic.manifest().name,
        }
    }

    pub fn kind(&self) -> PluginKind {
        match self {
            Self::Aggregate(_) => PluginKind::Aggregate,
            Self::Projection(_) => PluginKind::Projection,
            Self::Reactor(_) => PluginKind::Reactor,
        }
    }
}
