//! The guard in front of the `/admin` routes: a request passes only with
//! `Authorization: Bearer <admin token>`. With no admin token configured the admin API is off and
//! every request is refused with 403, saying how to turn it on; a missing, malformed or wrong
//! credential is refused with 401 and a `WWW-Authenticate` challenge, saying which it was. Bodies
//! have the API's error shape, `{"message": ..., "code": ...}`.
//!
//! The token is compared in constant time, and as sha256 digests of both sides, so neither the
//! content nor the length of the configured token leaks through response timing. Only the digest
//! is kept.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ErrorBody;

/// The challenge sent with every 401.
const CHALLENGE: &str = r#"Bearer realm="sluice""#;

/// The configured admin token, or its absence (the admin API is then disabled).
#[derive(Clone, Default)]
pub struct AdminToken {
    digest: Option<[u8; 32]>,
}

impl AdminToken {
    /// The guard for `token`. An empty token counts as none: it would let anyone in who sends an
    /// empty bearer credential.
    pub fn new(token: Option<&str>) -> Self {
        AdminToken { digest: token.filter(|token| !token.is_empty()).map(digest) }
    }

    /// No token: the admin API is disabled.
    pub fn disabled() -> Self {
        AdminToken::default()
    }

    /// Whether a token is configured.
    pub fn is_enabled(&self) -> bool {
        self.digest.is_some()
    }

    /// Whether `presented` is the token, compared in constant time.
    fn admits(&self, presented: &str) -> bool {
        self.digest.is_some_and(|expected| bool::from(digest(presented).ct_eq(&expected)))
    }
}

impl From<Option<Arc<str>>> for AdminToken {
    fn from(token: Option<Arc<str>>) -> Self {
        AdminToken::new(token.as_deref())
    }
}

impl fmt::Debug for AdminToken {
    /// Never shows the token or its digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_enabled() { "AdminToken(set)" } else { "AdminToken(none)" })
    }
}

/// Puts the guard in front of every route of `router`, its fallback included, so even a 404 is
/// only answered to the admin.
pub fn protect<S>(router: Router<S>, token: AdminToken) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(from_fn_with_state(token, require_admin))
}

/// The middleware: passes the request on only with the right bearer token. Use it with
/// [`axum::middleware::from_fn_with_state`], or through [`protect`].
pub async fn require_admin(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    match check(&token, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            super::body::discard(request.into_body()).await;
            denied.into_response()
        }
    }
}

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    /// No token is configured.
    Disabled,
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// A bearer token that is not the admin token.
    Wrong,
}

