//! Bus offsets of a projection, one row per (topic, partition) in `sluice_offsets`: the next
//! offset to apply and the highest global position applied from that partition. They are written
//! in the same transaction as the rows the messages produced, so a redelivered message is
//! recognised and never changes a row twice, and a consumer that lost its partition to another
//! host cannot commit over that host's work (the update compares the offset it started from).

use sqlx::Row;

use super::dialect::Dialect;
use super::{ReadStore, ReadStoreError};

/// Where a projection stands in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    /// The next offset to apply.
    pub next_offset: i64,
    /// The highest global position applied from this partition.
    pub last_position: u64,
}

/// A move of one partition's offset, saved with the rows it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAdvance {
    pub topic: String,
    pub partition: i32,
    /// The stored offset this step starts from: the save fails with
    /// [`ReadStoreError::OffsetMoved`] if the stored one is past it (someone else applied some of
    /// these messages). `None`: the step carries no rows, so it only moves the offset forward.
    pub fence: Option<i64>,
    pub next_offset: i64,
    pub last_position: u64,
}

impl ReadStore {
    /// The projection's stored offsets, every partition it has seen.
    pub async fn partition_offsets(&self, projection: &str) -> Result<Vec<PartitionOffset>, ReadStoreError> {
        let sql = format!(
            "SELECT topic, part, next_offset, last_position FROM sluice_offsets WHERE projection = {}",
            self.dialect.placeholder(1)
        );
        let rows = sqlx::query(&sql).bind(projection).fetch_all(&self.pool).await?;
        let mut offsets = Vec::with_capacity(rows.len());
        for row in rows {
            offsets.push(PartitionOffset {
                topic: row.try_get(0)?,
                partition: i32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                next_offset: row.try_get(2)?,
                last_position: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
            });
        }
        Ok(offsets)
    }

