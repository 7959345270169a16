//! The routes plugins declare (e.g. the seed's `/api/v1/...`), matched at request time against
//! the registry's route table.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::aggregates::expected_version;
use super::body::read_json_object;
use super::error::ApiError;
use crate::command::{HttpMethod, IdSource};

/// The fallback handler: run the command a plugin route names.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route_not_found = || ApiError::RouteNotFound { method: method.to_string(), path: path.clone() };
    let found = HttpMethod::from_http(&method)
        .and_then(|m| state.commands.registry().match_route(m, &path))
        .ok_or_else(route_not_found)?;
    let expected = expected_version(request.headers())?;
    let body = read_json_object(request.into_body(), state.body_limit).await?;
    let id = match &found.route.id {
        IdSource::NewUuid => uuid::Uuid::new_v4().to_string(),
        IdSource::PathParam(name) => {
            found.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).ok_or_else(route_not_found)?
        }
    };
    let outcome = state.commands.execute(&found.aggregate_type, &id, &found.route.command, body, expected).await?;
    let status = StatusCode::from_u16(found.route.success_status).unwrap_or(StatusCode::OK);
    let body = json!({
        "message": found.route.success_message,
        "id": outcome.aggregate_id,
        "version": outcome.version,
        "position": outcome.position(),
    });
    Ok((status, Json(body)).into_response())
}
