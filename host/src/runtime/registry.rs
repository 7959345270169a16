//! The plugin registry: which aggregates and projections are loaded, and the HTTP routes they
//! declare.
//!
//! The registry is an immutable snapshot behind an atomic pointer: a request sees one
//! consistent set of plugins and routes, and loading or replacing a plugin swaps in a new
//! snapshot without stopping traffic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::aggregate::WasmAggregate;
use super::projection::{QueryRoute, RebuildRoute, WasmProjection};
use super::{RuntimeError, WasmRuntime};
use crate::command::{AggregateLogic, CommandRoute, HttpMethod};

/// The interfaces that tell a component's kind.
const AGGREGATE_EXPORT: &str = "sluice:plugin/aggregate@0.1.0";
const PROJECTION_EXPORT: &str = "sluice:plugin/projection@0.1.0";

/// Why a plugin could not join the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{kind} {name} is already provided by {existing}")]
    Duplicate { kind: &'static str, name: String, existing: String },
    #[error("route {method} {path} of {plugin} collides with {other}")]
    RouteCollision { method: &'static str, path: String, plugin: String, other: String },
    #[error("cannot list plugins in {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{path} exports neither {AGGREGATE_EXPORT} nor {PROJECTION_EXPORT}")]
    UnknownKind { path: PathBuf },
}

/// What a loaded plugin is.
#[derive(Debug, Clone)]
pub enum PluginKind {
    Aggregate,
    Projection,
}

/// A loaded plugin, for listings.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// Aggregate type or projection name.
    pub name: String,
    pub kind: PluginKind,
    /// Where it came from (a file name, or "native" in benchmarks).
    pub source: String,
}

/// What a plugin route leads to.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    Command {
        aggregate_type: String,
        route: CommandRoute,
    },
    Query {
        projection: String,
        route: QueryRoute,
    },
    /// Rebuild every projection.
    Rebuild(RebuildRoute),
}

/// A plugin route matched against a request.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub target: RouteTarget,
    /// Path parameters, with their original case.
    pub params: Vec<(String, String)>,
}

type Named<T> = HashMap<String, (Arc<T>, String)>;

