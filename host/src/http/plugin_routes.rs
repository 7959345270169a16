//! The routes plugins declare (e.g. the seed's `/api/v1/...`), matched at request time against
//! the registry's route table: commands, queries, and the shared rebuild route.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::aggregates::expected_version;
use super::body::read_json_object;
use super::error::ApiError;
use super::metrics::PluginRouteTemplate;
use super::projections::{min_position, rebuild_all, run_query};
use crate::plugin::{HttpMethod, IdSource};
use crate::plugin::{RouteMatch, RouteTarget};

/// The answer of a plugin's command route.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteCommandAnswer {
    /// The route's success message.
    pub message: String,
    /// The aggregate's id (a fresh one for a route that starts a stream).
    pub id: String,
    /// The stream's version after the command.
    pub version: u64,
    /// Global position of the last appended event: what a read-your-writes query waits for.
    pub position: Option<u64>,
}

/// The answer of a rebuild route.
#[derive(Debug, Serialize, ToSchema)]
pub struct RebuildAnswer {
    /// The route's success message.
    pub message: String,
    /// Events replayed, over every projection.
    pub events: u64,
}

/// The fallback handler: whatever a plugin route leads to. The answer carries the route's
/// template for the request metrics.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let found = HttpMethod::from_http(&method)
        .and_then(|m| state.commands.registry().match_route(m, &path))
        .ok_or_else(|| ApiError::RouteNotFound { method: method.to_string(), path: path.clone() })?;
    let template = match &found.target {
        RouteTarget::Command { route, .. } => route.path.clone(),
        RouteTarget::Query { route, .. } => route.path.clone(),
        RouteTarget::Rebuild(route) => route.path.clone(),
    };
    let mut response = run(state, request, found).await.into_response();
    response.extensions_mut().insert(PluginRouteTemplate(template));
    Ok(response)
}

async fn run(state: AppState, request: Request, found: RouteMatch) -> Result<Response, ApiError> {
    let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
    let route_not_found = || ApiError::RouteNotFound { method: method.clone(), path: path.clone() };
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
            let position = outcome.position();
            let body = RouteCommandAnswer {
                message: route.success_message,
                id: outcome.aggregate_id,
                version: outcome.version,
                position,
            };
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
            Ok((status, Json(RebuildAnswer { message: route.success_message, events })).into_response())
        }
    }
}
