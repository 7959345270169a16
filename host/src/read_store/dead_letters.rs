//! Dead letters in the read store, per consumer, next to the consumer's checkpoint so that a
//! letter and the progress past its event commit in one transaction.
//!
//! `sluice_letters` holds one row per (consumer, event position) in one of three states:
//! - `trying`: the event failed in a batch and is being applied alone; the row counts the
//!   attempts, written (and committed) *before* each call, so a call that never returns (a
//!   trap that kills the process, a SIGKILL) still counts, and a crash loop ends parked;
//! - `parked`: the attempts ran out; the event is skipped and holds back its aggregate;
//! - `blocked`: a later event of a parked event's aggregate, held back behind it in order.
//!
//! `sluice_letter_drops` is the audit of dropped letters: who dropped which event and when.
//!
//! `sluice_consumer_pauses` holds the consumers paused by their dead letters, so that a pause
//! outlives the host that paused and every host sharing the read store sees it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::session::read_text;
use super::{Dialect, ReadStore, ReadStoreError};
use crate::event_store::StoredEvent;

/// Where a letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LetterState {
    /// Being applied alone, with its attempts counted.
    Trying,
    /// Out of attempts: skipped, holding back its aggregate.
    Parked,
    /// Held back behind the parked event of its aggregate.
    Blocked,
}

impl LetterState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Trying => "trying",
            Self::Parked => "parked",
            Self::Blocked => "blocked",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "parked" => Self::Parked,
            "blocked" => Self::Blocked,
            _ => Self::Trying,
        }
    }
}

/// One event a consumer could not apply (or holds back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Letter {
    pub id: i64,
    pub consumer: String,
    /// The sha256 of the plugin version that last failed on it (or that held it back).
    pub plugin_sha256: String,
    pub position: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub state: LetterState,
    pub reason: String,
    pub attempts: u32,
    pub first_failed_at: String,
    pub last_failed_at: String,
}

/// A dropped letter: what was skipped for good, by whom and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DroppedLetter {
    pub consumer: String,
    pub position: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub reason: String,
    pub dropped_by: String,
    pub dropped_at: String,
}

/// What recording an attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Attempts recorded, this one included (when `exhausted`, the ones recorded before).
    pub attempts: u32,
    /// The attempts had already run out: nothing was recorded, the event is to be parked.
    pub exhausted: bool,
    /// The last failure recorded, if any.
    pub reason: String,
}

const COLUMNS: &str = "id, consumer, plugin_sha256, position, aggregate_type, aggregate_id, event_type, \
                       schema_version, state, reason, attempts, first_failed_at, last_failed_at";

/// The three tables, in `dialect`. On MariaDB, `VARCHAR(255)` only where a key needs it: what
/// a letter copies from its event (aggregate type and id, event type) and who dropped it are
/// `TEXT`, so no event a consumer fails on is too long to park.
pub(crate) fn ddl(dialect: Dialect) -> Vec<String> {
    let text = if dialect == Dialect::MySql { "VARCHAR(255)" } else { "TEXT" };
    let id = match dialect {
        Dialect::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
        Dialect::Postgres => "id BIGSERIAL PRIMARY KEY",
        Dialect::MySql => "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
    };
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS sluice_letters ({id}, consumer {text} NOT NULL, plugin_sha256 {text} NOT NULL, \
             position BIGINT NOT NULL, aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, \
             event_type TEXT NOT NULL, schema_version BIGINT NOT NULL, state {text} NOT NULL, reason TEXT NOT NULL, \
             attempts BIGINT NOT NULL, first_failed_at {text} NOT NULL, last_failed_at {text} NOT NULL, \
             UNIQUE (consumer, position))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS sluice_letter_drops ({id}, consumer {text} NOT NULL, position BIGINT NOT NULL, \
             aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, event_type TEXT NOT NULL, \
             reason TEXT NOT NULL, dropped_by TEXT NOT NULL, dropped_at {text} NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS sluice_consumer_pauses (consumer {text} NOT NULL PRIMARY KEY, \
             paused_at {text} NOT NULL)"
        ),
    ]
}

