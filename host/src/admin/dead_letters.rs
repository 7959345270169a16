//! The admin service's dead-letter operations, which the `/admin` routes and the CLI both call:
//! list a consumer's parked letters with the events held back behind each, retry one letter's
//! sequence or all of a consumer's, drop a letter (audited), and resume a consumer its letters
//! paused. The work itself is the projection runner's ([`crate::projection::letters`]); this
//! layer finds the letter, the consumer and says who is at fault.

use serde::{Deserialize, Serialize};

use super::{Admin, AdminError};
use crate::projection::letters::RetryOutcome;
use crate::read_store::{DroppedLetter, Letter, LetterState, ReadStore, ReadStoreError};

/// A parked letter and the events of its aggregate held back behind it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParkedLetter {
    /// Always `event` (a parked outbox message is a `delivery` letter,
    /// [`super::delivery_letters::DeliveryLetter`]).
    #[serde(default = "event_kind")]
    pub kind: String,
    #[serde(flatten)]
    pub letter: Letter,
    /// Later events of the same aggregate, in position order.
    pub blocked_behind: Vec<BlockedEvent>,
}

fn event_kind() -> String {
    "event".into()
}

/// An event held back behind a parked letter.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockedEvent {
    pub id: i64,
    pub position: u64,
    pub event_type: String,
    pub schema_version: u32,
}

/// What resuming a consumer found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    pub consumer: String,
    /// It was paused (false: it was running, nothing changed).
    pub was_paused: bool,
}

/// Which aggregates' letters: an id, and the aggregate type when given (streams of different
/// types may share an id).
#[derive(Debug, Clone, Copy, Default)]
pub struct AggregateFilter<'a> {
    pub aggregate_type: Option<&'a str>,
    pub aggregate_id: Option<&'a str>,
}

impl AggregateFilter<'_> {
    fn admits(&self, aggregate_type: &str, aggregate_id: &str) -> bool {
        self.aggregate_type.is_none_or(|t| t == aggregate_type) && self.aggregate_id.is_none_or(|i| i == aggregate_id)
    }
}

/// The parked letters in `store` (of one consumer and one aggregate when given), oldest first,
/// each with the events held back behind it: the listing of [`Admin::dead_letters`], which the
/// CLI also reads from a stopped host's read store.
pub async fn parked_letters(
    store: &ReadStore,
    consumer: Option<&str>,
    aggregate: AggregateFilter<'_>,
) -> Result<Vec<ParkedLetter>, ReadStoreError> {
    let mut letters =
        store.letters(consumer, aggregate.aggregate_id, &[LetterState::Parked, LetterState::Blocked]).await?;
    letters.retain(|l| aggregate.admits(&l.aggregate_type, &l.aggregate_id));
    let (parked, blocked): (Vec<Letter>, Vec<Letter>) =
        letters.into_iter().partition(|l| l.state == LetterState::Parked);
    Ok(parked
        .into_iter()
        .map(|letter| {
            let blocked_behind = blocked
                .iter()
                .filter(|b| {
                    b.consumer == letter.consumer
                        && b.aggregate_type == letter.aggregate_type
                        && b.aggregate_id == letter.aggregate_id
                        && b.position > letter.position
                })
                .map(|b| BlockedEvent {
                    id: b.id,
                    position: b.position,
                    event_type: b.event_type.clone(),
                    schema_version: b.schema_version,
                })
                .collect();
            ParkedLetter { kind: event_kind(), letter, blocked_behind }
        })
        .collect())
}

impl Admin {
    /// Parked letters, of one consumer and one aggregate when given, oldest first, each with
    /// the events held back behind it.
    pub async fn dead_letters(
        &self,
        consumer: Option<&str>,
        aggregate: AggregateFilter<'_>,
    ) -> Result<Vec<ParkedLetter>, AdminError> {
        Ok(parked_letters(&self.parts().read_store, consumer, aggregate)
            .await
            .map_err(crate::projection::ProjectionError::from)?)
    }

    /// Dropped letters of `consumer` (all when `None`) and of one aggregate when given, oldest
    /// first.
    pub async fn dropped_letters(
        &self,
        consumer: Option<&str>,
        aggregate: AggregateFilter<'_>,
    ) -> Result<Vec<DroppedLetter>, AdminError> {
        let store = &self.parts().read_store;
        let mut dropped = store.drops(consumer).await.map_err(crate::projection::ProjectionError::from)?;
        dropped.retain(|d| aggregate.admits(&d.aggregate_type, &d.aggregate_id));
        Ok(dropped)
    }

    /// Retry the parked letter `id` and the events held back behind it, head-first, with the
    /// plugin version running now; the first failure stops it.
    pub async fn retry_letter(&self, id: i64) -> Result<RetryOutcome, AdminError> {
        let letter = self.parked_letter(id).await?;
        let projection = self.consumer(&letter.consumer)?;
        Ok(projection.retry_aggregate(Some(&letter.aggregate_type), &letter.aggregate_id).await?)
    }

    /// Retry the parked sequences of `consumer` (only one aggregate's when given: its id, and
    /// its type or else every type's stream of that id; with a type alone, that type's), oldest
    /// first, stopping at the first failure.
    pub async fn retry_consumer(
        &self,
        consumer: &str,
        aggregate: AggregateFilter<'_>,
    ) -> Result<RetryOutcome, AdminError> {
        let projection = self.consumer(consumer)?;
        Ok(match aggregate.aggregate_id {
            Some(aggregate_id) => projection.retry_aggregate(aggregate.aggregate_type, aggregate_id).await?,
            None => projection.retry_all(aggregate.aggregate_type).await?,
        })
    }

    /// Drop the parked letter `id`: its event is skipped for its consumer, the drop is recorded
    /// with `by`, and the events held back behind it are applied in order.
    pub async fn drop_letter(&self, id: i64, by: &str) -> Result<(DroppedLetter, RetryOutcome), AdminError> {
        let letter = self.parked_letter(id).await?;
        let projection = self.consumer(&letter.consumer)?;
        let outcome = projection.drop_letter(&letter, by).await?;
        let dropped = DroppedLetter {
            consumer: letter.consumer,
            position: letter.position,
            aggregate_type: letter.aggregate_type,
            aggregate_id: letter.aggregate_id,
            event_type: letter.event_type,
            reason: letter.reason,
            dropped_by: by.to_owned(),
            dropped_at: crate::read_store::dead_letters::now(),
        };
        Ok((dropped, outcome))
    }

    /// Resume `consumer`, paused by its dead letters (on every host sharing the read store).
    pub async fn resume_consumer(&self, consumer: &str) -> Result<Resumed, AdminError> {
        let projection = self.consumer(consumer)?;
        let was_paused = projection.resume().await?;
        Ok(Resumed { consumer: consumer.to_owned(), was_paused })
    }

    async fn parked_letter(&self, id: i64) -> Result<Letter, AdminError> {
        let store = &self.parts().read_store;
        match store.letter(id).await.map_err(crate::projection::ProjectionError::from)? {
            Some(letter) if letter.state == LetterState::Parked => Ok(letter),
            Some(letter) => Err(AdminError::NotParked { id, state: letter.state }),
            None => Err(AdminError::UnknownLetter(id)),
        }
    }

    fn consumer(&self, name: &str) -> Result<std::sync::Arc<crate::projection::Projection>, AdminError> {
        self.parts().projections.get(name).map_err(|_| AdminError::UnknownPlugin(name.to_owned()))
    }
}
