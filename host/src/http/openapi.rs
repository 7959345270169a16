//! `GET /openapi.json` (OpenAPI 3.1) and the API docs page at `GET /docs`.
//!
//! The document has two halves. The host's own routes are derived by utoipa from the handlers'
//! annotations and typed answers, once. The routes of the loaded plugins (aggregate command
//! routes with the JSON Schema each command declares for its body, projection query routes with
//! the parameters of their templates, rebuild routes) are merged in at every request from the
//! registry's current snapshot, so the document follows plugins as they are added, replaced and
//! removed. Its ETag is a hash of its bytes; `If-None-Match` gets a 304.
//!
//! A command's schema may hold `$defs` (as schemars writes them): they move to the document's
//! `components/schemas` under `<aggregate>.<command>.<name>`, and the `$ref`s that point at them
//! follow, since a `#/$defs/...` pointer inside the document would resolve against its root.

use std::collections::HashSet;
use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::AppState;
use super::aggregates::{AppendedEvent, CommandAnswer, EventsAnswer, StateAnswer};
use super::error::ErrorBody;
use super::plugin_routes::{RebuildAnswer, RouteCommandAnswer};
use crate::plugin::{AggregateManifest, PluginRegistry, ProjectionManifest};

/// The host's own routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        description = "A CQRS and event-sourcing host whose domain code runs as WebAssembly plugins. \
                       The routes under `/api/aggregates` and `/api/projections` reach any loaded plugin; \
                       the other `/api/...` routes are declared by the plugins loaded now.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::aggregates::command,
        super::aggregates::state,
        super::aggregates::events,
        super::projections::query,
        health,
        document,
        super::metrics::metrics,
        super::admin::plugins,
        super::admin::plugin,
        super::admin::versions,
        super::admin::upload,
        super::admin::remove,
        super::admin::activate,
        super::admin::dry_run,
        super::admin::rebuild,
        super::admin::consumers,
        super::dead_letters::list,
        super::dead_letters::retry,
        super::dead_letters::retry_consumer,
        super::dead_letters::drop_letter,
        super::dead_letters::resume,
        super::watch::events,
        super::watch::rebuild_progress,
        super::reactors::reset,
        super::reactors::list_outbox,
        super::reactors::retry_message,
    ),
    modifiers(&AdminToken),
    components(schemas(
        ErrorBody,
        CommandAnswer,
        AppendedEvent,
        StateAnswer,
        EventsAnswer,
        RouteCommandAnswer,
        RebuildAnswer,
        Health,
        super::dead_letters::LetterList,
        crate::admin::delivery_letters::DeliveryLetter,
    )),
    tags(
        (name = "aggregates", description = "Any command of any loaded aggregate; state and events by replay"),
        (name = "projections", description = "Any query of any loaded projection"),
        (name = "plugin routes", description = "Routes the loaded plugins declare"),
        (name = "host", description = "Health, metrics and this document"),
        (name = "admin", description = "The admin API: needs `--admin-token` and `Authorization: Bearer TOKEN`"),
    ),
)]
struct HostApi;

/// The admin routes' bearer token, as a security scheme, and the two refusals of its guard
/// ([`super::admin_auth`]) on every operation that needs it.
struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        let refusal = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let guarded =
                    operation.security.iter().flatten().any(|requirement| {
                        serde_json::to_value(requirement).is_ok_and(|r| r.get("admin_token").is_some())
                    });
                if guarded {
                    let responses = &mut operation.responses.responses;
                    responses.entry("401".into()).or_insert_with(|| {
                        refusal(
                            "No bearer token, or not the admin token (`unauthorized`, with `WWW-Authenticate: Bearer`)",
                        )
                        .into()
                    });
                    responses.entry("403".into()).or_insert_with(|| {
                        refusal("The host runs with no admin token: the admin API is off (`admin_disabled`)").into()
                    });
                }
            }
        }
    }
}

/// The answer of `/healthz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when the host answers.
    pub status: String,
}

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "host", responses((status = 200, description = "The host is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// `GET /openapi.json`: the host's routes and the loaded plugins' routes.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "host",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier answer")),
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", body = Object, content_type = "application/json"),
        (status = 304, description = "Unchanged since the ETag given"),
    ),
)]
pub async fn document(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let document = build(state.commands.registry());
    let bytes = match serde_json::to_vec(&document) {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("a JSON value always serialises: {e}"),
    };
    let etag = format!("\"{}\"", &crate::plugin::sha256_hex(&bytes)[..32]);
    let etag_value = HeaderValue::from_str(&etag).unwrap_or_else(|_| unreachable!("hex in quotes is a header value"));
    if matches_etag(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json")), (header::ETAG, etag_value)], bytes)
        .into_response()
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare by their opaque part.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|list| list.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag))
}

