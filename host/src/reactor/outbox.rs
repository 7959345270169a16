//! The outbox of one reactor: a table the host declares for it in the read store (so the read
//! store creates it in every dialect and the batch's write session writes it), one row per
//! message, and the statements the delivery worker runs on it.
//!
//! A row is `pending` until delivered (`delivered`, kept as the record of what was sent for the
//! retention the operator sets, then pruned by the delivery worker) or until its retries ran out
//! (`parked`, listed with the dead letters for an operator, who retries or drops it). A parked
//! message holds back the later messages of its key, so a key's order holds across parking.
//! Each row carries when it was recorded, parked and delivered.
//!
//! The times arrived after the first outbox shape: [`Outbox::migrate`] adds their columns to an
//! outbox created before (they stay empty on the rows it held).

use sqlx::Row;

use crate::plugin::Outgoing;
use crate::read_store::schema::ColumnSchema;
use crate::read_store::statement::Value;
use crate::read_store::{ColumnType, ProjectionSchema, ReadStore, ReadStoreError, TableSchema};

/// The outbox's table name within the reactor's tables.
pub const TABLE: &str = "outbox";
/// The outbox's shape; a change would need a migration (never a rebuild: a reactor does not replay).
pub const SCHEMA_VERSION: u32 = 1;
/// Generation of the outbox table (a reactor's tables are never rebuilt).
pub const GENERATION: i64 = 1;

/// A message's state.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const PARKED: &str = "parked";
/// Parked, then dropped by an operator: never sent; the row keeps who dropped it and when.
pub const DROPPED: &str = "dropped";

/// The read-store name of a reactor's tables: `rx_` and its name as an identifier.
fn tables_owner(reactor: &str) -> String {
    format!("rx_{}", reactor.to_ascii_lowercase().replace('-', "_"))
}

/// The reactor's tables: the outbox.
pub fn schema(reactor: &str) -> ProjectionSchema {
    let column = |name: &str, column_type, nullable| ColumnSchema { name: name.into(), column_type, nullable };
    ProjectionSchema {
        projection: tables_owner(reactor),
        tables: vec![TableSchema {
            name: TABLE.into(),
            columns: vec![
                column("id", ColumnType::Text, false),
                column("position", ColumnType::Integer, false),
                column("idx", ColumnType::Integer, false),
                column("channel", ColumnType::Text, false),
                column("message_key", ColumnType::Text, false),
                column("payload", ColumnType::Text, false),
                column("state", ColumnType::Text, false),
                column("attempts", ColumnType::Integer, false),
                column("last_error", ColumnType::Text, true),
                column("recorded_at", ColumnType::Timestamp, true),
                column("parked_at", ColumnType::Timestamp, true),
                column("delivered_at", ColumnType::Timestamp, true),
                column("dropped_by", ColumnType::Text, true),
                column("dropped_at", ColumnType::Timestamp, true),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![vec!["state".into()], vec!["position".into(), "idx".into()]],
        }],
    }
}

/// The columns the first outbox shape lacked, added by [`Outbox::migrate`].
const LATER_COLUMNS: [&str; 5] = ["recorded_at", "parked_at", "delivered_at", "dropped_by", "dropped_at"];

/// The stable id of a message: the reactor, its reset generation when an operator ever reset it
/// (`r1`, `r2`, …: a reset is an explicit "send again", so what it sends again are new messages
/// to a receiver that deduplicates by id), the event's global position, the message's index.
pub fn message_id(reactor: &str, resets: u64, position: u64, index: u32) -> String {
    if resets == 0 {
        format!("{reactor}:{position}:{index}")
    } else {
        format!("{reactor}:r{resets}:{position}:{index}")
    }
}

/// The outbox row of `message`, pending, sent by a reactor reset `resets` times.
pub fn row(reactor: &str, resets: u64, message: &Outgoing) -> (Vec<String>, Vec<Value>) {
    let columns = [
        "id",
        "position",
        "idx",
        "channel",
        "message_key",
        "payload",
        "state",
        "attempts",
        "last_error",
        "recorded_at",
        "parked_at",
        "delivered_at",
        "dropped_by",
        "dropped_at",
    ];
    let values = vec![
        Value::Text(message_id(reactor, resets, message.position, message.index)),
        Value::Integer(i64::try_from(message.position).unwrap_or(i64::MAX)),
        Value::Integer(i64::from(message.index)),
        Value::Text(message.sent.channel.clone()),
        Value::Text(message.sent.key.clone()),
        Value::Text(message.sent.payload.clone()),
        Value::Text(PENDING.into()),
        Value::Integer(0),
        Value::Null,
        Value::Text(crate::read_store::dead_letters::now()),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ];
    (columns.iter().map(|c| (*c).to_owned()).collect(), values)
}

/// One message as the outbox holds it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub reactor: String,
    pub position: u64,
    pub channel: String,
    pub key: String,
    pub payload: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// When the reactor recorded it (RFC 3339; none on rows of the first outbox shape).
    pub recorded_at: Option<String>,
    /// When its retries ran out, while it is parked.
    pub parked_at: Option<String>,
    /// When its channel took it.
    pub delivered_at: Option<String>,
    /// Who dropped it, when an operator did.
    pub dropped_by: Option<String>,
    pub dropped_at: Option<String>,
}

