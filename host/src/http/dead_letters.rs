//! The dead-letter routes under `/admin` (behind the admin token), thin edges over the admin
//! service's dead-letter operations ([`crate::admin::dead_letters`]): list, retry one letter's
//! sequence or a consumer's, drop (audited with `?by=`), resume. Parameters are parsed here so a
//! bad one is a 400 in the API's error shape.
//!
//! Two kinds of letters share the list, retry and drop routes: an event a consumer could not
//! apply (`kind: event`, a numeric id) and a reactor's message whose delivery retries ran out
//! (`kind: delivery`, id `delivery:<message id>`, [`crate::admin::delivery_letters`]).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::admin::dead_letters::{AggregateFilter, ParkedLetter, Resumed};
use crate::admin::delivery_letters::{self, DeliveryLetter};
use crate::projection::letters::RetryOutcome;
use crate::read_store::{DroppedLetter, Letter};

/// Who a drop is recorded as when the request does not say (`?by=`).
const DEFAULT_DROPPER: &str = "admin api";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    consumer: Option<String>,
    aggregate: Option<String>,
    #[serde(rename = "aggregateType")]
    aggregate_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryParams {
    aggregate: Option<String>,
    #[serde(rename = "aggregateType")]
    aggregate_type: Option<String>,
}

/// The aggregate a query names, by id and type.
fn aggregate_filter<'a>(aggregate: &'a Option<String>, aggregate_type: &'a Option<String>) -> AggregateFilter<'a> {
    AggregateFilter { aggregate_type: aggregate_type.as_deref(), aggregate_id: aggregate.as_deref() }
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

/// Which letter an id names: an event letter's row, or a parked delivery.
enum LetterId<'a> {
    Event(i64),
    Delivery(&'a str),
}

fn letter_id(id: &str) -> Result<LetterId<'_>, ApiError> {
    if id.starts_with(delivery_letters::PREFIX) {
        return Ok(LetterId::Delivery(id));
    }
    id.parse().map(LetterId::Event).map_err(|_| {
        ApiError::BadQuery(format!(
            "a dead letter id is a whole number (an event letter) or delivery:<message id>, got {id:?}"
        ))
    })
}

/// The answer of `GET /admin/dead-letters`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LetterList {
    /// Parked event letters (`kind: event`), each with the events held back behind it.
    pub letters: Vec<ParkedLetter>,
    /// Parked deliveries of the reactors (`kind: delivery`).
    pub deliveries: Vec<DeliveryLetter>,
    /// Dropped event letters: who dropped which event, when.
    pub dropped: Vec<DroppedLetter>,
    /// Dropped deliveries, with who dropped them and when.
    pub dropped_deliveries: Vec<DeliveryLetter>,
}

