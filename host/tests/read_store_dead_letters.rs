//! Dead letters on every dialect: SQLite always, PostgreSQL and MySQL/MariaDB when
//! `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` are set. Attempts are counted up to the
//! limit and then reported exhausted without counting more; a letter moves from trying to
//! parked keeping its first failure time; blocked letters list behind their head; a drop is
//! audited.

mod common;

use sluice::event_store::StoredEvent;
use sluice::read_store::{DroppedLetter, Letter, LetterState, ReadStore};

fn event(aggregate_id: &str, position: u64) -> StoredEvent {
    StoredEvent {
        aggregate_type: "Thing".into(),
        aggregate_id: aggregate_id.into(),
        version: 1,
        global_position: position,
        event_type: "Happened".into(),
        schema_version: 2,
        data: "{}".into(),
        recorded_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

async fn letters_count_attempts_park_block_and_drop(url: &str) {
    let store = ReadStore::open(url).await.expect("open");
    let head = event("a-1", 7);
    for expected in 1..=3 {
        let attempt = store.record_attempt("totals", "sha-1", &head, 3).await.expect("attempt");
        assert_eq!((attempt.attempts, attempt.exhausted), (expected, false));
        store.note_failure("totals", 7, &format!("failure {expected}")).await.expect("note");
    }
    let exhausted = store.record_attempt("totals", "sha-1", &head, 3).await.expect("attempt");
    assert_eq!((exhausted.attempts, exhausted.exhausted, exhausted.reason.as_str()), (3, true, "failure 3"));
    // Trying letters are not parked ones.
    assert!(store.letters(Some("totals"), None, &[LetterState::Parked]).await.expect("read").is_empty());
    assert_eq!(store.parked_count("totals").await.expect("count"), 0);

    let mut tx = store.pool().begin().await.expect("begin");
    store
        .put_letter(&mut tx, &Letter::new("totals", "sha-1", &head, LetterState::Parked, "failure 3", 3))
        .await
        .expect("park");
    let behind = event("a-1", 9);
    store
        .put_letter(&mut tx, &Letter::new("totals", "sha-1", &behind, LetterState::Blocked, "behind 7", 0))
        .await
        .expect("block");
    tx.commit().await.expect("commit");
    let letters =
        store.letters(Some("totals"), Some("a-1"), &[LetterState::Parked, LetterState::Blocked]).await.expect("read");
    let summary: Vec<(u64, LetterState, u32, u32)> =
        letters.iter().map(|l| (l.position, l.state, l.attempts, l.schema_version)).collect();
    assert_eq!(summary, vec![(7, LetterState::Parked, 3, 2), (9, LetterState::Blocked, 0, 2)]);
    assert!(letters[0].first_failed_at <= letters[0].last_failed_at);
    assert_eq!(store.parked_count("totals").await.expect("count"), 1);
    assert!(store.letters(Some("other"), None, &[LetterState::Parked]).await.expect("read").is_empty());
    assert_eq!(store.letter(letters[0].id).await.expect("read").map(|l| l.position), Some(7));

    let mut tx = store.pool().begin().await.expect("begin");
    store.remove_letter(&mut tx, "totals", 7).await.expect("remove");
    let drop = DroppedLetter {
        consumer: "totals".into(),
        position: 7,
        aggregate_type: "Thing".into(),
        aggregate_id: "a-1".into(),
        event_type: "Happened".into(),
        reason: "failure 3".into(),
        dropped_by: "operator".into(),
        dropped_at: "2026-01-02T00:00:00.000Z".into(),
    };
    store.record_drop(&mut tx, &drop).await.expect("audit");
    tx.commit().await.expect("commit");
    assert_eq!(store.parked_count("totals").await.expect("count"), 0);
    assert_eq!(store.drops(Some("totals")).await.expect("read"), vec![drop]);
    assert!(store.drops(Some("other")).await.expect("read").is_empty());
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    letters_count_attempts_park_block_and_drop(&format!("sqlite://{}", dir.path().join("read.db").display())).await;
}

#[tokio::test]
async fn postgres() {
    let Some(url) = common::fresh_database("SLUICE_TEST_POSTGRES_URL", "letters") else { return };
    letters_count_attempts_park_block_and_drop(&url).await;
}

#[tokio::test]
async fn mysql() {
    let Some(url) = common::fresh_database("SLUICE_TEST_MYSQL_URL", "letters") else { return };
    letters_count_attempts_park_block_and_drop(&url).await;
}
