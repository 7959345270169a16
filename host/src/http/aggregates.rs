//! The generic aggregate API: any command of any plugin, state by replay, the event stream.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::body::JsonObject;
use super::error::{ApiError, ErrorBody};
use crate::command::CommandError;

/// What a command appended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandAnswer {
    /// The aggregate's id.
    pub id: String,
    /// The stream's version after the command.
    pub version: u64,
    /// Global position of the last appended event (none when the command appended nothing):
    /// pass it as `position` to a query to read your own write.
    pub position: Option<u64>,
    pub events: Vec<AppendedEvent>,
}

/// One event a command appended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppendedEvent {
    pub event_type: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its position in the global log.
    pub position: u64,
}

/// An aggregate's state, as its plugin renders it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateAnswer {
    pub aggregate_type: String,
    pub id: String,
    pub version: u64,
    /// The plugin's JSON rendering of the state.
    pub state: Value,
}

/// An aggregate's stream of events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsAnswer {
    pub aggregate_type: String,
    pub id: String,
    /// Envelopes: `eventType`, `schemaVersion`, `version`, `position`, `recordedAt`, `data`, ...
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// `POST /api/aggregates/{type}/{id}/commands/{command}`, optional `If-Match: <version>`.
#[utoipa::path(
    post,
    path = "/api/aggregates/{aggregate_type}/{id}/commands/{command}",
    tag = "aggregates",
    params(
        ("aggregate_type" = String, Path, description = "A loaded aggregate plugin's type"),
        ("id" = String, Path, description = "The aggregate's id"),
        ("command" = String, Path, description = "A command the aggregate declares"),
        ("If-Match" = Option<String>, Header, description = "The stream version the caller expects"),
    ),
    request_body(content = Object, description = "The command's data (a JSON object)"),
    responses(
        (status = 200, description = "The command was applied", body = CommandAnswer),
        (status = "default", description = "Refused: see `code`", body = ErrorBody),
    ),
)]
pub async fn command(
    State(state): State<AppState>,
    Path((aggregate_type, id, command)): Path<(String, String, String)>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Json<CommandAnswer>, ApiError> {
    let expected = expected_version(&headers)?;
    let outcome = state.commands.execute(&aggregate_type, &id, &command, body, expected).await?;
    let position = outcome.position();
    let events = outcome
        .events
        .into_iter()
        .map(|(event_type, version, position)| AppendedEvent { event_type, version, position })
        .collect();
    Ok(Json(CommandAnswer { id: outcome.aggregate_id, version: outcome.version, position, events }))
}

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    version: Option<u64>,
}

/// `GET /api/aggregates/{type}/{id}[?version=N]`: the state by replay.
#[utoipa::path(
    get,
    path = "/api/aggregates/{aggregate_type}/{id}",
    tag = "aggregates",
    params(
        ("aggregate_type" = String, Path, description = "A loaded aggregate plugin's type"),
        ("id" = String, Path, description = "The aggregate's id"),
        ("version" = Option<u64>, Query, description = "The state at this stream version"),
    ),
    responses(
        (status = 200, description = "The state by replay", body = StateAnswer),
        (status = "default", description = "Refused: see `code`", body = ErrorBody),
    ),
)]
pub async fn state(
    State(state): State<AppState>,
    Path((aggregate_type, id)): Path<(String, String)>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<StateAnswer>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(format!("version must be a whole number: {e}")))?;
    let Some((version, rendered)) = state.commands.state(&aggregate_type, &id, query.version).await? else {
        return Err(not_found(aggregate_type, id));
    };
    if let Some(asked) = query.version
        && asked != version
    {
        return Err(ApiError::VersionNotFound { aggregate_type, id, version: asked });
    }
    let state_json: Value = serde_json::from_str(&rendered).map_err(|e| {
        ApiError::Command(CommandError::Fault(crate::plugin::PluginFault::Contract {
            plugin: aggregate_type.clone(),
            detail: format!("rendered state is not JSON: {e}"),
        }))
    })?;
    Ok(Json(StateAnswer { aggregate_type, id, version, state: state_json }))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    upcast: bool,
}

/// `GET /api/aggregates/{type}/{id}/events[?upcast=true]`: the stream, the audit log. As
/// stored by default; with `upcast=true`, every event in its current shape (the shape commands,
/// state and projections see).
#[utoipa::path(
    get,
    path = "/api/aggregates/{aggregate_type}/{id}/events",
    tag = "aggregates",
    params(
        ("aggregate_type" = String, Path, description = "A loaded aggregate plugin's type"),
        ("id" = String, Path, description = "The aggregate's id"),
        ("upcast" = Option<bool>, Query, description = "Every event in its current shape"),
    ),
    responses(
        (status = 200, description = "The stream", body = EventsAnswer),
        (status = "default", description = "Refused: see `code`", body = ErrorBody),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    Path((aggregate_type, id)): Path<(String, String)>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsAnswer>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadQuery(format!("upcast must be true or false: {e}")))?;
    let history = if query.upcast {
        state.commands.history_upcast(&aggregate_type, &id, None).await?
    } else {
        state.commands.history(&aggregate_type, &id, None).await?
    };
    if history.is_empty() {
        return Err(not_found(aggregate_type, id));
    }
    let mut events = Vec::with_capacity(history.len());
    for event in &history {
        // Stored data was checked to be JSON on the way in.
        let view = event.envelope().map_err(|e| {
            ApiError::Command(CommandError::Store(crate::event_store::EventStoreError::Backend(e.to_string())))
        })?;
        events.push(serde_json::to_value(view).map_err(|e| ApiError::InvalidJson(e.to_string()))?);
    }
    Ok(Json(EventsAnswer { aggregate_type, id, events }))
}

fn not_found(aggregate_type: String, id: String) -> ApiError {
    ApiError::Command(CommandError::AggregateNotFound { aggregate_type, id })
}

/// `If-Match: 3` or `If-Match: "3"`: the version the caller expects the stream to be at.
pub fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::BadIfMatch("<not text>".into()))?;
    let trimmed = text.trim().trim_matches('"');
    trimmed.parse::<u64>().map(Some).map_err(|_| ApiError::BadIfMatch(text.to_owned()))
}