/// The host's half of the document, derived once.
fn host_document() -> &'static Value {
    static HOST: OnceLock<Value> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut document = serde_json::to_value(HostApi::openapi())
            .unwrap_or_else(|e| unreachable!("utoipa's document always serialises: {e}"));
        document["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
        document
    })
}

/// The whole document for the plugins in `registry` now.
pub fn build(registry: &PluginRegistry) -> Value {
    let mut document = host_document().clone();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for aggregate in registry.aggregates() {
        add_aggregate(aggregate.manifest(), &mut paths, &mut schemas);
    }
    for projection in registry.projections() {
        add_projection(projection.manifest(), &mut paths);
    }
    let Some(document_object) = document.as_object_mut() else { unreachable!("an OpenAPI document is an object") };
    let host_paths = document_object.entry("paths").or_insert_with(|| json!({}));
    for (path, item) in paths {
        // A plugin path never shadows the host's (the manifest check reserves its prefixes).
        if let (Some(host_paths), Value::Object(item)) = (host_paths.as_object_mut(), item) {
            let entry = host_paths.entry(path).or_insert_with(|| json!({}));
            if let Some(entry) = entry.as_object_mut() {
                for (method, operation) in item {
                    entry.entry(method).or_insert(operation);
                }
            }
        }
    }
    let components = document_object.entry("components").or_insert_with(|| json!({}));
    let host_schemas = components.as_object_mut().map(|c| c.entry("schemas").or_insert_with(|| json!({})));
    if let Some(host_schemas) = host_schemas.and_then(Value::as_object_mut) {
        host_schemas.extend(schemas);
    }
    document
}

fn add_aggregate(manifest: &AggregateManifest, paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    for route in &manifest.routes {
        let spec = manifest.command(&route.command);
        let body_schema = match spec.and_then(|s| s.body_schema.as_ref()) {
            Some(schema) => {
                let name = format!("{}.{}", manifest.aggregate_type, route.command);
                let adopted = adopt_schema(schema, &name, schemas);
                schemas.insert(name.clone(), adopted);
                json!({ "$ref": format!("#/components/schemas/{name}") })
            }
            None => json!({ "type": "object" }),
        };
        let mut parameters = path_parameters(&route.path);
        parameters.push(json!({
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "The stream version the caller expects",
            "schema": { "type": "string" },
        }));
        let operation = json!({
            "tags": ["plugin routes"],
            "summary": format!("{} ({})", route.command, manifest.aggregate_type),
            "description": format!("Runs command `{}` of aggregate `{}`.", route.command, manifest.aggregate_type),
            "operationId": format!("{}.{}.{}", manifest.aggregate_type, route.command, route.method.as_str().to_ascii_lowercase()),
            "parameters": parameters,
            "requestBody": {
                "required": true,
                "content": { "application/json": { "schema": body_schema } },
            },
            "responses": {
                route.success_status.to_string(): {
                    "description": route.success_message,
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RouteCommandAnswer" } } },
                },
                "default": error_response(),
            },
        });
        insert_operation(paths, &route.path, route.method.as_str(), operation);
    }
}

fn add_projection(manifest: &ProjectionManifest, paths: &mut Map<String, Value>) {
    for route in &manifest.routes {
        let mut parameters = path_parameters(&route.path);
        parameters.push(json!({
            "name": "sluice-position",
            "in": "header",
            "required": false,
            "description": "Answer only once the projection has applied this global position",
            "schema": { "type": "integer", "minimum": 0 },
        }));
        let operation = json!({
            "tags": ["plugin routes"],
            "summary": format!("{} ({})", route.query, manifest.name),
            "description": format!("Runs query `{}` of projection `{}`; query-string parameters are handed to it.", route.query, manifest.name),
            "operationId": format!("{}.{}", manifest.name, route.query),
            "parameters": parameters,
            "responses": {
                "200": { "description": "The projection's answer", "content": { "application/json": { "schema": {} } } },
                "204": { "description": "Nothing to answer (the projection chose no body)" },
                "default": error_response(),
            },
        });
        insert_operation(paths, &route.path, "GET", operation);
    }
    for route in &manifest.rebuild_routes {
        let operation = json!({
            "tags": ["plugin routes"],
            "summary": "Rebuild every projection",
            "operationId": format!("rebuild.{}", route.path.trim_matches('/').replace('/', ".")),
            "parameters": path_parameters(&route.path),
            "responses": {
                route.success_status.to_string(): {
                    "description": route.success_message,
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RebuildAnswer" } } },
                },
                "default": error_response(),
            },
        });
        insert_operation(paths, &route.path, "POST", operation);
    }
}

fn error_response() -> Value {
    json!({
        "description": "Refused: see `code`",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
    })
}

