//! The routes plugins declare (e.g. the seed's `/api/v1/...`), matched at request time against
//! the registry's route table: commands, queries, and the shared rebuild route.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::aggregates::expected_version;
use super::body::read_json_object;
use super::error::ApiError;
use super::projections::{min_position, rebuild_all, run_query};
use crate::plugin::RouteTarget;
use crate::plugin::{HttpMethod, IdSource};

/// The fallback handler: whatever a plugin route leads to.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route_not_found = || ApiError::RouteNotFound { method: method.to_string(), path: path.clone() };
    let found = HttpMethod::from_http(&method)
        .and_then(|m| state.commands.registry().match_route(m, &path))
        .ok_or_else(route_not_found)?;
    match found.target {
        RouteTarget::Command { aggregate_type, route } => {
            let expected = expected_version(request.headers())?;
            let body = read_json_object(request.into_body(), state.body_limit).await?;
            let id = match &route.id {
                IdSource::NewUuid => uuid::Uuid::new_v4().to_string(),
                IdSource::PathParam(name) => {
                    found.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).ok_or_else(route_not_found)?
                }
            };
            let outcome = state.commands.execute(&aggregate_type, &id, &route.command, body, expected).await?;
            let status = StatusCode::from_u16(route.success_status).unwrap_or(StatusCode::OK);
            let body = json!({
                "message": route.success_message,
                "id": outcome.aggregate_id,
                "version": outcome.version,
                "position": outcome.position(),
            });
            Ok((status, Json(body)).into_response())
        }
        RouteTarget::Query { projection, route } => {
            let position = min_position(request.headers())?;
            let mut params = found.params;
            if let Some(query) = request.uri().query() {
                let extra: Vec<(String, String)> = serde_urlencoded::from_str(query)
                    .map_err(|e| ApiError::BadQuery(format!("malformed query string: {e}")))?;
                params.extend(extra);
            }
            run_query(&state, &projection, &route.query, params, position).await
        }
        RouteTarget::Rebuild(route) => {
            let events = rebuild_all(&state).await?;
            let status = StatusCode::from_u16(route.success_status).unwrap_or(StatusCode::OK);
            Ok((status, Json(json!({ "message": route.success_message, "events": events }))).into_response())
        }
    }
}
