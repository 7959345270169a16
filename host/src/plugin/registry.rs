//! The plugin registry: which plugins are loaded, and the HTTP routes they declare.
//!
//! The registry is an immutable snapshot behind an atomic pointer: a request sees one
//! consistent set of plugins and routes, and adding, replacing or removing a plugin swaps in a
//! new snapshot (routes rebuilt and checked) without stopping traffic. Names are unique across
//! kinds, so a projection can never take an aggregate's name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{AggregateLogic, CommandRoute, HttpMethod, Plugin, PluginKind, ProjectionLogic, QueryRoute, RebuildRoute};

/// Why a change to the registry was refused; nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("{kind} {name} is already loaded from {existing}")]
    Duplicate { kind: PluginKind, name: String, existing: String },
    #[error("the name {name} is taken by the {kind} loaded from {existing}")]
    NameTaken { kind: PluginKind, name: String, existing: String },
    #[error("no {kind} {name} is loaded")]
    NotLoaded { kind: PluginKind, name: String },
    #[error("route {method} {path} of {plugin} collides with {other}")]
    RouteCollision { method: &'static str, path: String, plugin: String, other: String },
}

/// Where a loaded plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Aggregate type or projection name.
    pub name: String,
    pub kind: PluginKind,
    /// A file name, "upload", or "native" in benchmarks.
    pub source: String,
    /// Of the component's bytes (empty for native plugins).
    pub sha256: String,
}

/// A plugin in the registry, with where it came from.
#[derive(Clone)]
pub struct Loaded {
    pub plugin: Plugin,
    pub info: Arc<PluginInfo>,
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

#[derive(Default)]
struct Snapshot {
    /// By name, so listings and route building are in a stable order.
    plugins: BTreeMap<String, Loaded>,
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

    /// Add a plugin whose name is free.
    pub fn add(&self, plugin: Plugin, source: String, sha256: String) -> Result<Loaded, RegistryError> {
        let loaded = entry(plugin, source, sha256);
        self.update(|plugins| {
            if let Some(existing) = plugins.get(&loaded.info.name) {
                return Err(taken(&loaded.info, &existing.info));
            }
            plugins.insert(loaded.info.name.clone(), loaded.clone());
            Ok(loaded.clone())
        })
    }

    /// Put `plugin` in the place of the loaded plugin of the same kind and name, in one swap:
    /// a request sees either the old one or the new one. Returns the old one.
    pub fn replace(&self, plugin: Plugin, source: String, sha256: String) -> Result<Loaded, RegistryError> {
        let loaded = entry(plugin, source, sha256);
        self.update(|plugins| match plugins.get(&loaded.info.name) {
            Some(existing) if existing.info.kind == loaded.info.kind => {
                let old = existing.clone();
                plugins.insert(loaded.info.name.clone(), loaded.clone());
                Ok(old)
            }
            Some(existing) => Err(taken(&loaded.info, &existing.info)),
            None => Err(RegistryError::NotLoaded { kind: loaded.info.kind, name: loaded.info.name.clone() }),
        })
    }

    /// Whether `plugin` would fit in the place of the plugin of its name (or beside the others,
    /// when none has it): same kind, and routes that collide with no other plugin's. Nothing
    /// changes.
    pub fn check(&self, plugin: &Plugin) -> Result<(), RegistryError> {
        let current = self.current.load();
        if let Some(existing) = current.plugins.get(plugin.name())
            && existing.info.kind != plugin.kind()
        {
            let info = PluginInfo {
                name: plugin.name().to_owned(),
                kind: plugin.kind(),
                source: String::new(),
                sha256: String::new(),
            };
            return Err(taken(&info, &existing.info));
        }
        let mut plugins = current.plugins.clone();
        plugins.insert(plugin.name().to_owned(), entry(plugin.clone(), "the new version".into(), String::new()));
        RouteTable::build(&plugins).map(|_| ())
    }

    /// Take the plugin `name` out, with its routes, in one swap.
    pub fn remove(&self, name: &str) -> Option<Loaded> {
        self.update(|plugins| Ok::<_, RegistryError>(plugins.remove(name))).ok().flatten()
    }

