//! The dead-letter routes under `/admin` (behind the admin token), thin edges over the admin
//! service's dead-letter operations ([`crate::admin::dead_letters`]): list, retry one letter's
//! sequence or a consumer's, drop (audited with `?by=`), resume. Parameters are parsed here so a
//! bad one is a 400 in the API's error shape.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::admin::dead_letters::{ParkedLetter, Resumed};
use crate::projection::letters::RetryOutcome;
use crate::read_store::{DroppedLetter, Letter};

/// Who a drop is recorded as when the request does not say (`?by=`).
const DEFAULT_DROPPER: &str = "admin api";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    consumer: Option<String>,
    aggregate: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryParams {
    aggregate: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DropParams {
    by: Option<String>,
}

fn params<T: for<'de> Deserialize<'de> + Default>(query: Option<String>) -> Result<T, ApiError> {
    match query {
        None => Ok(T::default()),
        Some(query) => serde_urlencoded::from_str(&query).map_err(|e| ApiError::BadQuery(format!("query: {e}"))),
    }
}

fn letter_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::BadQuery(format!("a dead letter id is a whole number, got {id:?}")))
}

#[derive(Serialize)]
pub struct LetterList {
    pub letters: Vec<ParkedLetter>,
    pub dropped: Vec<DroppedLetter>,
}

/// `GET /admin/dead-letters?consumer=&aggregate=`.
#[utoipa::path(
    get,
    path = "/admin/dead-letters",
    tag = "admin",
    description = "The parked and dropped dead letters",
    security(("admin_token" = [])),
    params(("consumer" = Option<String>, Query), ("aggregate" = Option<String>, Query)),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<LetterList>, ApiError> {
    let ListParams { consumer, aggregate } = params(query)?;
    let admin = state.admin()?;
    let letters = admin.dead_letters(consumer.as_deref(), aggregate.as_deref()).await?;
    let mut dropped = admin.dropped_letters(consumer.as_deref()).await?;
    if let Some(aggregate) = &aggregate {
        dropped.retain(|d| &d.aggregate_id == aggregate);
    }
    Ok(Json(LetterList { letters, dropped }))
}

/// `POST /admin/dead-letters/{id}/retry`.
#[utoipa::path(
    post,
    path = "/admin/dead-letters/{id}/retry",
    tag = "admin",
    description = "Retry a letter and the events behind it",
    security(("admin_token" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<RetryOutcome>, ApiError> {
    Ok(Json(state.admin()?.retry_letter(letter_id(&id)?).await?))
}

/// `POST /admin/consumers/{name}/retry`, optionally `?aggregate=ID`.
#[utoipa::path(
    post,
    path = "/admin/consumers/{name}/retry",
    tag = "admin",
    description = "Retry a consumer's letters",
    security(("admin_token" = [])),
    params(("name" = String, Path), ("aggregate" = Option<String>, Query)),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn retry_consumer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<RetryOutcome>, ApiError> {
    let RetryParams { aggregate } = params(query)?;
    Ok(Json(state.admin()?.retry_consumer(&name, aggregate.as_deref()).await?))
}

#[derive(Serialize)]
pub struct Dropped {
    pub dropped: DroppedLetter,
    /// The events that were held back behind it and are now applied.
    pub applied: Vec<u64>,
    /// The held-back event that failed and is now parked, if one did.
    pub failed: Option<Letter>,
}

/// `DELETE /admin/dead-letters/{id}`, optionally `?by=NAME` for the audit.
#[utoipa::path(
    delete,
    path = "/admin/dead-letters/{id}",
    tag = "admin",
    description = "Drop a letter (recorded)",
    security(("admin_token" = [])),
    params(("id" = String, Path), ("by" = Option<String>, Query)),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn drop_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Dropped>, ApiError> {
    let DropParams { by } = params(query)?;
    let by = by.filter(|b| !b.trim().is_empty()).unwrap_or_else(|| DEFAULT_DROPPER.to_owned());
    let (dropped, outcome) = state.admin()?.drop_letter(letter_id(&id)?, &by).await?;
    Ok(Json(Dropped { dropped, applied: outcome.applied, failed: outcome.failed }))
}

/// `POST /admin/consumers/{name}/resume`.
#[utoipa::path(
    post,
    path = "/admin/consumers/{name}/resume",
    tag = "admin",
    description = "Resume a consumer its dead letters paused",
    security(("admin_token" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Done", body = Object),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn resume(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Resumed>, ApiError> {
    Ok(Json(state.admin()?.resume_consumer(&name)?))
}
