//! The reactor routes under `/admin` (behind the admin token), thin edges over the admin
//! service's reactor operations ([`crate::admin::reactors`]): reset a reactor's position, list
//! its outbox, retry a parked message.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;

use super::AppState;
use super::body::read_bytes;
use super::error::ApiError;
use crate::admin::reactors::{OutboxListing, Reset};
use crate::reactor::outbox::{self, Message};

/// Messages a listing returns unless `?limit=` says otherwise.
const DEFAULT_LIMIT: u32 = 100;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    /// The position to continue after (0: the log's beginning).
    #[serde(default)]
    position: u64,
}

/// `POST /admin/reactors/{name}/reset`, optionally `{"position": N}`: the reactor handles every
/// event after N again — an explicit action, the only way a reactor sends again.
#[utoipa::path(
    post,
    path = "/admin/reactors/{name}/reset",
    tag = "admin",
    description = "The reactor handles every event after `position` again: the only way it sends again",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    request_body(content = Option<Object>, content_type = "application/json"),
    responses(
        (status = 200, description = "Where the reactor continues", body = Reset),
        (status = 400, description = "A body that is not `{\"position\": N}`", body = super::error::ErrorBody),
        (status = 404, description = "No reactor of that name (`unknown_reactor`)", body = super::error::ErrorBody),
        (status = 413, description = "A body larger than the limit", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn reset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Reset>, ApiError> {
    let bytes = read_bytes(body, state.body_limit).await?;
    let request: ResetRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ResetRequest::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?
    };
    Ok(Json(state.admin()?.reset_reactor(&name, request.position).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OutboxParams {
    state: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/reactors/{name}/outbox[?state=parked|pending|delivered|dropped&limit=N]` (default parked).
#[utoipa::path(
    get,
    path = "/admin/reactors/{name}/outbox",
    tag = "admin",
    description = "A reactor's outbox messages in one state (default parked)",
    security(("admin_token" = [])),
    params(("name" = String, Path), ("state" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses(
        (status = 200, description = "The counts by state and the messages in the one asked", body = OutboxListing),
        (status = 400, description = "A bad `state` or `limit` (`bad_query`)", body = super::error::ErrorBody),
        (status = 404, description = "No reactor of that name (`unknown_reactor`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn list_outbox(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<OutboxListing>, ApiError> {
    let params: OutboxParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| ApiError::BadQuery(e.to_string()))?;
    let wanted = params.state.unwrap_or_else(|| outbox::PARKED.to_owned());
    if ![outbox::PARKED, outbox::PENDING, outbox::DELIVERED, outbox::DROPPED].contains(&wanted.as_str()) {
        return Err(ApiError::BadQuery(format!("state {wanted:?}: expected parked, pending, delivered or dropped")));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 10_000);
    Ok(Json(state.admin()?.outbox(&name, &wanted, limit).await?))
}

/// `POST /admin/reactors/{name}/outbox/{id}/retry`: a parked message is delivered again.
#[utoipa::path(
    post,
    path = "/admin/reactors/{name}/outbox/{id}/retry",
    tag = "admin",
    description = "A parked message is delivered again",
    security(("admin_token" = [])),
    params(("name" = String, Path), ("id" = String, Path, description = "The message id: reactor:position:index")),
    responses(
        (status = 200, description = "The message, pending again", body = Message),
        (status = 404, description = "No such reactor or message", body = super::error::ErrorBody),
        (status = 409, description = "The message is not parked (`message_not_parked`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn retry_message(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Message>, ApiError> {
    Ok(Json(state.admin()?.retry_message(&name, &id).await?))
}
