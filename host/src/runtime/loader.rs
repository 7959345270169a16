//! One load path for every plugin, whether its bytes come from a file of the plugins directory
//! or from an upload: compile (through the component cache), tell the kind by the interface
//! the component exports, link it against that kind's world and run its `describe`. Nothing is
//! registered here: a loaded plugin is checked and ready, and the caller decides whether it
//! joins the registry, replaces a plugin there, or is refused.
//!
//! The kinds are data ([`KINDS`]): a new kind is one entry, naming its export and its loader.

use std::sync::Arc;

use wasmtime::component::Component;

use super::aggregate::{self, WasmAggregate};
use super::projection::{self, WasmProjection};
use super::reactor::{self, WasmReactor};
use super::{RuntimeError, WasmRuntime};
use crate::plugin::{Plugin, PluginKind, sha256_hex};

/// How to recognise and load one kind of plugin.
pub struct KindLoader {
    pub kind: PluginKind,
    /// The interface a component of this kind exports.
    pub export: &'static str,
    load: fn(&WasmRuntime, &str, &Component) -> Result<Plugin, RuntimeError>,
}

/// Every plugin kind the host runs; aggregates and projections of every WIT version (the
/// component's export tells [`WasmAggregate::load`] and [`WasmProjection::load`] which bindings
/// run it).
pub const KINDS: &[KindLoader] = &[
    KindLoader {
        kind: PluginKind::Aggregate,
        export: aggregate::EXPORT_V3,
        load: |runtime, origin, component| {
            Ok(Plugin::Aggregate(Arc::new(WasmAggregate::load(runtime, origin, component)?)))
        },
    },
    KindLoader {
        kind: PluginKind::Aggregate,
        export: aggregate::EXPORT_V2,
        load: |runtime, origin, component| {
            Ok(Plugin::Aggregate(Arc::new(WasmAggregate::load(runtime, origin, component)?)))
        },
    },
    KindLoader {
        kind: PluginKind::Aggregate,
        export: aggregate::EXPORT_V1,
        load: |runtime, origin, component| {
            Ok(Plugin::Aggregate(Arc::new(WasmAggregate::load(runtime, origin, component)?)))
        },
    },
    KindLoader {
        kind: PluginKind::Projection,
        export: projection::EXPORT_V2,
        load: |runtime, origin, component| {
            Ok(Plugin::Projection(Arc::new(WasmProjection::load(runtime, origin, component)?)))
        },
    },
    KindLoader {
        kind: PluginKind::Projection,
        export: projection::EXPORT_V1,
        load: |runtime, origin, component| {
            Ok(Plugin::Projection(Arc::new(WasmProjection::load(runtime, origin, component)?)))
        },
    },
    KindLoader {
        kind: PluginKind::Reactor,
        export: reactor::EXPORT,
        load: |runtime, origin, component| {
            Ok(Plugin::Reactor(Arc::new(WasmReactor::load(runtime, origin, component)?)))
        },
    },
];

/// A plugin compiled, linked and described, not yet registered.
pub struct LoadedComponent {
    pub plugin: Plugin,
    /// Hex sha256 of the component's bytes.
    pub sha256: String,
}

/// The kind of component `bytes`, told by its exports (compiled through the cache, so loading
/// it afterwards does not compile again); none when it does not compile or exports no known
/// interface (loading it then says why).
pub fn kind_of(runtime: &WasmRuntime, origin: &str, bytes: &[u8]) -> Option<PluginKind> {
    let component = runtime.component_from_bytes(origin, bytes).ok()?;
    let exports: Vec<String> =
        component.component_type().exports(runtime.engine()).map(|(name, _)| name.to_owned()).collect();
    KINDS.iter().find(|k| exports.iter().any(|e| e == k.export)).map(|k| k.kind)
}

/// Load component `bytes`; `origin` (a file name, or "upload") names them in errors.
pub fn load(runtime: &WasmRuntime, origin: &str, bytes: &[u8]) -> Result<LoadedComponent, RuntimeError> {
    let sha256 = sha256_hex(bytes);
    let component = runtime.component_from_bytes(origin, bytes)?;
    let exports: Vec<String> =
        component.component_type().exports(runtime.engine()).map(|(name, _)| name.to_owned()).collect();
    let Some(kind) = KINDS.iter().find(|k| exports.iter().any(|e| e == k.export)) else {
        let known: Vec<&str> = KINDS.iter().map(|k| k.export).collect();
        return Err(RuntimeError::UnknownWorld { origin: origin.to_owned(), expected: known.join(" or ") });
    };
    let plugin = (kind.load)(runtime, origin, &component)?;
    Ok(LoadedComponent { plugin, sha256 })
}
