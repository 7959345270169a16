//! Every request's id and span: `x-request-id` is kept when the client sends one, generated
//! (a UUID) when it does not, and returned on the answer; each request runs in a `request` span
//! with its method, path and id, so every line logged while it runs (a plugin's faults, the
//! error the edge answers with) can be traced back to it.

use axum::Router;
use axum::extract::Request;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Wrap `router` in the request-id and tracing layers.
pub fn apply(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn span(request: &Request) -> tracing::Span {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}
