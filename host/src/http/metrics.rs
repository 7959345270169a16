//! `GET /metrics` (Prometheus text) and the middleware that counts every HTTP request by its
//! route template.
//!
//! Counters and histograms are recorded where things happen (see [`crate::telemetry`]); the
//! gauges that describe the present (each consumer's position, lag and state, the log's head)
//! are read when the page is asked for, so they are never stale. The page is public, like a
//! health check: it names plugins and counts, never data (docs/admin.md).

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::telemetry;

/// The route template of a plugin route, set on its response by the dispatcher, so requests to
/// plugin routes are counted by template like the host's own.
#[derive(Debug, Clone)]
pub struct PluginRouteTemplate(pub String);

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "host",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    refresh_gauges(&state).await;
    let mut response = telemetry::render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Set the gauges of the present: the log's head and, per consumer, position, lag and state.
async fn refresh_gauges(state: &AppState) {
    let store = state.commands.store();
    match store.known_head().await {
        Ok(head) => telemetry::log_head(head),
        Err(e) => tracing::warn!("metrics: cannot read the log's head: {e}"),
    }
    let Some(admin) = &state.admin else { return };
    for consumer in admin.consumers().await {
        let position = consumer.position.unwrap_or(0);
        let lag = consumer.lag.unwrap_or(0);
        let lag_time = if lag == 0 { Duration::ZERO } else { age_of_next(state, position).await };
        let state_name = consumer.status.split(':').next().unwrap_or_default().trim();
        telemetry::consumer(&consumer.name, position, lag, lag_time, state_name);
    }
}

/// How long ago the event after `position` was recorded: the age of the oldest event a
/// consumer at `position` has not applied (zero when it cannot be read).
async fn age_of_next(state: &AppState, position: u64) -> Duration {
    let next = match state.commands.store().read_all(position, 1).await {
        Ok(events) => events.into_iter().next(),
        Err(e) => {
            tracing::warn!("metrics: cannot read the event after position {position}: {e}");
            None
        }
    };
    next.and_then(|event| chrono::DateTime::parse_from_rfc3339(&event.recorded_at).ok())
        .and_then(|at| (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).to_std().ok())
        .unwrap_or(Duration::ZERO)
}

/// Count and time every request by method, route template and status. Requests no route
/// matched count under `unmatched`, so a scanner's paths make no new series.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let response = next.run(request).await;
    let route = matched
        .or_else(|| response.extensions().get::<PluginRouteTemplate>().map(|t| t.0.clone()))
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = match method.as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "other",
    };
    telemetry::http_request(method, &route, response.status().as_u16(), started.elapsed());
    response
}