/// Put `operation` at `path` and `method` unless one is there (routes shared by several plugins,
/// like a rebuild route, are listed once). Its `operationId` gets a `.2`, `.3`, ... when an
/// earlier operation has it (two routes to one query), as ids must be unique.
fn insert_operation(paths: &mut Map<String, Value>, path: &str, method: &str, mut operation: Value) {
    let taken: HashSet<&str> = paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .filter_map(|op| op.get("operationId").and_then(Value::as_str))
        .collect();
    if let Some(id) = operation.get("operationId").and_then(Value::as_str).map(str::to_owned) {
        let unique =
            (1..).map(|n| if n == 1 { id.clone() } else { format!("{id}.{n}") }).find(|c| !taken.contains(c.as_str()));
        operation["operationId"] = json!(unique);
    }
    let item = paths.entry(openapi_path(path)).or_insert_with(|| json!({}));
    if let Some(item) = item.as_object_mut() {
        item.entry(method.to_ascii_lowercase()).or_insert(operation);
    }
}

/// A route template as an OpenAPI path: `{*rest}` catch-alls become plain `{rest}`.
fn openapi_path(template: &str) -> String {
    template.replace("{*", "{")
}

/// The path parameters of a route template, in order, each a required string.
fn path_parameters(template: &str) -> Vec<Value> {
    let mut names: Vec<&str> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        let name = rest[start + 1..start + end].trim_start_matches('*');
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
        rest = &rest[start + end + 1..];
    }
    names
        .into_iter()
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

/// A command's JSON Schema as a component: its `$defs` become components named
/// `<prefix>.<def>` and the `$ref`s to them follow; `$schema` goes (the document's dialect
/// applies).
fn adopt_schema(schema: &Value, prefix: &str, schemas: &mut Map<String, Value>) -> Value {
    let mut schema = schema.clone();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(defs)) = object.remove(key) {
                for (name, mut def) in defs {
                    rewrite_refs(&mut def, prefix);
                    schemas.insert(format!("{prefix}.{name}"), def);
                }
            }
        }
    }
    rewrite_refs(&mut schema, prefix);
    schema
}

fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = inner
                {
                    for local in ["#/$defs/", "#/definitions/"] {
                        if let Some(name) = target.strip_prefix(local) {
                            *target = format!("#/components/schemas/{prefix}.{name}");
                            break;
                        }
                    }
                } else {
                    rewrite_refs(inner, prefix);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(item, prefix)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_lists_its_parameters_once_in_order() {
        let names: Vec<Value> = path_parameters("/api/v1/{thingId}/parts/{partId}/{thingId}")
            .into_iter()
            .map(|p| p["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("thingId"), json!("partId")]);
    }

    #[test]
    fn definitions_move_to_components_and_refs_follow() {
        let mut schemas = Map::new();
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": { "amount": { "$ref": "#/$defs/Money" } },
            "$defs": { "Money": { "type": "string", "items": { "$ref": "#/$defs/Money" } } },
        });
        let adopted = adopt_schema(&schema, "thing.Move", &mut schemas);
        assert_eq!(adopted.get("$schema"), None);
        assert_eq!(adopted["properties"]["amount"]["$ref"], json!("#/components/schemas/thing.Move.Money"));
        assert_eq!(schemas["thing.Move.Money"]["items"]["$ref"], json!("#/components/schemas/thing.Move.Money"));
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\", W/\"abc\""));
        assert!(matches_etag(&headers, "\"abc\""));
        assert!(!matches_etag(&headers, "\"abd\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&headers, "\"abd\""));
    }

    #[test]
    fn the_host_document_is_openapi_3_1_with_the_generic_routes() {
        let document = host_document();
        assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", document["openapi"]);
        assert!(document["paths"]["/api/aggregates/{aggregate_type}/{id}/commands/{command}"]["post"].is_object());
        assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    }

    #[test]
    fn every_admin_operation_has_a_typed_answer_and_the_guards_refusals() {
        let document = host_document();
        let paths = document["paths"].as_object().expect("paths");
        let mut operations = 0;
        for (path, item) in paths.iter().filter(|(path, _)| path.starts_with("/admin")) {
            for (method, operation) in item.as_object().expect("a path item") {
                operations += 1;
                let responses = &operation["responses"];
                for refusal in ["401", "403", "default"] {
                    let schema = &responses[refusal]["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {refusal}");
                }
                let success = &responses["200"]["content"]["application/json"]["schema"]["$ref"];
                let name = success.as_str().and_then(|r| r.strip_prefix("#/components/schemas/"));
                let name = name.unwrap_or_else(|| panic!("{method} {path}: 200 is no typed body: {responses}"));
                assert!(document["components"]["schemas"][name].is_object(), "{method} {path}: {name} is missing");
            }
        }
        assert!(operations >= 19, "only {operations} admin operations");
        let upload = &document["paths"]["/admin/plugins/{name}"]["put"]["responses"];
        assert_eq!(
            upload["201"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/InstallAnswer"
        );
    }
}
