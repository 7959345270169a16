//! The command body extractor: bounded, JSON-checked, with errors in the API's shape.

use axum::body::Body;
use axum::extract::{FromRequest, Request};

use super::AppState;
use super::error::ApiError;

/// A request body that is a JSON object, as text (`{}` when the body is empty). Forwarded to the
/// plugin as text, so numbers keep every digit the client sent.
#[derive(Debug)]
pub struct JsonObject(pub String);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        read_json_object(request.into_body(), state.body_limit).await.map(JsonObject)
    }
}

/// Read a body of at most `limit` bytes and check it is one JSON object.
pub async fn read_json_object(body: Body, limit: usize) -> Result<String, ApiError> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .and_then(|inner| inner.downcast_ref::<http_body_util::LengthLimitError>())
            .is_some();
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::InvalidJson(format!("the body could not be read: {e}"))
        }
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ApiError::InvalidJson(format!("the body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Ok("{}".to_owned());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::InvalidJson("the body must be a JSON object".into()));
    }
    Ok(text.to_owned())
}
