//! What plugins declare, as the host holds it (independent of the WIT bindings), and its
//! validation at load: the aggregate manifest (commands, events, routes, topic, and since WIT
//! 0.2.0 the schema versions of its events) and the projection manifest (subscriptions, tables,
//! queries, routes).

use crate::read_store::ProjectionSchema;

/// An HTTP method a plugin route may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    pub fn from_http(method: &axum::http::Method) -> Option<Self> {
        Some(match *method {
            axum::http::Method::GET => Self::Get,
            axum::http::Method::POST => Self::Post,
            axum::http::Method::PUT => Self::Put,
            axum::http::Method::PATCH => Self::Patch,
            axum::http::Method::DELETE => Self::Delete,
            _ => return None,
        })
    }
}

/// Where a route finds the aggregate id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    PathParam(String),
    NewUuid,
}

/// A route that reaches one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRoute {
    pub method: HttpMethod,
    pub path: String,
    pub command: String,
    pub id: IdSource,
    pub success_status: u16,
    pub success_message: String,
    pub case_insensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: String,
    pub creates: bool,
    /// The JSON Schema of its body (a JSON object), since WIT 0.2.0: documented in
    /// `/openapi.json`, not enforced.
    pub body_schema: Option<serde_json::Value>,
}

/// An aggregate plugin's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateManifest {
    pub aggregate_type: String,
    pub commands: Vec<CommandSpec>,
    pub events: Vec<String>,
    pub routes: Vec<CommandRoute>,
    pub topic: String,
    /// The schema versions it reads per event type: `None` for a 0.1.0 plugin, which declares
    /// none (its events pass as stored, and it is trusted to read every version of the event
    /// types it declares).
    pub schemas: Option<Vec<EventSchema>>,
}

/// The schema versions of one event type an aggregate reads: it writes `current` and upcasts
/// `oldest..current` to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSchema {
    pub current: u32,
    pub oldest: u32,
}

impl EventSchema {
    /// A type with one shape, version 1 (what a 0.2.0 plugin's unlisted types are).
    pub const FIRST: Self = Self { current: 1, oldest: 1 };

    /// Whether a stored event at `version` can be read (as it is, or upcast).
    pub fn reads(self, version: u32) -> bool {
        (self.oldest..=self.current).contains(&version)
    }
}

/// Paths the host serves itself; plugin routes may not shadow them.
const RESERVED_PREFIXES: &[&str] = &[
    "/api/aggregates",
    "/api/projections",
    "/admin",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/dashboard",
];

impl AggregateManifest {
    pub fn command(&self, name: &str) -> Option<&CommandSpec> {
        self.commands.iter().find(|c| c.name == name)
    }

    /// The schema versions the plugin reads of `event_type`: `None` when it declares no versions
    /// (0.1.0) or does not declare the type at all.
    pub fn schema(&self, event_type: &str) -> Option<EventSchema> {
        let schemas = self.schemas.as_ref()?;
        let i = self.events.iter().position(|e| e == event_type)?;
        Some(schemas.get(i).copied().unwrap_or(EventSchema::FIRST))
    }

    /// Whether a stored event must go through the plugin's `upcast` before it is handed on: its
    /// type has a declared current version, and the event is not at it.
    pub fn needs_upcast(&self, event_type: &str, schema_version: u32) -> bool {
        self.schema(event_type).is_some_and(|s| s.current != schema_version)
    }

    /// Check the manifest is coherent; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !is_name(&self.aggregate_type) {
            return Err(format!("aggregate type {:?} must be letters, digits, '-' or '_'", self.aggregate_type));
        }
        if self.commands.is_empty() {
            return Err("declares no commands".into());
        }
        for (i, command) in self.commands.iter().enumerate() {
            if !is_name(&command.name) {
                return Err(format!("command name {:?} must be letters, digits, '-' or '_'", command.name));
            }
            if self.commands[..i].iter().any(|c| c.name == command.name) {
                return Err(format!("command {:?} is declared twice", command.name));
            }
            if command.body_schema.as_ref().is_some_and(|schema| !schema.is_object()) {
                return Err(format!("command {:?}: the body schema must be a JSON object", command.name));
            }
        }
        if let Some(bad) = self.events.iter().find(|e| !is_name(e)) {
            return Err(format!("event type {bad:?} must be letters, digits, '-' or '_'"));
        }
        if let Some(schemas) = &self.schemas {
            for (event_type, schema) in self.events.iter().zip(schemas) {
                if schema.oldest == 0 || schema.oldest > schema.current {
                    return Err(format!(
                        "event type {event_type}: schema versions {}..={} are not 1 <= oldest <= current",
                        schema.oldest, schema.current
                    ));
                }
            }
        }
        if self.topic.is_empty() || !self.topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(format!("topic {:?} is not a valid topic name", self.topic));
        }
        for route in &self.routes {
            let what = format!("route {} {}", route.method.as_str(), route.path);
            if !route.path.starts_with('/') {
                return Err(format!("{what}: the path must start with '/'"));
            }
            if RESERVED_PREFIXES.iter().any(|p| route.path.to_ascii_lowercase().starts_with(p)) {
                return Err(format!("{what}: the path is reserved for the host"));
            }
            if self.command(&route.command).is_none() {
                return Err(format!("{what}: names undeclared command {:?}", route.command));
            }
            if !(200..300).contains(&route.success_status) {
                return Err(format!("{what}: success status {} is not 2xx", route.success_status));
            }
            if let IdSource::PathParam(name) = &route.id
                && !route.path.contains(&format!("{{{name}}}"))
            {
                return Err(format!("{what}: the id parameter {{{name}}} is not in the path"));
            }
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

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
