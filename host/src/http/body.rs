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

/// How much of an oversized body is still read (and dropped) before the 413 goes out. A client
/// that is still writing when the server closes gets a broken pipe instead of the answer; reading
/// the rest of a moderately large body lets it see why it was refused. Past this, the connection
/// is simply closed.
const DRAIN_LIMIT: usize = 16 << 20;

/// Read a body of at most `limit` bytes and check it is one JSON object whose every key, string
/// and number a read store can hold ([`super::input::check_body`]).
pub async fn read_json_object(body: Body, limit: usize) -> Result<String, ApiError> {
    let bytes = read_bytes(body, limit).await?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ApiError::InvalidJson(format!("the body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Ok("{}".to_owned());
    }
    let value = super::input::check_body(text)?;
    if !value.is_object() {
        return Err(ApiError::InvalidJson("the body must be a JSON object".into()));
    }
    Ok(text.to_owned())
}

/// Read a body of at most `limit` bytes; a larger one is drained (up to a point) and refused
/// with a 413.
pub async fn read_bytes(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::InvalidJson(format!("the body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        bytes.extend_from_slice(&data);
    }
    if seen > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(bytes)
}

/// Read a body the handler will not use and drop it (up to [`DRAIN_LIMIT`]), so a client still
/// sending it (an upload refused before it was read) sees the answer instead of a reset.
pub async fn discard(body: Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen = seen.saturating_add(frame.data_ref().map_or(0, |d| d.len()));
        if seen > DRAIN_LIMIT {
            return;
        }
    }
}