    /// Save `advance` inside `tx` (the transaction that wrote the rows of its messages).
    pub async fn save_offset(
        &self,
        tx: &mut sqlx::AnyConnection,
        projection: &str,
        advance: &OffsetAdvance,
    ) -> Result<(), ReadStoreError> {
        let p = |n| self.dialect.placeholder(n);
        let key = format!("projection = {} AND topic = {} AND part = {}", p(1), p(2), p(3));
        let stored: Option<i64> = sqlx::query_scalar(&format!("SELECT next_offset FROM sluice_offsets WHERE {key}"))
            .bind(projection)
            .bind(&advance.topic)
            .bind(i64::from(advance.partition))
            .fetch_optional(&mut *tx)
            .await?;
        let moved = |stored: i64| ReadStoreError::OffsetMoved {
            projection: projection.to_owned(),
            topic: advance.topic.clone(),
            partition: advance.partition,
            stored,
        };
        let last_position = i64::try_from(advance.last_position).unwrap_or(i64::MAX);
        match stored {
            None => {
                let sql = format!(
                    "INSERT INTO sluice_offsets (projection, topic, part, next_offset, last_position) \
                     VALUES ({}, {}, {}, {}, {})",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5)
                );
                let inserted = sqlx::query(&sql)
                    .bind(projection)
                    .bind(&advance.topic)
                    .bind(i64::from(advance.partition))
                    .bind(advance.next_offset)
                    .bind(last_position)
                    .execute(&mut *tx)
                    .await;
                match inserted {
                    Ok(_) => Ok(()),
                    // Another consumer saved this partition first.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(moved(-1)),
                    Err(e) => Err(e.into()),
                }
            }
            Some(stored) if advance.fence.is_some_and(|fence| stored > fence) => Err(moved(stored)),
            Some(stored) if stored >= advance.next_offset => Ok(()),
            Some(stored) => {
                let sql = format!(
                    "UPDATE sluice_offsets SET next_offset = {}, last_position = {} WHERE projection = {} \
                     AND topic = {} AND part = {} AND next_offset = {}",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6)
                );
                let updated = sqlx::query(&sql)
                    .bind(advance.next_offset)
                    .bind(last_position)
                    .bind(projection)
                    .bind(&advance.topic)
                    .bind(i64::from(advance.partition))
                    .bind(stored)
                    .execute(&mut *tx)
                    .await?;
                if updated.rows_affected() == 1 { Ok(()) } else { Err(moved(stored)) }
            }
        }
    }

    /// Take the partitions of `advances` for the transaction `tx` before its rows are written:
    /// each fenced partition's offset row is created if missing and locked (`FOR UPDATE` on
    /// PostgreSQL and MySQL; SQLite's writer lock does it there), and a stored offset past the
    /// fence fails with [`ReadStoreError::OffsetMoved`] at once. Two hosts' consumers handed the same
    /// messages during a rebalance then queue on the row: the second sees the first's offset and
    /// backs off, instead of applying the messages a second time and failing on their rows.
    pub async fn claim_offsets(
        &self,
        tx: &mut sqlx::AnyConnection,
        projection: &str,
        advances: &[OffsetAdvance],
    ) -> Result<(), ReadStoreError> {
        let p = |n| self.dialect.placeholder(n);
        let insert = match self.dialect {
            Dialect::Postgres => "INSERT INTO sluice_offsets (projection, topic, part, next_offset, last_position) \
                 VALUES ($1, $2, $3, $4, 0) ON CONFLICT (projection, topic, part) DO NOTHING"
                .to_owned(),
            Dialect::MySql => {
                "INSERT IGNORE INTO sluice_offsets (projection, topic, part, next_offset, last_position) \
                 VALUES (?, ?, ?, ?, 0)"
                    .to_owned()
            }
            Dialect::Sqlite => {
                "INSERT OR IGNORE INTO sluice_offsets (projection, topic, part, next_offset, last_position) \
                 VALUES (?1, ?2, ?3, ?4, 0)"
                    .to_owned()
            }
        };
        let lock = if self.dialect == Dialect::Sqlite { "" } else { " FOR UPDATE" };
        let select = format!(
            "SELECT next_offset FROM sluice_offsets WHERE projection = {} AND topic = {} AND part = {}{lock}",
            p(1),
            p(2),
            p(3)
        );
        for advance in advances {
            let Some(fence) = advance.fence else { continue };
            sqlx::query(&insert)
                .bind(projection)
                .bind(&advance.topic)
                .bind(i64::from(advance.partition))
                .bind(fence)
                .execute(&mut *tx)
                .await?;
            let stored: i64 = sqlx::query_scalar(&select)
                .bind(projection)
                .bind(&advance.topic)
                .bind(i64::from(advance.partition))
                .fetch_one(&mut *tx)
                .await?;
            if stored > fence {
                return Err(ReadStoreError::OffsetMoved {
                    projection: projection.to_owned(),
                    topic: advance.topic.clone(),
                    partition: advance.partition,
                    stored,
                });
            }
        }
        Ok(())
    }

    /// Forget the projection's offsets (inside `tx`).
    pub async fn clear_offsets(&self, tx: &mut sqlx::AnyConnection, projection: &str) -> Result<(), ReadStoreError> {
        let sql = format!("DELETE FROM sluice_offsets WHERE projection = {}", self.dialect.placeholder(1));
        sqlx::query(&sql).bind(projection).execute(&mut *tx).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advance(fence: Option<i64>, next_offset: i64, last_position: u64) -> OffsetAdvance {
        OffsetAdvance { topic: "T".into(), partition: 2, fence, next_offset, last_position }
    }

    async fn save(store: &ReadStore, step: &OffsetAdvance) -> Result<(), ReadStoreError> {
        let mut tx = store.pool().begin().await?;
        store.save_offset(&mut tx, "p", step).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tokio::test]
    async fn offsets_only_move_from_where_the_step_started() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("read.db").display());
        let store = ReadStore::open(&url).await.expect("open");
        assert!(store.partition_offsets("p").await.expect("read").is_empty());

        // A claim of a partition whose stored offset is past the fence fails before any row.
        let mut tx = store.pool().begin().await.expect("begin");
        store.claim_offsets(&mut tx, "p", &[advance(Some(0), 3, 30)]).await.expect("claim a new partition");
        tx.rollback().await.expect("rollback");
        assert!(store.partition_offsets("p").await.expect("read").is_empty(), "a rolled-back claim leaves no row");

        save(&store, &advance(Some(0), 3, 30)).await.expect("first save");
        let mut tx = store.pool().begin().await.expect("begin");
        let stale = store.claim_offsets(&mut tx, "p", &[advance(Some(0), 5, 50)]).await;
        assert!(matches!(stale, Err(ReadStoreError::OffsetMoved { stored: 3, .. })), "{stale:?}");
        store.claim_offsets(&mut tx, "p", &[advance(Some(3), 5, 50)]).await.expect("claim from the stored offset");
        tx.rollback().await.expect("rollback");
        save(&store, &advance(Some(3), 5, 50)).await.expect("next save");
        // A step from an older offset: its messages were applied already.
        let stale = save(&store, &advance(Some(4), 6, 60)).await;
        assert!(matches!(stale, Err(ReadStoreError::OffsetMoved { stored: 5, .. })), "{stale:?}");
        // A step without rows only moves forward.
        save(&store, &advance(None, 4, 40)).await.expect("no-op");
        save(&store, &advance(None, 7, 70)).await.expect("forward");
        let stored = store.partition_offsets("p").await.expect("read");
        assert_eq!(
            stored,
            vec![PartitionOffset { topic: "T".into(), partition: 2, next_offset: 7, last_position: 70 }]
        );
        assert!(store.partition_offsets("other").await.expect("read").is_empty());
    }

    #[tokio::test]
    async fn a_failed_transaction_leaves_the_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("read.db").display());
        let store = ReadStore::open(&url).await.expect("open");
        let mut tx = store.pool().begin().await.expect("begin");
        store.save_offset(&mut tx, "p", &advance(Some(0), 9, 90)).await.expect("save");
        tx.rollback().await.expect("rollback");
        assert!(store.partition_offsets("p").await.expect("read").is_empty());
    }
}
