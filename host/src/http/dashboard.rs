//! The operator's dashboard at `/`: one HTML page, its script and its style sheet, compiled into
//! the binary (`include_str!`), no framework and nothing fetched from elsewhere — the hosts it
//! runs on may have no internet. The page itself is public; everything it shows or does goes
//! through the `/admin` routes with the admin token the operator types in (kept in the tab's
//! `sessionStorage`), so serving it gives nothing away.
//!
//! The assets live beside this file in `dashboard/` and are served under `/dashboard/…`, a
//! prefix reserved for the host (plugins cannot declare routes there).

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// Same-origin everything: no inline script, no outside source, the API on this host only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes: `/`, `/dashboard/app.js`, `/dashboard/style.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/dashboard/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/dashboard/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, POLICY),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // The assets change with the binary: a browser asks again each time.
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_their_types() {
        for (path, content_type, needle) in [
            ("/", "text/html", "<script src=\"/dashboard/app.js\""),
            ("/dashboard/app.js", "text/javascript", "sessionStorage"),
            ("/dashboard/style.css", "text/css", "font-family"),
        ] {
            let request = Request::builder().uri(path).body(Body::empty()).expect("request");
            let response = routes::<()>().oneshot(request).await.expect("the router never fails");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let served = response.headers()[CONTENT_TYPE].to_str().expect("ASCII").to_owned();
            assert!(served.starts_with(content_type), "{path}: {served}");
            assert!(response.headers().contains_key(CONTENT_SECURITY_POLICY), "{path}");
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
            assert!(String::from_utf8_lossy(&body).contains(needle), "{path} lacks {needle:?}");
        }
    }

    #[test]
    fn the_page_reaches_for_nothing_outside_the_host() {
        for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("style.css", STYLE_CSS)] {
            // The SVG namespace is a name, not an address anything is fetched from.
            let text = text.replace("\"http://www.w3.org/2000/svg\"", "");
            for outside in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(outside), "{name} refers to {outside}");
            }
        }
    }
}