fn check(token: &AdminToken, headers: &HeaderMap) -> Result<(), Denied> {
    if !token.is_enabled() {
        return Err(Denied::Disabled);
    }
    let Some(value) = headers.get(AUTHORIZATION) else { return Err(Denied::Missing) };
    let value = value.to_str().map_err(|_| Denied::NotBearer)?;
    // The scheme is case-insensitive (RFC 9110, section 11.1); the token is not.
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Denied::NotBearer);
    }
    if token.admits(credentials.trim()) {
        Ok(())
    } else {
        tracing::warn!("refused an admin request with a wrong bearer token");
        Err(Denied::Wrong)
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Denied::Disabled => (
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "the admin API is disabled: start the host with --admin-token TOKEN (or SLUICE_ADMIN_TOKEN) to \
                 enable it",
            ),
            Denied::Missing => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin API needs the admin token: send `Authorization: Bearer TOKEN`; this request had no \
                 Authorization header",
            ),
            Denied::NotBearer => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin API takes only a bearer token: send `Authorization: Bearer TOKEN`; this request's \
                 Authorization header is not of that form",
            ),
            Denied::Wrong => (StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token is not the admin token"),
        };
        let body = ErrorBody { message: message.to_owned(), code, expected_version: None, actual_version: None };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
        }
        response
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn admin_router(token: AdminToken) -> Router {
        protect(Router::new().route("/admin/plugins", get(|| async { "the plugins" })), token)
    }

    async fn call(token: AdminToken, authorization: Option<&str>) -> (StatusCode, Option<String>, Vec<u8>) {
        call_path(token, "/admin/plugins", authorization).await
    }

    async fn call_path(
        token: AdminToken,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, Option<String>, Vec<u8>) {
        let mut request = Request::builder().uri(path);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = admin_router(token)
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("the router never fails");
        let status = response.status();
        let challenge = response.headers().get(WWW_AUTHENTICATE).map(|value| value.to_str().expect("ASCII").to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, challenge, body.to_vec())
    }

    fn json(body: &[u8]) -> Value {
        serde_json::from_slice(body).expect("a JSON body")
    }

    fn token() -> AdminToken {
        AdminToken::new(Some("s3cret-admin-token"))
    }

    #[tokio::test]
    async fn without_a_configured_token_the_admin_api_is_disabled() {
        for disabled in
            [AdminToken::disabled(), AdminToken::new(None), AdminToken::new(Some("")), AdminToken::from(None)]
        {
            let (status, challenge, body) = call(disabled, Some("Bearer anything")).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(challenge, None);
            let body = json(&body);
            assert_eq!(body["code"], "admin_disabled");
            assert_eq!(
                body["message"],
                "the admin API is disabled: start the host with --admin-token TOKEN (or SLUICE_ADMIN_TOKEN) to \
                 enable it"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_header_is_unauthorized_and_says_so() {
        let (status, challenge, body) = call(token(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="sluice""#));
        let body = json(&body);
        assert_eq!(body["code"], "unauthorized");
        assert!(body["message"].as_str().expect("message").contains("no Authorization header"), "{body}");
    }

    #[tokio::test]
    async fn a_wrong_token_is_unauthorized_and_says_so() {
        for wrong in
            ["Bearer s3cret-admin-tokeN", "Bearer s3cret-admin-token-and-more", "Bearer s3cret", "Bearer", "Bearer  "]
        {
            let (status, challenge, body) = call(token(), Some(wrong)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
            assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="sluice""#));
            let body = json(&body);
            assert_eq!(body["code"], "unauthorized");
            assert_eq!(body["message"], "the bearer token is not the admin token", "{wrong:?}");
        }
    }

    #[tokio::test]
    async fn another_scheme_is_unauthorized_and_says_so() {
        for other in ["Basic YWRtaW46czNjcmV0", "s3cret-admin-token", "Token s3cret-admin-token"] {
            let (status, challenge, body) = call(token(), Some(other)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{other:?}");
            assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="sluice""#));
            let body = json(&body);
            assert_eq!(body["code"], "unauthorized");
            assert!(body["message"].as_str().expect("message").contains("only a bearer token"), "{body}");
        }
    }

    #[tokio::test]
    async fn the_right_token_passes() {
        for right in ["Bearer s3cret-admin-token", "bearer s3cret-admin-token", "BEARER  s3cret-admin-token "] {
            let (status, challenge, body) = call(token(), Some(right)).await;
            assert_eq!(status, StatusCode::OK, "{right:?}");
            assert_eq!(challenge, None);
            assert_eq!(body, b"the plugins");
        }
        let from_arc = AdminToken::from(Some(Arc::<str>::from("s3cret-admin-token")));
        assert_eq!(call(from_arc, Some("Bearer s3cret-admin-token")).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_admin_paths_are_guarded_too() {
        assert_eq!(call_path(token(), "/admin/nothing-here", None).await.0, StatusCode::UNAUTHORIZED);
        let (status, _, _) = call_path(token(), "/admin/nothing-here", Some("Bearer s3cret-admin-token")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", token());
        assert_eq!(shown, "AdminToken(set)");
        assert_eq!(format!("{:?}", AdminToken::disabled()), "AdminToken(none)");
    }
}
