//! Queries and rebuilds: the generic query route, the answers projections choose, and
//! read-your-writes (`position=N` in the query string, or the `Sluice-Position` header).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::plugin::QueryOutcome;

/// Header naming the global position a query must reflect.
pub const POSITION_HEADER: &str = "sluice-position";

/// `GET /api/projections/{name}/queries/{query}?param=value&position=N`.
#[utoipa::path(
    get,
    path = "/api/projections/{name}/queries/{query}",
    tag = "projections",
    params(
        ("name" = String, Path, description = "A loaded projection"),
        ("query" = String, Path, description = "A query the projection declares"),
        ("position" = Option<u64>, Query, description = "Answer only once the projection has applied this global position"),
        ("sluice-position" = Option<u64>, Header, description = "The same as `position`"),
    ),
    responses(
        (status = 200, description = "The projection's answer (JSON it chooses)", body = serde_json::Value),
        (status = 204, description = "Nothing to answer (the projection chose no body)"),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn query(
    State(state): State<AppState>,
    Path((name, query)): Path<(String, String)>,
    Query(mut params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut position = min_position(&headers)?;
    if let Some(index) = params.iter().position(|(k, _)| k == "position") {
        let (_, value) = params.remove(index);
        position = Some(
            value.parse().map_err(|_| ApiError::BadQuery(format!("position must be a whole number, got {value:?}")))?,
        );
    }
    run_query(&state, &name, &query, params, position).await
}

/// The position a request asks to read after, from the `Sluice-Position` header.
pub fn min_position(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(POSITION_HEADER) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default();
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| ApiError::BadQuery(format!("{POSITION_HEADER} must be a whole number, got {text:?}")))
}

/// Run a projection's query and turn its answer into a response.
pub async fn run_query(
    state: &AppState,
    projection: &str,
    query: &str,
    params: Vec<(String, String)>,
    position: Option<u64>,
) -> Result<Response, ApiError> {
    let runner = state.projections.get(projection)?;
    if !runner.plugin().manifest().queries.iter().any(|q| q == query) {
        return Err(ApiError::UnknownQuery { projection: projection.to_owned(), query: query.to_owned() });
    }
    if let Some(wanted) = position
        && wanted > runner.position()
    {
        check_position_exists(state, wanted).await?;
    }
    match runner.query(query, params, position).await? {
        QueryOutcome::Answer { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            if body.is_empty() || status == StatusCode::NO_CONTENT {
                return Ok(status.into_response());
            }
            let mut response = (status, body).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(response)
        }
        QueryOutcome::UnknownQuery(_) => {
            Err(ApiError::UnknownQuery { projection: projection.to_owned(), query: query.to_owned() })
        }
        QueryOutcome::Invalid(message) => Err(ApiError::InvalidQuery(message)),
        QueryOutcome::NotFound(message) => Err(ApiError::QueryNotFound(message)),
        QueryOutcome::Failed(message) => {
            Err(ApiError::QueryFailed(format!("projection {projection}, query {query}: {message}")))
        }
    }
}

/// A position no event has yet is the caller's mistake (400), not a projection that is behind
/// (503 after the bounded wait). A store that cannot tell its head leaves the wait to decide.
async fn check_position_exists(state: &AppState, wanted: u64) -> Result<(), ApiError> {
    let store = state.commands.store();
    // The cheap head settles the usual case; only a position past it asks for the exact one.
    if store.known_head().await.is_ok_and(|known| wanted <= known) {
        return Ok(());
    }
    match store.head_position().await {
        Ok(head) if wanted > head => Err(ApiError::BadQuery(format!(
            "position {wanted} is beyond the last event in the log ({head}): no command has answered it yet"
        ))),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!("cannot read the log's head to check a query's position: {e}");
            Ok(())
        }
    }
}

/// Rebuild every projection in place; the old tables serve until each one switches.
pub async fn rebuild_all(state: &AppState) -> Result<u64, ApiError> {
    let mut events = 0;
    // Reactors never replay: their messages left the host already.
    for projection in state.projections.all().into_iter().filter(|p| p.plugin().replayable()) {
        events += projection.rebuild(None, &|_, _| {}).await?;
        tracing::info!(projection = %projection.name(), "rebuilt");
    }
    Ok(events)
}
