//! The `/admin` routes a watcher polls (behind the admin token): the global log's events after
//! a position, as a long poll (`wait_ms`), and a projection's rebuild progress. The dashboard's
//! live events and rebuild bar, and `sluice tail --url` and `sluice rebuild --url`, read these.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use crate::admin::rebuilds::RebuildProgress;
use crate::admin::tail::{MAX_EVENTS, MAX_WAIT};

/// How many events a read answers when the request does not say.
const DEFAULT_LIMIT: u32 = 100;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    after: Option<u64>,
    limit: Option<u32>,
    wait_ms: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// Event envelopes in log order (as `/api/aggregates/…/events` answers them).
    pub events: Vec<Value>,
    /// The log's head when the page was read.
    pub head: u64,
    /// The position to ask after next time (the last event's, else `after`).
    pub next_after: u64,
}

/// `GET /admin/events?after=N&limit=M&wait_ms=W`: up to `limit` (1 to 1000, default 100) events
/// after position `after` (default 0); with none yet, waits up to `wait_ms` (at most 25 000)
/// for the first.
#[utoipa::path(
    get,
    path = "/admin/events",
    operation_id = "log_events",
    tag = "admin",
    description = "Up to `limit` (1 to 1000, default 100) events of the global log after position `after` (default 0); with none yet, waits up to `wait_ms` (at most 25000) for the first",
    security(("admin_token" = [])),
    params(("after" = Option<u64>, Query), ("limit" = Option<u32>, Query), ("wait_ms" = Option<u64>, Query)),
    responses(
        (status = 200, description = "The page of events", body = EventPage),
        (status = 400, description = "A bad `after`, `limit` or `wait_ms` (`bad_query`)", body = super::error::ErrorBody),
        (status = 503, description = "The event store cannot be read", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn events(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<EventPage>, ApiError> {
    let EventsParams { after, limit, wait_ms } = match query {
        None => EventsParams::default(),
        Some(query) => serde_urlencoded::from_str(&query).map_err(|e| ApiError::BadQuery(format!("query: {e}")))?,
    };
    let after = after.unwrap_or(0);
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(ApiError::BadQuery(format!("limit must be 1 to {MAX_EVENTS}, got {limit}")));
    }
    let wait = Duration::from_millis(wait_ms.unwrap_or(0));
    if wait > MAX_WAIT {
        return Err(ApiError::BadQuery(format!(
            "wait_ms must be at most {}, got {}",
            MAX_WAIT.as_millis(),
            wait.as_millis()
        )));
    }
    let (stored, head) = state.admin()?.events_after(after, limit, wait).await?;
    let next_after = stored.last().map_or(after, |e| e.global_position);
    let mut events = Vec::with_capacity(stored.len());
    for event in &stored {
        // The store checks data is JSON on append; an event that is not anyway shows as null.
        let envelope = event.envelope().ok().and_then(|e| serde_json::to_value(e).ok());
        events.push(envelope.unwrap_or(Value::Null));
    }
    Ok(Json(EventPage { events, head, next_after }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RebuildState {
    pub projection: String,
    /// The latest rebuild since the host started; none if it was not rebuilt.
    pub rebuild: Option<RebuildProgress>,
}

/// `GET /admin/projections/{name}/rebuild`: how far its running (or last) rebuild has come.
#[utoipa::path(
    get,
    path = "/admin/projections/{name}/rebuild",
    tag = "admin",
    description = "How far the running (or latest) rebuild of a projection has come",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The latest rebuild, if any", body = RebuildState),
        (status = 404, description = "No projection of that name (`unknown_projection`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn rebuild_progress(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RebuildState>, ApiError> {
    let rebuild = state.admin()?.rebuild_progress(&name)?;
    Ok(Json(RebuildState { projection: name, rebuild }))
}
