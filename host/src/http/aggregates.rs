//! The generic aggregate API: any command of any plugin, state by replay, the event stream.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::JsonObject;
use super::error::ApiError;
use crate::command::CommandError;

/// `POST /api/aggregates/{type}/{id}/commands/{command}`, optional `If-Match: <version>`.
pub async fn command(
    State(state): State<AppState>,
    Path((aggregate_type, id, command)): Path<(String, String, String)>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let expected = expected_version(&headers)?;
    let outcome = state.commands.execute(&aggregate_type, &id, &command, body, expected).await?;
    let events: Vec<Value> = outcome
        .events
        .iter()
        .map(|(event_type, version, position)| json!({ "eventType": event_type, "version": version, "position": position }))
        .collect();
    Ok(Json(json!({
        "id": outcome.aggregate_id,
        "version": outcome.version,
        "position": outcome.position(),
        "events": events,
    })))
}

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    version: Option<u64>,
}

/// `GET /api/aggregates/{type}/{id}[?version=N]`: the state by replay.
pub async fn state(
    State(state): State<AppState>,
    Path((aggregate_type, id)): Path<(String, String)>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "aggregateType": aggregate_type, "id": id, "version": version, "state": state_json })))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    upcast: bool,
}

/// `GET /api/aggregates/{type}/{id}/events[?upcast=true]`: the stream, the audit log. As
/// stored by default; with `upcast=true`, every event in its current shape (the shape commands,
/// state and projections see).
pub async fn events(
    State(state): State<AppState>,
    Path((aggregate_type, id)): Path<(String, String)>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "aggregateType": aggregate_type, "id": id, "events": events })))
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
