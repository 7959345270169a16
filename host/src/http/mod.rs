//! The HTTP edge (axum): the generic aggregate API, health, and the routes plugins declare.
//!
//! Plugin routes are not axum routes: they live in the registry's route table and are matched by
//! the fallback handler, so plugins can come and go while the router stays the same.
//!
//! - [`aggregates`]: the `/api/aggregates/…` routes (state, events, commands).
//! - [`plugin_routes`]: the seed-compatible routes of the loaded plugins.
//! - [`error`]: the one error type and its JSON shape.
//! - [`body`]: the bounded JSON body extractor.
//! - [`dead_letters`]: the `/admin` dead-letter routes.
//! - [`input`]: text and numbers no read store can hold, refused before anything runs.
//! - [`dashboard`]: the operator's web page at `/`, from assets compiled into the binary.
//! - [`watch`]: the `/admin` routes a watcher polls (the log's events, a rebuild's progress).
//! - [`openapi`]: `/openapi.json` (the host's routes and the plugins') and the `/docs` page.
//! - [`metrics`]: `/metrics` and the per-route request counts.
//! - [`request_id`]: the `x-request-id` of every request, and its span.

pub mod admin;
pub mod admin_auth;
pub mod aggregates;
pub mod body;
pub mod dashboard;
pub mod dead_letters;
pub mod error;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod plugin_routes;
pub mod projections;
pub mod reactors;
pub mod request_id;
pub mod watch;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::admin::Admin;
use crate::command::CommandService;
use crate::projection::Projections;

pub use crate::config::DEFAULT_BODY_LIMIT;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub commands: CommandService,
    pub projections: Projections,
    /// The admin service (none in benchmarks that wire a router by hand).
    pub admin: Option<Admin>,
    /// The bearer token of `/admin` (none: the admin API is disabled).
    pub admin_token: admin_auth::AdminToken,
    pub body_limit: usize,
    /// Largest plugin upload.
    pub upload_limit: usize,
}

impl AppState {
    /// A state for in-process use without an admin service (the admin API answers 403).
    pub fn without_admin(commands: CommandService, projections: Projections) -> Self {
        Self {
            commands,
            projections,
            admin: None,
            admin_token: admin_auth::AdminToken::disabled(),
            body_limit: DEFAULT_BODY_LIMIT,
            upload_limit: crate::config::DEFAULT_UPLOAD_LIMIT,
        }
    }

    /// The admin service, or why there is none.
    pub fn admin(&self) -> Result<&Admin, error::ApiError> {
        self.admin.as_ref().ok_or(error::ApiError::AdminUnavailable)
    }
}

/// The `/admin` routes, behind the bearer-token guard.
fn admin_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/plugins", get(admin::plugins))
        .route("/plugins/{name}", get(admin::plugin).put(admin::upload).delete(admin::remove))
        .route("/plugins/{name}/dry-run", post(admin::dry_run))
        .route("/plugins/{name}/versions", get(admin::versions))
        .route("/plugins/{name}/versions/{sha256}/activate", post(admin::activate))
        .route("/projections/{name}/rebuild", get(watch::rebuild_progress).post(admin::rebuild))
        .route("/events", get(watch::events))
        .route("/consumers", get(admin::consumers))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/{id}", axum::routing::delete(dead_letters::drop_letter))
        .route("/dead-letters/{id}/retry", post(dead_letters::retry))
        .route("/consumers/{name}/retry", post(dead_letters::retry_consumer))
        .route("/consumers/{name}/resume", post(dead_letters::resume))
        .route("/reactors/{name}/reset", post(reactors::reset))
        .route("/reactors/{name}/outbox", get(reactors::list_outbox))
        .route("/reactors/{name}/outbox/{id}/retry", post(reactors::retry_message))
        .layer(axum::middleware::from_fn_with_state(state.admin_token.clone(), admin_auth::require_admin))
}

/// The host's router; tests and benchmarks call it in-process.
pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/healthz", get(openapi::health))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::document))
        // `validatorUrl: "none"`: Swagger UI would otherwise send the document to
        // validator.swagger.io for a badge whenever the page is reached by a non-local name.
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none")),
        )
        .route("/api/aggregates/{aggregate_type}/{id}", get(aggregates::state))
        .route("/api/aggregates/{aggregate_type}/{id}/events", get(aggregates::events))
        .route("/api/aggregates/{aggregate_type}/{id}/commands/{command}", post(aggregates::command))
        .route("/api/projections/{name}/queries/{query}", get(projections::query))
        .nest("/admin", admin_router(state.clone()))
        .merge(dashboard::routes())
        .fallback(plugin_routes::dispatch)
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            error::ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
        })
        // Bodies are bounded by our own extractor, which answers in the API's error shape.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(input::check_request_target))
        // Per route (so the route's template is known), around everything else.
        .layer(axum::middleware::from_fn(metrics::count_requests))
        .with_state(state);
    request_id::apply(router)
}