/// Counts by state, for the admin listing.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub pending: u64,
    pub delivered: u64,
    pub parked: u64,
    pub dropped: u64,
}

/// A reactor's outbox in a read store.
#[derive(Clone)]
pub struct Outbox {
    store: ReadStore,
    reactor: String,
    table: String,
}

impl Outbox {
    pub fn new(store: ReadStore, reactor: &str) -> Self {
        let schema = schema(reactor);
        let table = store.dialect().quote(&schema.physical_name(TABLE, GENERATION));
        Self { store, reactor: reactor.to_owned(), table }
    }

    fn p(&self, n: usize) -> String {
        self.store.dialect().placeholder(n)
    }

    const COLUMNS: &'static str = "id, position, channel, message_key, payload, state, attempts, last_error, recorded_at, parked_at, \
         delivered_at, dropped_by, dropped_at";

    fn message(&self, row: &sqlx::any::AnyRow) -> Result<Message, sqlx::Error> {
        Ok(Message {
            id: row.try_get("id")?,
            reactor: self.reactor.clone(),
            position: u64::try_from(row.try_get::<i64, _>("position")?).unwrap_or(0),
            channel: row.try_get("channel")?,
            key: row.try_get("message_key")?,
            payload: row.try_get("payload")?,
            state: row.try_get("state")?,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            last_error: row.try_get("last_error")?,
            recorded_at: row.try_get("recorded_at")?,
            parked_at: row.try_get("parked_at")?,
            delivered_at: row.try_get("delivered_at")?,
            dropped_by: row.try_get("dropped_by")?,
            dropped_at: row.try_get("dropped_at")?,
        })
    }

    /// Add the columns an outbox of the first shape lacks (each probed first, so this is
    /// idempotent on every dialect, none of which agrees on `ADD COLUMN IF NOT EXISTS`).
    /// An outbox that is not there is left alone (the runner creates it whole).
    pub async fn migrate(&self) -> Result<(), ReadStoreError> {
        if !self.exists().await? {
            return Ok(());
        }
        let text = if self.store.dialect() == crate::read_store::Dialect::MySql { "VARCHAR(64)" } else { "TEXT" };
        for column in LATER_COLUMNS {
            let probe = format!("SELECT {column} FROM {t} WHERE 1 = 0", t = self.table);
            if sqlx::query(&probe).fetch_all(self.store.pool()).await.is_ok() {
                continue;
            }
            let add = format!("ALTER TABLE {t} ADD COLUMN {column} {text}", t = self.table);
            sqlx::query(&add).execute(self.store.pool()).await?;
        }
        Ok(())
    }