/// `GET /admin/dead-letters?consumer=&aggregate=`.
#[utoipa::path(
    get,
    path = "/admin/dead-letters",
    tag = "admin",
    description = "The parked and dropped dead letters: events consumers could not apply, and reactors' messages whose delivery retries ran out",
    security(("admin_token" = [])),
    params(
        ("consumer" = Option<String>, Query, description = "A projection or reactor"),
        ("aggregate" = Option<String>, Query, description = "An aggregate id; a delivery matches it by its key"),
        ("aggregateType" = Option<String>, Query, description = "An aggregate type (event letters only; deliveries have none)"),
    ),
    responses(
        (status = 200, description = "Done", body = LetterList),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<LetterList>, ApiError> {
    let ListParams { consumer, aggregate, aggregate_type } = params(query)?;
    let admin = state.admin()?;
    let filter = aggregate_filter(&aggregate, &aggregate_type);
    let letters = admin.dead_letters(consumer.as_deref(), filter).await?;
    let dropped = admin.dropped_letters(consumer.as_deref(), filter).await?;
    let mut deliveries = admin.delivery_letters(consumer.as_deref()).await?;
    let mut dropped_deliveries = admin.dropped_deliveries(consumer.as_deref()).await?;
    if let Some(aggregate) = &aggregate {
        deliveries.retain(|d| &d.key == aggregate);
        dropped_deliveries.retain(|d| &d.key == aggregate);
    }
    if aggregate_type.is_some() {
        // A delivery belongs to no aggregate type.
        deliveries.clear();
        dropped_deliveries.clear();
    }
    Ok(Json(LetterList { letters, deliveries, dropped, dropped_deliveries }))
}

/// `POST /admin/dead-letters/{id}/retry`.
#[utoipa::path(
    post,
    path = "/admin/dead-letters/{id}/retry",
    tag = "admin",
    description = "Retry an event letter and the events behind it, or send a parked delivery again (the same message id; its key's later messages follow)",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "An event letter's number, or delivery:<message id>")),
    responses(
        (status = 200, description = "What the retry did: the applied positions and the letter that failed again, or the delivery now pending", body = Retried),
        (status = 400, description = "Not a letter id (`bad_query`)", body = super::error::ErrorBody),
        (status = 404, description = "No such letter (`unknown_dead_letter`)", body = super::error::ErrorBody),
        (status = 409, description = "The letter is not parked (`dead_letter_not_parked`, `message_not_parked`)", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Retried>, ApiError> {
    let admin = state.admin()?;
    Ok(Json(match letter_id(&id)? {
        LetterId::Event(id) => Retried::Event(admin.retry_letter(id).await?),
        LetterId::Delivery(id) => Retried::Delivery(admin.retry_delivery(id).await?),
    }))
}

/// What a retry did: an event letter's outcome, or the delivery letter now pending.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Retried {
    Event(RetryOutcome),
    Delivery(DeliveryLetter),
}

/// `POST /admin/consumers/{name}/retry`, optionally `?aggregate=ID` and `&aggregateType=TYPE`.
#[utoipa::path(
    post,
    path = "/admin/consumers/{name}/retry",
    tag = "admin",
    description = "Retry a consumer's letters",
    security(("admin_token" = [])),
    params(
        ("name" = String, Path),
        ("aggregate" = Option<String>, Query, description = "Only this aggregate id's sequence (every type's stream of that id unless aggregateType says)"),
        ("aggregateType" = Option<String>, Query, description = "Only aggregates of this type"),
    ),
    responses(
        (status = 200, description = "The applied positions and the letter that failed again", body = RetryOutcome),
        (status = 400, description = "A bad query (`bad_query`)", body = super::error::ErrorBody),
        (status = 404, description = "No consumer of that name", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn retry_consumer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<RetryOutcome>, ApiError> {
    let RetryParams { aggregate, aggregate_type } = params(query)?;
    Ok(Json(state.admin()?.retry_consumer(&name, aggregate_filter(&aggregate, &aggregate_type)).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
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
    description = "Drop a letter (recorded with who and when): an event is skipped for its consumer, a parked delivery is never sent",
    security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "An event letter's number, or delivery:<message id>"),
        ("by" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "The dropped letter (with who and when) and what it released", body = DropAnswer),
        (status = 400, description = "Not a letter id, or a bad query (`bad_query`)", body = super::error::ErrorBody),
        (status = 404, description = "No such letter (`unknown_dead_letter`)", body = super::error::ErrorBody),
        (status = 409, description = "The letter is not parked", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn drop_letter(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<DropAnswer>, ApiError> {
    let DropParams { by } = params(query)?;
    let by = by.filter(|b| !b.trim().is_empty()).unwrap_or_else(|| DEFAULT_DROPPER.to_owned());
    let admin = state.admin()?;
    Ok(Json(match letter_id(&id)? {
        LetterId::Event(id) => {
            let (dropped, outcome) = admin.drop_letter(id, &by).await?;
            DropAnswer::Event(Dropped { dropped, applied: outcome.applied, failed: outcome.failed })
        }
        LetterId::Delivery(id) => DropAnswer::Delivery { dropped: admin.drop_delivery(id, &by).await? },
    }))
}

/// What a drop did, by the kind of letter.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DropAnswer {
    Event(Dropped),
    /// The delivery letter, now `dropped`, with who and when.
    Delivery {
        dropped: DeliveryLetter,
    },
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
        (status = 200, description = "Whether it was paused", body = Resumed),
        (status = 404, description = "No consumer of that name", body = super::error::ErrorBody),
        (status = "default", description = "Refused: see `code`", body = super::error::ErrorBody),
    ),
)]
pub async fn resume(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Resumed>, ApiError> {
    Ok(Json(state.admin()?.resume_consumer(&name).await?))
}
