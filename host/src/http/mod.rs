//! The HTTP edge (axum): the generic aggregate API, health, and the routes plugins declare.
//!
//! Plugin routes are not axum routes: they live in the registry's route table and are matched by
//! the fallback handler, so plugins can come and go while the router stays the same.
//!
//! - [`aggregates`]: the `/api/aggregates/…` routes (state, events, commands).
//! - [`plugin_routes`]: the seed-compatible routes of the loaded plugins.
//! - [`error`]: the one error type and its JSON shape.
//! - [`body`]: the bounded JSON body extractor.

pub mod aggregates;
pub mod body;
pub mod error;
pub mod plugin_routes;
pub mod projections;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde_json::json;

use crate::command::CommandService;
use crate::projection::Projections;

/// Default largest request body.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub commands: CommandService,
    pub projections: Projections,
    pub body_limit: usize,
}

/// The host's router; tests and benchmarks call it in-process.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route("/api/aggregates/{aggregate_type}/{id}", get(aggregates::state))
        .route("/api/aggregates/{aggregate_type}/{id}/events", get(aggregates::events))
        .route("/api/aggregates/{aggregate_type}/{id}/commands/{command}", post(aggregates::command))
        .route("/api/projections/{name}/queries/{query}", get(projections::query))
        .fallback(plugin_routes::dispatch)
        // Bodies are bounded by our own extractor, which answers in the API's error shape.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