    /// Add an aggregate implementation (Wasm or native) under `source`.
    pub fn register(&self, logic: Arc<dyn AggregateLogic>, source: String) -> Result<(), RegistryError> {
        self.add(Plugin::Aggregate(logic), source, String::new()).map(|_| ())
    }

    /// Build the next snapshot from the current one; the routes are rebuilt and checked.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Loaded>) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let _writer = self.write.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.current.load();
        let mut plugins = current.plugins.clone();
        let result = change(&mut plugins)?;
        let routes = RouteTable::build(&plugins)?;
        self.current.store(Arc::new(Snapshot { plugins, routes }));
        Ok(result)
    }

    /// The plugin `name`, of any kind.
    pub fn get(&self, name: &str) -> Option<Loaded> {
        self.current.load().plugins.get(name).cloned()
    }

    pub fn aggregate(&self, aggregate_type: &str) -> Option<Arc<dyn AggregateLogic>> {
        match &self.current.load().plugins.get(aggregate_type)?.plugin {
            Plugin::Aggregate(logic) => Some(logic.clone()),
            _ => None,
        }
    }

    pub fn projection(&self, name: &str) -> Option<Arc<dyn ProjectionLogic>> {
        match &self.current.load().plugins.get(name)?.plugin {
            Plugin::Projection(logic) => Some(logic.clone()),
            _ => None,
        }
    }

    /// Every loaded aggregate, by type.
    pub fn aggregates(&self) -> Vec<Arc<dyn AggregateLogic>> {
        let snapshot = self.current.load();
        snapshot
            .plugins
            .values()
            .filter_map(|l| match &l.plugin {
                Plugin::Aggregate(logic) => Some(logic.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every loaded projection plugin, by name.
    pub fn projections(&self) -> Vec<Arc<dyn ProjectionLogic>> {
        let snapshot = self.current.load();
        snapshot
            .plugins
            .values()
            .filter_map(|l| match &l.plugin {
                Plugin::Projection(logic) => Some(logic.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every loaded plugin, by kind (in the order of [`PluginKind::ALL`]), then name.
    pub fn plugins(&self) -> Vec<Loaded> {
        let snapshot = self.current.load();
        let mut plugins: Vec<Loaded> = snapshot.plugins.values().cloned().collect();
        plugins.sort_by_key(|l| PluginKind::ALL.iter().position(|k| *k == l.info.kind));
        plugins
    }

    /// The plugin route a request reaches, if any.
    pub fn match_route(&self, method: HttpMethod, path: &str) -> Option<RouteMatch> {
        self.current.load().routes.find(method, path)
    }
}

fn entry(plugin: Plugin, source: String, sha256: String) -> Loaded {
    let info = PluginInfo { name: plugin.name().to_owned(), kind: plugin.kind(), source, sha256 };
    Loaded { plugin, info: Arc::new(info) }
}

fn taken(new: &PluginInfo, existing: &PluginInfo) -> RegistryError {
    if new.kind == existing.kind {
        RegistryError::Duplicate { kind: new.kind, name: new.name.clone(), existing: existing.source.clone() }
    } else {
        RegistryError::NameTaken { kind: existing.kind, name: new.name.clone(), existing: existing.source.clone() }
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
    fn build(plugins: &BTreeMap<String, Loaded>) -> Result<Self, RegistryError> {
        let mut specs: Vec<RouteSpec> = Vec::new();
        for (aggregate_type, loaded) in plugins {
            let Plugin::Aggregate(logic) = &loaded.plugin else { continue };
            let source = &loaded.info.source;
            for route in &logic.manifest().routes {
                let target = RouteTarget::Command { aggregate_type: aggregate_type.clone(), route: route.clone() };
                specs.push((route.method, route.path.clone(), route.case_insensitive, source.clone(), target));
            }
        }
        let mut rebuilds: Vec<&RebuildRoute> = Vec::new();
        for (name, loaded) in plugins {
            let Plugin::Projection(projection) = &loaded.plugin else { continue };
            let source = &loaded.info.source;
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