    /// Up to `limit` pending messages, oldest first, leaving out keys held back by a parked one.
    pub async fn pending(&self, limit: u32) -> Result<Vec<Message>, ReadStoreError> {
        let sql = format!(
            "SELECT {cols} FROM {t} WHERE state = {p1} AND message_key NOT IN \
             (SELECT message_key FROM {t} WHERE state = {p2}) ORDER BY position, idx LIMIT {limit}",
            cols = Self::COLUMNS,
            t = self.table,
            p1 = self.p(1),
            p2 = self.p(2),
        );
        let rows = sqlx::query(&sql).bind(PENDING).bind(PARKED).fetch_all(self.store.pool()).await?;
        Ok(rows.iter().map(|r| self.message(r)).collect::<Result<_, _>>()?)
    }

    /// The messages in `state`, oldest first.
    pub async fn in_state(&self, state: &str, limit: u32) -> Result<Vec<Message>, ReadStoreError> {
        let sql = format!(
            "SELECT {cols} FROM {t} WHERE state = {p1} ORDER BY position, idx LIMIT {limit}",
            cols = Self::COLUMNS,
            t = self.table,
            p1 = self.p(1),
        );
        let rows = sqlx::query(&sql).bind(state).fetch_all(self.store.pool()).await?;
        Ok(rows.iter().map(|r| self.message(r)).collect::<Result<_, _>>()?)
    }

