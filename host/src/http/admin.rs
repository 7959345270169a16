//! The `/admin` routes: thin HTTP edges over the [`Admin`](crate::admin::Admin) service, behind
//! the bearer-token guard ([`super::admin_auth`]). Every answer is a typed body; every refusal
//! goes through [`ApiError`] with a status that says whose fault it is.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::body::{discard, read_bytes};
use super::error::ApiError;
use crate::admin::dry_run::DryRunReport;
use crate::admin::{Installed, PluginStatus, Refused, VersionStatus};
use crate::read_store::ReadStore;

#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginStatus>,
    pub refused: Vec<Refused>,
}

/// `GET /admin/plugins`.
#[utoipa::path(
    get,
    path = "/admin/plugins",
    tag = "admin",
    description = "The plugins with status, position, head and lag, and the refused components",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The plugins and the refused components", body = PluginList),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn plugins(State(state): State<AppState>) -> Result<Json<PluginList>, ApiError> {
    let admin = state.admin()?;
    Ok(Json(PluginList { plugins: admin.plugins().await, refused: admin.refused() }))
}

/// `GET /admin/plugins/{name}`.
#[utoipa::path(
    get,
    path = "/admin/plugins/{name}",
    tag = "admin",
    description = "One plugin",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The plugin", body = PluginStatus),
        (status = 404, description = "No plugin of that name (`unknown_plugin`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn plugin(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<PluginStatus>, ApiError> {
    Ok(Json(state.admin()?.plugin(&name).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionList {
    pub name: String,
    pub active: Option<String>,
    pub versions: Vec<VersionStatus>,
}

/// `GET /admin/plugins/{name}/versions`.
#[utoipa::path(
    get,
    path = "/admin/plugins/{name}/versions",
    tag = "admin",
    description = "The stored versions of a plugin",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The stored versions, newest first", body = VersionList),
        (status = 400, description = "Not a plugin name (`invalid_plugin_name`)", body = super::error::ErrorBody),
        (status = 404, description = "No plugin of that name (`unknown_plugin`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn versions(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<VersionList>, ApiError> {
    let (active, versions) = state.admin()?.versions(&name)?;
    Ok(Json(VersionList { name, active, versions }))
}

#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct InstallAnswer {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replaced: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    pub plugin: Option<PluginStatus>,
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// Install even over stored events the plugin cannot read (the deploy-time check).
    #[serde(default)]
    force: bool,
}

/// `PUT /admin/plugins/{name}[?force=true]` with the component as an `application/wasm` body:
/// 201 for a new plugin, 200 for a replace or the same sha256 again; 409 when it cannot read
/// stored events, unless forced.
#[utoipa::path(
    put,
    path = "/admin/plugins/{name}",
    tag = "admin",
    description = "Install or replace a plugin (201 when new)",
    security(("admin_token" = [])),
    params(("name" = String, Path), ("force" = Option<bool>, Query)),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 200, description = "Replaced, or the same sha256 again (`unchanged`)", body = InstallAnswer),
        (status = 201, description = "Installed a new plugin", body = InstallAnswer),
        (status = 400, description = "A bad `force`, or a component of another name (`wrong_plugin_name`)", body = super::error::ErrorBody),
        (status = 409, description = "It cannot read stored events (`unreadable_events`, unless forced), its routes or name collide, or another change runs", body = super::error::ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = super::error::ErrorBody),
        (status = 415, description = "Not sent as `application/wasm`", body = super::error::ErrorBody),
        (status = 422, description = "Not a loadable plugin (`plugin_refused`, `channel_not_granted`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // A refusal drains the body first: a connection whose request body was left unread is
    // closed after the answer, and a client that already reused it sees a reset.
    let force = match query {
        Ok(Query(UploadQuery { force })) => force,
        Err(e) => {
            discard(body).await;
            return Err(ApiError::BadQuery(format!("force must be true or false: {e}")));
        }
    };
    if let Err(refusal) = wasm_content_type(&headers, "a plugin is uploaded") {
        discard(body).await;
        return Err(refusal);
    }
    let bytes = read_bytes(body, state.upload_limit).await?;
    let (installed, status) = state.admin()?.upload(&name, bytes, force).await?;
    let answer = InstallAnswer {
        created: installed == Installed::Created,
        replaced: installed == Installed::Replaced,
        unchanged: installed == Installed::Unchanged,
        plugin: Some(status),
    };
    let code = if installed == Installed::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(answer)).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Removed {
    pub removed: String,
}

/// `DELETE /admin/plugins/{name}`.
#[utoipa::path(
    delete,
    path = "/admin/plugins/{name}",
    tag = "admin",
    description = "Remove a plugin and its file",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 404, description = "No plugin of that name (`unknown_plugin`)", body = super::error::ErrorBody),
        (status = 409, description = "Another change of it runs (`plugin_busy`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn remove(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Removed>, ApiError> {
    state.admin()?.delete(&name).await?;
    Ok(Json(Removed { removed: name }))
}

