//! The operator's resets of reactors, one row each in `sluice_reactor_resets` (the read store,
//! beside the reactors' positions): which reactor, its reset generation, the position it was
//! moved to, and when. A reactor's generation (how many times it was reset) is part of the id of
//! every message it records ([`super::outbox::message_id`]), so what a reset sends again reaches
//! receivers as new messages rather than as duplicates of the ones sent before — the reset is
//! the operator's explicit "send again". The generation is written in the transaction that moves
//! the position, so a crash cannot leave one without the other.

use sqlx::Row;

use crate::read_store::{Dialect, ReadStore, ReadStoreError};

/// Create the table if it is not there.
pub async fn ensure_table(store: &ReadStore) -> Result<(), ReadStoreError> {
    let text = if store.dialect() == Dialect::MySql { "VARCHAR(255)" } else { "TEXT" };
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS sluice_reactor_resets (reactor {text} NOT NULL, generation BIGINT NOT NULL, \
         position BIGINT NOT NULL, reset_at {text} NOT NULL, PRIMARY KEY (reactor, generation))"
    );
    sqlx::query(&sql).execute(store.pool()).await?;
    Ok(())
}

/// How many times `reactor` was reset (0: never).
pub async fn generation(store: &ReadStore, reactor: &str) -> Result<u64, ReadStoreError> {
    ensure_table(store).await?;
    let sql = format!(
        "SELECT COALESCE(MAX(generation), 0) AS g FROM sluice_reactor_resets WHERE reactor = {}",
        store.dialect().placeholder(1)
    );
    let row = sqlx::query(&sql).bind(reactor).fetch_one(store.pool()).await?;
    Ok(u64::try_from(row.try_get::<i64, _>("g")?).unwrap_or(0))
}

/// Record `reactor`'s reset to `position` as generation `generation`, inside `tx`.
pub async fn record(
    store: &ReadStore,
    tx: &mut sqlx::AnyConnection,
    reactor: &str,
    generation: u64,
    position: u64,
) -> Result<(), ReadStoreError> {
    let d = store.dialect();
    let sql = format!(
        "INSERT INTO sluice_reactor_resets (reactor, generation, position, reset_at) VALUES ({}, {}, {}, {})",
        d.placeholder(1),
        d.placeholder(2),
        d.placeholder(3),
        d.placeholder(4)
    );
    sqlx::query(&sql)
        .bind(reactor)
        .bind(i64::try_from(generation).unwrap_or(i64::MAX))
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(crate::read_store::dead_letters::now())
        .execute(&mut *tx)
        .await?;
    Ok(())
}