    /// One message by id.
    pub async fn get(&self, id: &str) -> Result<Option<Message>, ReadStoreError> {
        let sql =
            format!("SELECT {cols} FROM {t} WHERE id = {p1}", cols = Self::COLUMNS, t = self.table, p1 = self.p(1));
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.store.pool()).await?;
        Ok(row.map(|r| self.message(&r)).transpose()?)
    }

    /// Mark each `(id, attempts)` delivered, in one transaction (one commit for a whole round).
    pub async fn delivered(&self, delivered: &[(String, u32)]) -> Result<(), ReadStoreError> {
        if delivered.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE {t} SET state = {p1}, attempts = {p2}, last_error = NULL, parked_at = NULL, delivered_at = {p3} \
             WHERE id = {p4}",
            t = self.table,
            p1 = self.p(1),
            p2 = self.p(2),
            p3 = self.p(3),
            p4 = self.p(4),
        );
        let now = crate::read_store::dead_letters::now();
        let mut tx = self.store.pool().begin().await?;
        for (id, attempts) in delivered {
            sqlx::query(&sql)
                .bind(DELIVERED)
                .bind(i64::from(*attempts))
                .bind(now.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Park `id` after `attempts` calls that failed, the last with `error`.
    pub async fn park(&self, id: &str, attempts: u32, error: &str) -> Result<(), ReadStoreError> {
        let sql = format!(
            "UPDATE {t} SET state = {p1}, attempts = {p2}, last_error = {p3}, parked_at = {p4} WHERE id = {p5}",
            t = self.table,
            p1 = self.p(1),
            p2 = self.p(2),
            p3 = self.p(3),
            p4 = self.p(4),
            p5 = self.p(5),
        );
        let now = crate::read_store::dead_letters::now();
        sqlx::query(&sql)
            .bind(PARKED)
            .bind(i64::from(attempts))
            .bind(error)
            .bind(now.as_str())
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Drop the parked message `id` (an operator's decision): it is never sent, its row keeps
    /// `by` and `at`, and its key's later messages go on. False when `id` is not parked.
    pub async fn drop_parked(&self, id: &str, by: &str, at: &str) -> Result<bool, ReadStoreError> {
        let sql = format!(
            "UPDATE {t} SET state = {p1}, dropped_by = {p2}, dropped_at = {p3} WHERE id = {p4} AND state = {p5}",
            t = self.table,
            p1 = self.p(1),
            p2 = self.p(2),
            p3 = self.p(3),
            p4 = self.p(4),
            p5 = self.p(5),
        );
        let done =
            sqlx::query(&sql).bind(DROPPED).bind(by).bind(at).bind(id).bind(PARKED).execute(self.store.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the outbox's table is there (a listing of a name that is no reactor finds none).
    pub async fn exists(&self) -> Result<bool, ReadStoreError> {
        let probe = format!("SELECT id FROM {t} WHERE 1 = 0", t = self.table);
        Ok(sqlx::query(&probe).fetch_all(self.store.pool()).await.is_ok())
    }

    /// Delete up to `limit` delivered messages delivered before `cutoff` (RFC 3339), oldest
    /// first; how many went. Rows of the first outbox shape (no delivery time) are kept.
    pub async fn prune_delivered(&self, cutoff: &str, limit: u32) -> Result<u64, ReadStoreError> {
        let select = format!(
            "SELECT id FROM {t} WHERE state = {p1} AND delivered_at < {p2} ORDER BY position, idx LIMIT {limit}",
            t = self.table,
            p1 = self.p(1),
            p2 = self.p(2),
        );
        let rows = sqlx::query(&select).bind(DELIVERED).bind(cutoff).fetch_all(self.store.pool()).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(0);
        }
        // Ids read first, then deleted by id: MySQL allows no LIMIT in an `IN` subquery, and
        // neither PostgreSQL nor (by default) SQLite a LIMIT on DELETE.
        let placeholders: Vec<String> = (2..=ids.len() + 1).map(|n| self.p(n)).collect();
        let delete = format!(
            "DELETE FROM {t} WHERE state = {p1} AND id IN ({list})",
            t = self.table,
            p1 = self.p(1),
            list = placeholders.join(", "),
        );
        let mut query = sqlx::query(&delete).bind(DELIVERED);
        for id in &ids {
            query = query.bind(id.as_str());
        }
        Ok(query.execute(self.store.pool()).await?.rows_affected())
    }

    /// A parked message goes back to pending (an operator's retry); false when `id` is not parked.
    pub async fn retry(&self, id: &str) -> Result<bool, ReadStoreError> {
        let sql = format!(
            "UPDATE {t} SET state = {p1}, attempts = 0, parked_at = NULL WHERE id = {p2} AND state = {p3}",
            t = self.table,
            p1 = self.p(1),
            p2 = self.p(2),
            p3 = self.p(3),
        );
        let done = sqlx::query(&sql).bind(PENDING).bind(id).bind(PARKED).execute(self.store.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many messages are in each state.
    pub async fn counts(&self) -> Result<Counts, ReadStoreError> {
        let sql = format!("SELECT state, COUNT(*) AS n FROM {t} GROUP BY state", t = self.table);
        let rows = sqlx::query(&sql).fetch_all(self.store.pool()).await?;
        let mut counts = Counts::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            match state.as_str() {
                PENDING => counts.pending = n,
                DELIVERED => counts.delivered = n,
                PARKED => counts.parked = n,
                DROPPED => counts.dropped = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

/// The names of every consumer with a position in `store` (projections and reactors): where a
/// stopped host's reactors are found, for the CLI's listing of parked deliveries.
pub async fn consumer_names(store: &ReadStore) -> Result<Vec<String>, ReadStoreError> {
    let rows = sqlx::query("SELECT name FROM sluice_projections ORDER BY name").fetch_all(store.pool()).await?;
    Ok(rows.iter().map(|r| r.try_get::<String, _>("name")).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::outbox::Sent;

    fn outgoing(position: u64, key: &str) -> Outgoing {
        Outgoing {
            position,
            index: 0,
            sent: Sent { channel: "c".into(), key: key.into(), payload: format!("{{\"at\":{position}}}") },
        }
    }

    /// Write `message` as the reactor's batch would (through the table's declared columns).
    async fn record(store: &ReadStore, outbox: &Outbox, resets: u64, message: &Outgoing) {
        let (columns, values) = row("rx", resets, message);
        let placeholders: Vec<String> = (1..=columns.len()).map(|n| store.dialect().placeholder(n)).collect();
        let sql = format!("INSERT INTO {} ({}) VALUES ({})", outbox.table, columns.join(", "), placeholders.join(", "));
        let mut query = sqlx::query(&sql);
        for value in values {
            query = match value {
                Value::Text(t) => query.bind(t),
                Value::Integer(n) => query.bind(n),
                Value::Null => query.bind(None::<String>),
                other => unreachable!("the outbox writes no {other:?}"),
            };
        }
        query.execute(store.pool()).await.expect("insert");
    }

    #[tokio::test]
    async fn an_outbox_of_the_first_shape_is_migrated_and_keeps_its_rows_times_and_audit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ReadStore::open(&format!("sqlite://{}", dir.path().join("read.db").display())).await.expect("open");
        let outbox = Outbox::new(store.clone(), "rx");
        // The first shape: no times, no drop audit; one delivered row in it.
        let mut first = schema("rx");
        first.tables[0].columns.retain(|c| !LATER_COLUMNS.contains(&c.name.as_str()));
        store.create_tables(&first, GENERATION).await.expect("create");
        let old = format!(
            "INSERT INTO {} (id, position, idx, channel, message_key, payload, state, attempts) \
             VALUES ('rx:1:0', 1, 0, 'c', 'k', '{{}}', 'delivered', 1)",
            outbox.table
        );
        sqlx::query(&old).execute(store.pool()).await.expect("old row");
        outbox.migrate().await.expect("migrate");
        outbox.migrate().await.expect("a second migration changes nothing");
        let kept = outbox.get("rx:1:0").await.expect("read").expect("the old row is kept");
        assert_eq!((kept.state.as_str(), kept.delivered_at), (DELIVERED, None));

        // Ids: the reset generation joins them after a reset.
        record(&store, &outbox, 0, &outgoing(2, "k")).await;
        record(&store, &outbox, 2, &outgoing(2, "k")).await;
        let again = outbox.get("rx:r2:2:0").await.expect("read").expect("a reset's message is a row of its own");
        assert!(again.recorded_at.is_some(), "no recording time");
        assert!(outbox.get("rx:2:0").await.expect("read").is_some(), "the earlier message was overwritten");

        // Parked, then dropped: the row keeps who and when, and no longer holds its key back.
        outbox.park("rx:2:0", 3, "refused").await.expect("park");
        assert!(outbox.pending(10).await.expect("pending").is_empty(), "a parked message holds its key back");
        assert!(outbox.drop_parked("rx:2:0", "tester", "2026-01-01T00:00:00.000Z").await.expect("drop"));
        assert!(!outbox.drop_parked("rx:2:0", "tester", "2026-01-01T00:00:00.000Z").await.expect("drop"));
        let dropped = outbox.get("rx:2:0").await.expect("read").expect("kept");
        assert_eq!((dropped.state.as_str(), dropped.dropped_by.as_deref()), (DROPPED, Some("tester")));
        let pending = outbox.pending(10).await.expect("pending");
        assert_eq!(pending.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["rx:r2:2:0"]);

        // Delivered now; pruned only past the cutoff, and never the rows without a delivery time.
        outbox.delivered(&[("rx:r2:2:0".into(), 1)]).await.expect("delivered");
        assert_eq!(outbox.prune_delivered("2000-01-01T00:00:00.000Z", 10).await.expect("prune"), 0);
        assert_eq!(outbox.prune_delivered("2999-01-01T00:00:00.000Z", 10).await.expect("prune"), 1);
        assert!(outbox.get("rx:r2:2:0").await.expect("read").is_none(), "not pruned");
        assert!(outbox.get("rx:1:0").await.expect("read").is_some(), "a row without a delivery time was pruned");
        let counts = outbox.counts().await.expect("counts");
        assert_eq!((counts.delivered, counts.dropped, counts.pending, counts.parked), (1, 1, 0, 0));
    }
}
