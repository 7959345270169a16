//! The plugin registry: which aggregates are loaded and which HTTP routes they declare.
//!
//! The registry is an immutable snapshot behind an atomic pointer: a request sees one
//! consistent set of plugins and routes, and loading or replacing a plugin swaps in a new
//! snapshot without stopping traffic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::aggregate::WasmAggregate;
use super::{RuntimeError, WasmRuntime};
use crate::command::{AggregateLogic, AggregateManifest, CommandRoute, HttpMethod};

/// Why a plugin could not join the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("aggregate type {aggregate_type} is already provided by {existing}")]
    DuplicateType { aggregate_type: String, existing: String },
    #[error("route {method} {path} of {plugin} collides with {other}")]
    RouteCollision { method: &'static str, path: String, plugin: String, other: String },
    #[error("cannot list plugins in {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
}

/// A loaded plugin, for listings.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// Where it came from (a file name, or "native" in benchmarks).
    pub source: String,
    pub manifest: AggregateManifest,
}

/// A plugin route matched against a request.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub aggregate_type: String,
    pub route: CommandRoute,
    /// Path parameters, with their original case.
    pub params: Vec<(String, String)>,
}

#[derive(Default)]
struct Snapshot {
    aggregates: HashMap<String, (Arc<dyn AggregateLogic>, String)>,
    routes: RouteTable,
}

/// The loaded plugins; cheap to clone and share.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    current: Arc<ArcSwap<Snapshot>>,
    // Serialises writers; readers never wait.
    write: Arc<std::sync::Mutex<()>>,
}

impl PluginRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Load every `*.wasm` in `dir` (in name order). A plugin that fails to load is logged and
    /// skipped, so one broken file does not take the others down; the errors are returned.
    pub fn load_dir(&self, runtime: &WasmRuntime, dir: &Path) -> Result<Vec<(PathBuf, RegistryError)>, RegistryError> {
        let entries = std::fs::read_dir(dir).map_err(|source| RegistryError::Dir { path: dir.into(), source })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        paths.sort();
        let mut failures = Vec::new();
        for path in paths {
            match self.load_file(runtime, &path) {
                Ok(manifest) => tracing::info!(
                    plugin = %path.display(),
                    aggregate = %manifest.aggregate_type,
                    routes = manifest.routes.len(),
                    "loaded aggregate plugin"
                ),
                Err(e) => {
                    tracing::error!(plugin = %path.display(), "plugin not loaded: {e}");
                    failures.push((path, e));
                }
            }
        }
        Ok(failures)
    }

    /// Compile, link and register one component file.
    pub fn load_file(&self, runtime: &WasmRuntime, path: &Path) -> Result<AggregateManifest, RegistryError> {
        let component = runtime.load_component(path)?;
        let aggregate = WasmAggregate::load(runtime, path, &component)?;
        let manifest = aggregate.manifest().clone();
        let source = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        self.register(Arc::new(aggregate), source)?;
        Ok(manifest)
    }

    /// Add an aggregate implementation (Wasm or native) under `source`.
    pub fn register(&self, logic: Arc<dyn AggregateLogic>, source: String) -> Result<(), RegistryError> {
        let _writer = self.write.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.current.load();
        let aggregate_type = logic.manifest().aggregate_type.clone();
        if let Some((_, existing)) = current.aggregates.get(&aggregate_type) {
            return Err(RegistryError::DuplicateType { aggregate_type, existing: existing.clone() });
        }
        let mut aggregates = current.aggregates.clone();
        aggregates.insert(aggregate_type, (logic, source));
        let routes = RouteTable::build(&aggregates)?;
        self.current.store(Arc::new(Snapshot { aggregates, routes }));
        Ok(())
    }

    pub fn aggregate(&self, aggregate_type: &str) -> Option<Arc<dyn AggregateLogic>> {
        self.current.load().aggregates.get(aggregate_type).map(|(logic, _)| logic.clone())
    }

    /// Every loaded plugin, by aggregate type.
    pub fn plugins(&self) -> Vec<LoadedPlugin> {
        let snapshot = self.current.load();
        let mut plugins: Vec<LoadedPlugin> = snapshot
            .aggregates
            .values()
            .map(|(logic, source)| LoadedPlugin { source: source.clone(), manifest: logic.manifest().clone() })
            .collect();
        plugins.sort_by(|a, b| a.manifest.aggregate_type.cmp(&b.manifest.aggregate_type));
        plugins
    }

    /// The plugin route a request reaches, if any.
    pub fn match_route(&self, method: HttpMethod, path: &str) -> Option<RouteMatch> {
        self.current.load().routes.find(method, path)
    }
}

/// Plugin routes by method: exact templates, and lower-cased ones for case-insensitive routes.
#[derive(Default)]
struct RouteTable {
    entries: Vec<(String, CommandRoute)>,
    exact: HashMap<HttpMethod, matchit::Router<usize>>,
    folded: HashMap<HttpMethod, matchit::Router<usize>>,
}

impl RouteTable {
    fn build(aggregates: &HashMap<String, (Arc<dyn AggregateLogic>, String)>) -> Result<Self, RegistryError> {
        let mut table = Self::default();
        let mut owners: Vec<(HttpMethod, String, String)> = Vec::new();
        let mut types: Vec<&String> = aggregates.keys().collect();
        types.sort();
        for aggregate_type in types {
            let (logic, source) = &aggregates[aggregate_type];
            for route in &logic.manifest().routes {
                let index = table.entries.len();
                let folded_path = route.path.to_ascii_lowercase();
                let collision = |other: &str| RegistryError::RouteCollision {
                    method: route.method.as_str(),
                    path: route.path.clone(),
                    plugin: source.clone(),
                    other: other.to_owned(),
                };
                // Two routes collide when they could match the same request, in either case mode.
                if let Some((_, _, other)) =
                    owners.iter().find(|(m, p, _)| *m == route.method && p.eq_ignore_ascii_case(&route.path))
                {
                    return Err(collision(other));
                }
                let router = if route.case_insensitive { &mut table.folded } else { &mut table.exact };
                let template = if route.case_insensitive { &folded_path } else { &route.path };
                router
                    .entry(route.method)
                    .or_default()
                    .insert(template.clone(), index)
                    .map_err(|e| collision(&e.to_string()))?;
                owners.push((route.method, route.path.clone(), source.clone()));
                table.entries.push((aggregate_type.clone(), route.clone()));
            }
        }
        Ok(table)
    }

    fn find(&self, method: HttpMethod, path: &str) -> Option<RouteMatch> {
        if let Some(found) = self.exact.get(&method).and_then(|r| r.at(path).ok()) {
            let params = found.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            return Some(self.matched(*found.value, params));
        }
        let folded = path.to_ascii_lowercase();
        let found = self.folded.get(&method)?.at(&folded).ok()?;
        // Parameter values keep the request's case: lower-casing ASCII keeps byte offsets, so
        // each value's place in the folded path is its place in the original.
        let params = found
            .params
            .iter()
            .map(|(k, v)| {
                let start = v.as_ptr() as usize - folded.as_ptr() as usize;
                (k.to_owned(), path[start..start + v.len()].to_owned())
            })
            .collect();
        Some(self.matched(*found.value, params))
    }

    fn matched(&self, index: usize, params: Vec<(String, String)>) -> RouteMatch {
        let (aggregate_type, route) = &self.entries[index];
        RouteMatch { aggregate_type: aggregate_type.clone(), route: route.clone(), params }
    }
}
