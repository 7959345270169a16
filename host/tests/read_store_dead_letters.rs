//! Dead letters on every dialect: SQLite always, PostgreSQL and MySQL/MariaDB when
//! `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` are set. A rebuild meets a failing event
//! again and writes its letter again: the first letter stays, and nothing fails.

mod common;

use sluice::read_store::{DeadLetter, ReadStore};

fn letter(reason: &str, recorded_at: &str) -> DeadLetter {
    DeadLetter {
        projection: "totals".into(),
        position: 7,
        event_type: "Happened".into(),
        aggregate_id: "a-1".into(),
        reason: reason.into(),
        recorded_at: recorded_at.into(),
    }
}

async fn a_letter_written_again_keeps_the_first(url: &str) {
    let store = ReadStore::open(url).await.expect("open");
    let first = letter("first failure", "2026-01-01T00:00:00.000Z");
    for written in [&first, &letter("the same failure in a rebuild", "2026-01-02T00:00:00.000Z")] {
        let mut tx = store.pool().begin().await.expect("begin");
        store.add_dead_letter(&mut tx, written).await.expect("a repeated letter is not an error");
        tx.commit().await.expect("commit");
    }
    assert_eq!(store.dead_letters(Some("totals")).await.expect("read"), vec![first]);
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    a_letter_written_again_keeps_the_first(&format!("sqlite://{}", dir.path().join("read.db").display())).await;
}

#[tokio::test]
async fn postgres() {
    let Some(url) = common::fresh_database("SLUICE_TEST_POSTGRES_URL", "letters") else { return };
    a_letter_written_again_keeps_the_first(&url).await;
}

#[tokio::test]
async fn mysql() {
    let Some(url) = common::fresh_database("SLUICE_TEST_MYSQL_URL", "letters") else { return };
    a_letter_written_again_keeps_the_first(&url).await;
}