/// `POST /admin/plugins/{name}/versions/{sha256}/activate`.
#[utoipa::path(
    post,
    path = "/admin/plugins/{name}/versions/{sha256}/activate",
    tag = "admin",
    description = "Run a stored version again",
    security(("admin_token" = [])),
    params(("name" = String, Path), ("sha256" = String, Path)),
    responses(
        (status = 200, description = "That version runs now", body = InstallAnswer),
        (status = 400, description = "Not a plugin name or not a sha256 (`invalid_plugin_name`, `invalid_sha256`)", body = super::error::ErrorBody),
        (status = 404, description = "No such plugin or stored version", body = super::error::ErrorBody),
        (status = 409, description = "It cannot read stored events, or another change runs", body = super::error::ErrorBody),
        (status = 422, description = "The stored version is not a loadable plugin", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn activate(
    State(state): State<AppState>,
    Path((name, sha256)): Path<(String, String)>,
) -> Result<Json<InstallAnswer>, ApiError> {
    let status = state.admin()?.activate(&name, &sha256).await?;
    Ok(Json(InstallAnswer { plugin: Some(status), ..InstallAnswer::default() }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    /// Rebuild into this read store instead of the serving one.
    pub into: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Rebuilt {
    pub projection: String,
    pub position: u64,
}

/// `POST /admin/projections/{name}/rebuild`, optionally `{"into": URL}`.
#[utoipa::path(
    post,
    path = "/admin/projections/{name}/rebuild",
    tag = "admin",
    description = "Rebuild a projection, in place or into another read store",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    request_body(content = Option<Object>, content_type = "application/json"),
    responses(
        (status = 200, description = "Rebuilt up to `position`", body = Rebuilt),
        (status = 400, description = "A body that is not `{\"into\": URL}`, or an `into` that cannot be opened", body = super::error::ErrorBody),
        (status = 404, description = "No projection of that name (`unknown_projection`)", body = super::error::ErrorBody),
        (status = 409, description = "A rebuild of it runs, or it cannot be replayed", body = super::error::ErrorBody),
        (status = 413, description = "A body larger than the limit", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn rebuild(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Rebuilt>, ApiError> {
    let bytes = read_bytes(body, state.body_limit).await?;
    let request: RebuildRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        RebuildRequest::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?
    };
    let target = match &request.into {
        Some(url) => Some(ReadStore::open(url).await.map_err(|e| ApiError::BadQuery(format!("into: {e}")))?),
        None => None,
    };
    let position = state.admin()?.rebuild(&name, target.as_ref(), &|_, _| {}).await?;
    Ok(Json(Rebuilt { projection: name, position }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsumerList {
    pub consumers: Vec<PluginStatus>,
}

/// `GET /admin/consumers`.
#[utoipa::path(
    get,
    path = "/admin/consumers",
    tag = "admin",
    description = "Each consumer with status, position, head and lag",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The consumers", body = ConsumerList),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn consumers(State(state): State<AppState>) -> Result<Json<ConsumerList>, ApiError> {
    Ok(Json(ConsumerList { consumers: state.admin()?.consumers().await }))
}

/// `POST /admin/plugins/{name}/dry-run` with a candidate projection as an `application/wasm`
/// body: 200 with what it would change ([`DryRunReport`]); nothing live changes.
#[utoipa::path(
    post,
    path = "/admin/plugins/{name}/dry-run",
    tag = "admin",
    description = "Dry-run a candidate projection",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 200, description = "What the candidate would change", body = DryRunReport),
        (status = 400, description = "A component of another name (`wrong_plugin_name`)", body = super::error::ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = super::error::ErrorBody),
        (status = 415, description = "Not sent as `application/wasm`", body = super::error::ErrorBody),
        (status = 422, description = "Not a loadable projection (`plugin_refused`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn dry_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DryRunReport>, ApiError> {
    if let Err(refusal) = wasm_content_type(&headers, "a candidate is sent") {
        discard(body).await;
        return Err(refusal);
    }
    let bytes = read_bytes(body, state.upload_limit).await?;
    Ok(Json(state.admin()?.dry_run(&name, bytes).await?))
}

/// Refuse a component sent as anything but `Content-Type: application/wasm`; `what` starts the
/// message ("a plugin is uploaded").
fn wasm_content_type(headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.split(';').next().map(str::trim) == Some("application/wasm") {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!("{what} as Content-Type: application/wasm, got {content_type:?}")))
}