/// Now, as the letters record it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Remove a consumer's letter at a position (binds: consumer, position).
pub(super) fn remove_letter_sql(dialect: Dialect) -> String {
    let p = |n| dialect.placeholder(n);
    format!("DELETE FROM sluice_letters WHERE consumer = {} AND position = {}", p(1), p(2))
}

fn position(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn truncated(reason: &str) -> String {
    let mut reason = reason.to_owned();
    if reason.len() > 2000 {
        let mut end = 2000;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

fn letter_from(row: &AnyRow) -> Result<Letter, sqlx::Error> {
    Ok(Letter {
        id: row.try_get(0)?,
        consumer: row.try_get(1)?,
        plugin_sha256: row.try_get(2)?,
        position: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
        aggregate_type: read_text(row, 4)?.unwrap_or_default(),
        aggregate_id: read_text(row, 5)?.unwrap_or_default(),
        event_type: read_text(row, 6)?.unwrap_or_default(),
        schema_version: u32::try_from(row.try_get::<i64, _>(7)?).unwrap_or(0),
        state: LetterState::parse(&row.try_get::<String, _>(8)?),
        reason: read_text(row, 9)?.unwrap_or_default(),
        attempts: u32::try_from(row.try_get::<i64, _>(10)?).unwrap_or(u32::MAX),
        first_failed_at: row.try_get(11)?,
        last_failed_at: row.try_get(12)?,
    })
}

impl ReadStore {
    /// Letters in position order, of one consumer and one aggregate id when given, in `states`.
    pub async fn letters(
        &self,
        consumer: Option<&str>,
        aggregate_id: Option<&str>,
        states: &[LetterState],
    ) -> Result<Vec<Letter>, ReadStoreError> {
        let p = |n| self.dialect.placeholder(n);
        let mut filters = Vec::new();
        let mut binds: Vec<&str> = Vec::new();
        if let Some(consumer) = consumer {
            binds.push(consumer);
            filters.push(format!("consumer = {}", p(binds.len())));
        }
        if let Some(aggregate_id) = aggregate_id {
            binds.push(aggregate_id);
            filters.push(format!("aggregate_id = {}", p(binds.len())));
        }
        let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let mut in_list = Vec::new();
        for name in &names {
            binds.push(name);
            in_list.push(p(binds.len()));
        }
        filters.push(format!("state IN ({})", in_list.join(", ")));
        let sql = format!("SELECT {COLUMNS} FROM sluice_letters WHERE {} ORDER BY position", filters.join(" AND "));
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = query.bind(bind);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(letter_from).collect::<Result<_, _>>()?)
    }

    /// The letter `id`, if there is one.
    pub async fn letter(&self, id: i64) -> Result<Option<Letter>, ReadStoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sluice_letters WHERE id = {}", self.dialect.placeholder(1));
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(letter_from).transpose()?)
    }

    /// How many letters `consumer` has parked.
    pub async fn parked_count(&self, consumer: &str) -> Result<u64, ReadStoreError> {
        let sql = format!(
            "SELECT COUNT(*) FROM sluice_letters WHERE consumer = {} AND state = 'parked'",
            self.dialect.placeholder(1)
        );
        let count: i64 = sqlx::query_scalar(&sql).bind(consumer).fetch_one(&self.pool).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Count an attempt at `event` before the call, in its own committed transaction. When
    /// `limit` attempts are recorded already, nothing changes and the answer says exhausted.
    pub async fn record_attempt(
        &self,
        consumer: &str,
        sha256: &str,
        event: &StoredEvent,
        limit: u32,
    ) -> Result<Attempt, ReadStoreError> {
        let p = |n| self.dialect.placeholder(n);
        let at = position(event.global_position);
        let mut tx = self.pool.begin().await?;
        // The write first: on SQLite the transaction then holds the write lock from its first
        // statement, instead of upgrading a read snapshot another writer may have moved.
        let sql = format!(
            "UPDATE sluice_letters SET attempts = attempts + 1, plugin_sha256 = {} WHERE consumer = {} \
             AND position = {} AND attempts < {}",
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let counted =
            sqlx::query(&sql).bind(sha256).bind(consumer).bind(at).bind(i64::from(limit)).execute(&mut *tx).await?;
        let sql =
            format!("SELECT attempts, reason FROM sluice_letters WHERE consumer = {} AND position = {}", p(1), p(2));
        let found = sqlx::query(&sql).bind(consumer).bind(at).fetch_optional(&mut *tx).await?;
        let attempt = match found {
            Some(row) => Attempt {
                attempts: u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(u32::MAX),
                exhausted: counted.rows_affected() == 0,
                reason: read_text(&row, 1)?.unwrap_or_default(),
            },
            None => {
                let letter = Letter::new(consumer, sha256, event, LetterState::Trying, "the first attempt ran", 1);
                self.insert_letter(&mut tx, &letter, &now()).await?;
                Attempt { attempts: 1, exhausted: false, reason: String::new() }
            }
        };
        tx.commit().await?;
        Ok(attempt)
    }

    /// Whether `consumer` is paused by its dead letters, as the read store remembers it.
    pub async fn stored_pause(&self, consumer: &str) -> Result<bool, ReadStoreError> {
        let sql =
            format!("SELECT COUNT(*) FROM sluice_consumer_pauses WHERE consumer = {}", self.dialect.placeholder(1));
        let count: i64 = sqlx::query_scalar(&sql).bind(consumer).fetch_one(&self.pool).await?;
        Ok(count > 0)
    }

    /// Remember `consumer` as paused by its dead letters, or as running again.
    pub async fn store_pause(&self, consumer: &str, paused: bool) -> Result<(), ReadStoreError> {
        let p = |n| self.dialect.placeholder(n);
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!("DELETE FROM sluice_consumer_pauses WHERE consumer = {}", p(1)))
            .bind(consumer)
            .execute(&mut *tx)
            .await?;
        if paused {
            sqlx::query(&format!(
                "INSERT INTO sluice_consumer_pauses (consumer, paused_at) VALUES ({}, {})",
                p(1),
                p(2)
            ))
            .bind(consumer)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record why the latest attempt at `position` failed.
    pub async fn note_failure(&self, consumer: &str, position_: u64, reason: &str) -> Result<(), ReadStoreError> {
        let p = |n| self.dialect.placeholder(n);
        let sql = format!(
            "UPDATE sluice_letters SET reason = {}, last_failed_at = {} WHERE consumer = {} AND position = {}",
            p(1),
            p(2),
            p(3),
            p(4)
        );
        sqlx::query(&sql)
            .bind(truncated(reason))
            .bind(now())
            .bind(consumer)
            .bind(position(position_))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Write `letter` inside `tx`: a new row, or the row of its position moved to the letter's
    /// state, reason, attempts and plugin (its first failure time stays).
    pub async fn put_letter(&self, tx: &mut sqlx::AnyConnection, letter: &Letter) -> Result<(), ReadStoreError> {
        let p = |n| self.dialect.placeholder(n);
        let now = now();
        let sql = format!(
            "UPDATE sluice_letters SET state = {}, reason = {}, attempts = {}, plugin_sha256 = {}, last_failed_at = {} \
             WHERE consumer = {} AND position = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7)
        );
        let updated = sqlx::query(&sql)
            .bind(letter.state.as_str())
            .bind(truncated(&letter.reason))
            .bind(i64::from(letter.attempts))
            .bind(&letter.plugin_sha256)
            .bind(&now)
            .bind(&letter.consumer)
            .bind(position(letter.position))
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            self.insert_letter(tx, letter, &now).await?;
        }
        Ok(())
    }

    async fn insert_letter(
        &self,
        tx: &mut sqlx::AnyConnection,
        letter: &Letter,
        now: &str,
    ) -> Result<(), ReadStoreError> {
        let placeholders: Vec<String> = (1..=12).map(|n| self.dialect.placeholder(n)).collect();
        let sql = format!(
            "INSERT INTO sluice_letters (consumer, plugin_sha256, position, aggregate_type, aggregate_id, event_type, \
             schema_version, state, reason, attempts, first_failed_at, last_failed_at) VALUES ({})",
            placeholders.join(", ")
        );
        sqlx::query(&sql)
            .bind(&letter.consumer)
            .bind(&letter.plugin_sha256)
            .bind(position(letter.position))
            .bind(&letter.aggregate_type)
            .bind(&letter.aggregate_id)
            .bind(&letter.event_type)
            .bind(i64::from(letter.schema_version))
            .bind(letter.state.as_str())
            .bind(truncated(&letter.reason))
            .bind(i64::from(letter.attempts))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Remove the letter of `consumer` at `position` inside `tx` (its event was applied, or dropped).
    pub async fn remove_letter(
        &self,
        tx: &mut sqlx::AnyConnection,
        consumer: &str,
        position_: u64,
    ) -> Result<(), ReadStoreError> {
        let sql = remove_letter_sql(self.dialect);
        sqlx::query(&sql).bind(consumer).bind(position(position_)).execute(&mut *tx).await?;
        Ok(())
    }

    /// Audit a drop inside `tx`.
    pub async fn record_drop(&self, tx: &mut sqlx::AnyConnection, drop: &DroppedLetter) -> Result<(), ReadStoreError> {
        let placeholders: Vec<String> = (1..=8).map(|n| self.dialect.placeholder(n)).collect();
        let sql = format!(
            "INSERT INTO sluice_letter_drops (consumer, position, aggregate_type, aggregate_id, event_type, reason, \
             dropped_by, dropped_at) VALUES ({})",
            placeholders.join(", ")
        );
        sqlx::query(&sql)
            .bind(&drop.consumer)
            .bind(position(drop.position))
            .bind(&drop.aggregate_type)
            .bind(&drop.aggregate_id)
            .bind(&drop.event_type)
            .bind(truncated(&drop.reason))
            .bind(&drop.dropped_by)
            .bind(&drop.dropped_at)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// The drops of `consumer` (every consumer's when `None`), oldest first.
    pub async fn drops(&self, consumer: Option<&str>) -> Result<Vec<DroppedLetter>, ReadStoreError> {
        let mut sql = "SELECT consumer, position, aggregate_type, aggregate_id, event_type, reason, dropped_by, \
                       dropped_at FROM sluice_letter_drops"
            .to_owned();
        if consumer.is_some() {
            sql.push_str(&format!(" WHERE consumer = {}", self.dialect.placeholder(1)));
        }
        sql.push_str(" ORDER BY id");
        let mut query = sqlx::query(&sql);
        if let Some(consumer) = consumer {
            query = query.bind(consumer);
        }
        let mut drops = Vec::new();
        for row in query.fetch_all(&self.pool).await? {
            drops.push(DroppedLetter {
                consumer: row.try_get(0)?,
                position: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                aggregate_type: read_text(&row, 2)?.unwrap_or_default(),
                aggregate_id: read_text(&row, 3)?.unwrap_or_default(),
                event_type: read_text(&row, 4)?.unwrap_or_default(),
                reason: read_text(&row, 5)?.unwrap_or_default(),
                dropped_by: read_text(&row, 6)?.unwrap_or_default(),
                dropped_at: row.try_get(7)?,
            });
        }
        Ok(drops)
    }
}

impl Letter {
    /// A letter about `event` (its id is the store's to give).
    pub fn new(
        consumer: &str,
        sha256: &str,
        event: &StoredEvent,
        state: LetterState,
        reason: &str,
        attempts: u32,
    ) -> Self {
        let now = now();
        Self {
            id: 0,
            consumer: consumer.to_owned(),
            plugin_sha256: sha256.to_owned(),
            position: event.global_position,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            state,
            reason: reason.to_owned(),
            attempts,
            first_failed_at: now.clone(),
            last_failed_at: now,
        }
    }
}