#[derive(Default)]
struct Snapshot {
    aggregates: Named<dyn AggregateLogic>,
    projections: Named<WasmProjection>,
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
                Ok(loaded) => {
                    tracing::info!(plugin = %path.display(), name = %loaded.name, kind = ?loaded.kind, "loaded plugin")
                }
                Err(e) => {
                    tracing::error!(plugin = %path.display(), "plugin not loaded: {e}");
                    failures.push((path, e));
                }
            }
        }
        Ok(failures)
    }

    /// Compile, link and register one component file of either kind.
    pub fn load_file(&self, runtime: &WasmRuntime, path: &Path) -> Result<LoadedPlugin, RegistryError> {
        let component = runtime.load_component(path)?;
        let source = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let exports: Vec<String> =
            component.component_type().exports(runtime.engine()).map(|(name, _)| name.to_owned()).collect();
        if exports.iter().any(|e| e == AGGREGATE_EXPORT) {
            let aggregate = WasmAggregate::load(runtime, path, &component)?;
            let name = aggregate.manifest().aggregate_type.clone();
            self.register(Arc::new(aggregate), source.clone())?;
            Ok(LoadedPlugin { name, kind: PluginKind::Aggregate, source })
        } else if exports.iter().any(|e| e == PROJECTION_EXPORT) {
            let projection = WasmProjection::load(runtime, path, &component)?;
            let name = projection.manifest().name.clone();
            self.register_projection(Arc::new(projection), source.clone())?;
            Ok(LoadedPlugin { name, kind: PluginKind::Projection, source })
        } else {
            Err(RegistryError::UnknownKind { path: path.into() })
        }
    }

    /// Add an aggregate implementation (Wasm or native) under `source`.
    pub fn register(&self, logic: Arc<dyn AggregateLogic>, source: String) -> Result<(), RegistryError> {
        let name = logic.manifest().aggregate_type.clone();
        self.update(|snapshot| {
            if let Some((_, existing)) = snapshot.aggregates.get(&name) {
                return Err(RegistryError::Duplicate { kind: "aggregate type", name, existing: existing.clone() });
            }
            snapshot.aggregates.insert(name, (logic, source));
            Ok(())
        })
    }

    /// Add a projection plugin under `source`.
    pub fn register_projection(&self, projection: Arc<WasmProjection>, source: String) -> Result<(), RegistryError> {
        let name = projection.manifest().name.clone();
        self.update(|snapshot| {
            if let Some((_, existing)) = snapshot.projections.get(&name) {
                return Err(RegistryError::Duplicate { kind: "projection", name, existing: existing.clone() });
            }
            snapshot.projections.insert(name, (projection, source));
            Ok(())
        })
    }

    /// Build the next snapshot from the current one; the routes are rebuilt and checked.
    fn update(&self, change: impl FnOnce(&mut Snapshot) -> Result<(), RegistryError>) -> Result<(), RegistryError> {
        let _writer = self.write.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.current.load();
        let mut next = Snapshot {
            aggregates: current.aggregates.clone(),
            projections: current.projections.clone(),
            routes: RouteTable::default(),
        };
        change(&mut next)?;
        next.routes = RouteTable::build(&next)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    pub fn aggregate(&self, aggregate_type: &str) -> Option<Arc<dyn AggregateLogic>> {
        self.current.load().aggregates.get(aggregate_type).map(|(logic, _)| logic.clone())
    }

    pub fn projection(&self, name: &str) -> Option<Arc<WasmProjection>> {
        self.current.load().projections.get(name).map(|(p, _)| p.clone())
    }

    /// Every loaded aggregate, by type.
    pub fn aggregates(&self) -> Vec<Arc<dyn AggregateLogic>> {
        let snapshot = self.current.load();
        let mut all: Vec<_> = snapshot.aggregates.values().map(|(logic, _)| logic.clone()).collect();
        all.sort_by(|a, b| a.manifest().aggregate_type.cmp(&b.manifest().aggregate_type));
        all
    }

    /// Every loaded projection plugin.
    pub fn projections(&self) -> Vec<Arc<WasmProjection>> {
        let snapshot = self.current.load();
        let mut all: Vec<_> = snapshot.projections.values().map(|(p, _)| p.clone()).collect();
        all.sort_by(|a, b| a.manifest().name.cmp(&b.manifest().name));
        all
    }

    /// Every loaded plugin, aggregates first, by name.
    pub fn plugins(&self) -> Vec<LoadedPlugin> {
        let snapshot = self.current.load();
        let mut plugins: Vec<LoadedPlugin> = snapshot
            .aggregates
            .iter()
            .map(|(name, (_, source))| LoadedPlugin {
                name: name.clone(),
                kind: PluginKind::Aggregate,
                source: source.clone(),
            })
            .chain(snapshot.projections.iter().map(|(name, (_, source))| LoadedPlugin {
                name: name.clone(),
                kind: PluginKind::Projection,
                source: source.clone(),
            }))
            .collect();
        plugins.sort_by(|a, b| {
            (matches!(a.kind, PluginKind::Projection), &a.name)
                .cmp(&(matches!(b.kind, PluginKind::Projection), &b.name))
        });
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
    targets: Vec<RouteTarget>,
    exact: HashMap<HttpMethod, matchit::Router<usize>>,
    folded: HashMap<HttpMethod, matchit::Router<usize>>,
}

/// One route to add: method, path, case mode, owner (for messages), target.
type RouteSpec = (HttpMethod, String, bool, String, RouteTarget);

impl RouteTable {
    fn build(snapshot: &Snapshot) -> Result<Self, RegistryError> {
        let mut specs: Vec<RouteSpec> = Vec::new();
        let mut aggregate_types: Vec<&String> = snapshot.aggregates.keys().collect();
        aggregate_types.sort();
        for aggregate_type in aggregate_types {
            let (logic, source) = &snapshot.aggregates[aggregate_type];
            for route in &logic.manifest().routes {
                let target = RouteTarget::Command { aggregate_type: aggregate_type.clone(), route: route.clone() };
                specs.push((route.method, route.path.clone(), route.case_insensitive, source.clone(), target));
            }
        }
        let mut names: Vec<&String> = snapshot.projections.keys().collect();
        names.sort();
        let mut rebuilds: Vec<&RebuildRoute> = Vec::new();
        for name in names {
            let (projection, source) = &snapshot.projections[name];
            for route in &projection.manifest().routes {
                let target = RouteTarget::Query { projection: name.clone(), route: route.clone() };
                specs.push((HttpMethod::Get, route.path.clone(), route.case_insensitive, source.clone(), target));
            }
            for route in &projection.manifest().rebuild_routes {
                // The seed's restore route is shared: identical declarations are one route.
                if rebuilds.contains(&route) {
                    continue;
                }
                rebuilds.push(route);
                specs.push((
                    HttpMethod::Post,
                    route.path.clone(),
                    true,
                    source.clone(),
                    RouteTarget::Rebuild(route.clone()),
                ));
            }
        }
        let mut table = Self::default();
        let mut owners: Vec<(HttpMethod, String, String)> = Vec::new();
        for (method, path, case_insensitive, owner, target) in specs {
            let collision = |other: &str| RegistryError::RouteCollision {
                method: method.as_str(),
                path: path.clone(),
                plugin: owner.clone(),
                other: other.to_owned(),
            };
            // Two routes collide when they could match the same request, in either case mode.
            if let Some((_, _, other)) = owners.iter().find(|(m, p, _)| *m == method && p.eq_ignore_ascii_case(&path)) {
                return Err(collision(other));
            }
            let index = table.targets.len();
            let (router, template) = if case_insensitive {
                (&mut table.folded, fold_literals(&path))
            } else {
                (&mut table.exact, path.clone())
            };
            router.entry(method).or_default().insert(template, index).map_err(|e| collision(&e.to_string()))?;
            owners.push((method, path.clone(), owner));
            table.targets.push(target);
        }
        Ok(table)
    }

    fn find(&self, method: HttpMethod, path: &str) -> Option<RouteMatch> {
        if let Some(found) = self.exact.get(&method).and_then(|r| r.at(path).ok()) {
            let params = found.params.iter().map(|(k, v)| (k.to_owned(), decode(v))).collect();
            return Some(RouteMatch { target: self.targets[*found.value].clone(), params });
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
                (k.to_owned(), decode(&path[start..start + v.len()]))
            })
            .collect();
        Some(RouteMatch { target: self.targets[*found.value].clone(), params })
    }
}

/// A path parameter as the client meant it (`John%20Doe` is `John Doe`).
/// Lower-cases a route template's literal text but not its `{parameter}` names, which the
/// plugin uses to look the values up.
fn fold_literals(template: &str) -> String {
    let mut folded = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => in_param = true,
            '}' => in_param = false,
            _ => {}
        }
        folded.push(if in_param { c } else { c.to_ascii_lowercase() });
    }
    folded
}

fn decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::fold_literals;

    #[test]
    fn folding_a_template_keeps_parameter_names() {
        assert_eq!(fold_literals("/API/v1/Things/{thingId}/Parts/{partId}"), "/api/v1/things/{thingId}/parts/{partId}");
    }
}
