//! Bus offsets in the read store on every dialect: SQLite always, PostgreSQL and MySQL/MariaDB
//! when `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` are set (each test in a fresh
//! database; skipped with a message otherwise, failing when `SLUICE_REQUIRE_SERVERS=1`).

mod common;

use sluice::read_store::{OffsetAdvance, PartitionOffset, ReadStore, ReadStoreError};

fn advance(partition: i32, fence: Option<i64>, next_offset: i64, last_position: u64) -> OffsetAdvance {
    OffsetAdvance { topic: "Orders".into(), partition, fence, next_offset, last_position }
}

async fn save(store: &ReadStore, step: &OffsetAdvance) -> Result<(), ReadStoreError> {
    let mut tx = store.pool().begin().await?;
    let saved = store.save_offset(&mut tx, "totals", step).await;
    match saved {
        Ok(()) => Ok(tx.commit().await?),
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

/// The offsets contract, and two consumers racing from one offset: exactly one commits.
async fn offsets_contract(url: &str) {
    let store = ReadStore::open(url).await.expect("open");
    save(&store, &advance(0, Some(0), 3, 30)).await.expect("first save");
    save(&store, &advance(0, Some(3), 5, 50)).await.expect("next save");
    save(&store, &advance(1, Some(0), 2, 20)).await.expect("other partition");
    let stale = save(&store, &advance(0, Some(4), 6, 60)).await;
    assert!(matches!(stale, Err(ReadStoreError::OffsetMoved { stored: 5, .. })), "{stale:?}");
    save(&store, &advance(0, None, 4, 40)).await.expect("no-op");
    save(&store, &advance(0, None, 7, 70)).await.expect("forward");
    let mut stored = store.partition_offsets("totals").await.expect("read");
    stored.sort_by_key(|o| o.partition);
    assert_eq!(
        stored,
        vec![
            PartitionOffset { topic: "Orders".into(), partition: 0, next_offset: 7, last_position: 70 },
            PartitionOffset { topic: "Orders".into(), partition: 1, next_offset: 2, last_position: 20 },
        ]
    );

    let racers: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { save(&store, &advance(1, Some(2), 10 + n, 100)).await })
        })
        .collect();
    let mut committed = 0;
    for racer in racers {
        // A loser is told the offset moved, or (PostgreSQL, MySQL) the database refused its
        // concurrent update; either way it rolled back.
        committed += usize::from(racer.await.expect("task").is_ok());
    }
    assert_eq!(committed, 1, "exactly one consumer commits from offset 2");
}

#[tokio::test]
async fn offsets_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    offsets_contract(&format!("sqlite://{}", dir.path().join("read.db").display())).await;
}

#[tokio::test]
async fn offsets_on_postgres() {
    let Some(url) = common::fresh_database("SLUICE_TEST_POSTGRES_URL", "offsets") else { return };
    offsets_contract(&url).await;
}

#[tokio::test]
async fn offsets_on_mysql() {
    let Some(url) = common::fresh_database("SLUICE_TEST_MYSQL_URL", "offsets") else { return };
    offsets_contract(&url).await;
}
