//! The MongoDB event store against a real server: FerretDB in `scripts/test`, or any MongoDB.
//!
//! Set `SLUICE_TEST_MONGODB_URL` (e.g. `mongodb://127.0.0.1:27017/sluice`) to run these; without
//! it each test says it was skipped and passes (fails when `SLUICE_REQUIRE_SERVERS=1`). Every test
//! works in a fresh database of its own (the URL's database name is replaced) and drops it at the
//! end.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::event_store::mongodb::{MongoEventStore, Timing};
use sluice::event_store::{EventStore, EventStoreError, NewEvent, StoredEvent};

const URL_VARIABLE: &str = "SLUICE_TEST_MONGODB_URL";

fn event(n: u32) -> NewEvent {
    NewEvent { event_type: "Happened".into(), schema_version: 1, data: format!("{{\"n\":{n}}}") }
}

fn positions(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.global_position).collect()
}

/// A fresh database on the test server, or `None` (after saying so) when none is configured.
struct TestDb {
    url: String,
}

impl TestDb {
    fn new() -> Option<Self> {
        Some(Self { url: common::fresh_database(URL_VARIABLE, "sluice_test_")? })
    }

    async fn open(&self) -> MongoEventStore {
        MongoEventStore::open(&self.url).await.expect("open the MongoDB event store")
    }

    async fn open_with(&self, timing: Timing) -> MongoEventStore {
        MongoEventStore::open_with(&self.url, timing).await.expect("open the MongoDB event store")
    }

    async fn drop(self) {
        let client = mongodb::Client::with_uri_str(&self.url).await.expect("connect");
        let db = client.default_database().expect("the test URL names a database");
        db.drop().await.expect("drop the test database");
    }
}

#[test]
fn the_database_name_is_replaced() {
    assert_eq!(common::with_database("mongodb://h:1/sluice", "x"), "mongodb://h:1/x");
    assert_eq!(common::with_database("mongodb://h:1", "x"), "mongodb://h:1/x");
    assert_eq!(common::with_database("mongodb://u:p@h:1,g:2/db?w=1", "x"), "mongodb://u:p@h:1,g:2/x?w=1");
}

#[tokio::test]
async fn append_checks_the_expected_version() {
    let Some(db) = TestDb::new() else { return };
    let store = db.open().await;
    let first = store.append("T", "a", 0, &[event(1), event(2)]).await.expect("append");
    assert_eq!(first.version, 2);
    assert_eq!(first.positions, vec![1, 2]);

    let stale = store.append("T", "a", 1, &[event(3)]).await;
    assert!(matches!(stale, Err(EventStoreError::Conflict { expected: 1, actual: 2 })), "{stale:?}");
    let ahead = store.append("T", "a", 5, &[event(3)]).await;
    assert!(matches!(ahead, Err(EventStoreError::Conflict { expected: 5, actual: 2 })), "{ahead:?}");

    let next = store.append("T", "a", 2, &[event(3)]).await.expect("append");
    assert_eq!(next.version, 3);
    assert_eq!(next.positions, vec![3]);
    let stream = store.read_stream("T", "a", 0, None).await.expect("read");
    assert_eq!(stream.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(stream[2].data, "{\"n\":3}");
    assert_eq!(stream[2].event_type, "Happened");
    assert_eq!(stream[2].schema_version, 1);
    let middle = store.read_stream("T", "a", 1, Some(2)).await.expect("read");
    assert_eq!(middle.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2]);
    assert_eq!(store.stream_version("T", "a").await.expect("version"), 3);
    assert_eq!(store.stream_version("T", "b").await.expect("version"), 0);
    assert_eq!(store.head_position().await.expect("head"), 3);
    db.drop().await;
}

#[tokio::test]
async fn a_failed_batch_appends_nothing() {
    let Some(db) = TestDb::new() else { return };
    let store = db.open().await;
    store.append("T", "a", 0, &[event(1)]).await.expect("append");
    assert!(store.append("T", "a", 0, &[event(2), event(3)]).await.is_err());
    assert_eq!(store.stream_version("T", "a").await.expect("version"), 1);
    assert_eq!(store.read_all(0, 100).await.expect("read").len(), 1);
    assert_eq!(store.read_stream("T", "a", 0, None).await.expect("read").len(), 1);
    db.drop().await;
}

#[tokio::test]
async fn concurrent_appends_at_one_version_have_one_winner() {
    let Some(db) = TestDb::new() else { return };
    // Two store handles, as two hosts would have.
    let stores = [Arc::new(db.open().await), Arc::new(db.open().await)];
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = stores[n as usize % 2].clone();
            tokio::spawn(async move { store.append("T", "a", 0, &[event(n), event(n + 100)]).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(appended) => {
                winners += 1;
                assert_eq!(appended.version, 2);
            }
            Err(EventStoreError::Conflict { expected: 0, actual: 2 }) => {}
            Err(e) => panic!("a losing append must be a conflict, not {e:?}"),
        }
    }
    assert_eq!(winners, 1);
    let store = &stores[0];
    assert_eq!(store.stream_version("T", "a").await.expect("version"), 2);
    // The losers released the positions they had taken: the log reads at once, without gaps.
    let started = Instant::now();
    let all = store.read_all(0, 100).await.expect("read");
    assert!(started.elapsed() < Timing::default().gap_timeout, "the read waited for abandoned positions");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].global_position + 1, all[1].global_position);
    assert_eq!(store.head_position().await.expect("head"), all[1].global_position);
    db.drop().await;
}

#[tokio::test]
async fn the_database_decides_a_race_that_the_version_check_cannot_see() {
    let Some(db) = TestDb::new() else { return };
    let store = Arc::new(db.open().await);
    let other_host = db.open().await;
    store.append("T", "a", 0, &[event(1)]).await.expect("append");

    // `late` has read version 1 and taken its positions when `other_host` appends at version 1.
    let mut held = store.hold_next_append();
    let late = tokio::spawn({
        let store = store.clone();
        async move { store.append("T", "a", 1, &[event(2), event(3)]).await }
    });
    held.allocated().await;
    other_host.append("T", "a", 1, &[event(4)]).await.expect("append");
    held.release();
    let lost = late.await.expect("join");
    assert!(matches!(lost, Err(EventStoreError::Conflict { expected: 1, actual: 2 })), "{lost:?}");

    let stream = store.read_stream("T", "a", 0, None).await.expect("read");
    assert_eq!(stream.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), vec!["{\"n\":1}", "{\"n\":4}"]);
    // The loser released its positions: the log reads at once.
    let started = Instant::now();
    assert_eq!(store.read_all(0, 10).await.expect("read").len(), 2);
    assert!(started.elapsed() < Timing::default().gap_timeout, "the read waited for released positions");
    db.drop().await;
}

#[tokio::test]
async fn the_global_log_is_in_commit_order_across_streams() {
    let Some(db) = TestDb::new() else { return };
    let store = db.open().await;
    store.append("T", "a", 0, &[event(1)]).await.expect("append");
    store.append("U", "b", 0, &[event(2), event(3)]).await.expect("append");
    store.append("T", "a", 1, &[event(4)]).await.expect("append");
    let all = store.read_all(0, 10).await.expect("read");
    assert_eq!(positions(&all), vec![1, 2, 3, 4]);
    assert_eq!(all.iter().map(|e| e.aggregate_id.as_str()).collect::<Vec<_>>(), vec!["a", "b", "b", "a"]);
    assert_eq!(store.read_all(1, 1).await.expect("read")[0].aggregate_id, "b");
    assert!(store.read_all(4, 10).await.expect("read").is_empty());

    // A second store on the same database (another host, or a restart) continues the log.
    let again = db.open().await;
    assert_eq!(again.append("U", "b", 2, &[event(5)]).await.expect("append").positions, vec![5]);
    assert_eq!(positions(&store.read_all(0, 10).await.expect("read")), vec![1, 2, 3, 4, 5]);
    db.drop().await;
}

#[tokio::test]
async fn a_batch_gets_contiguous_positions() {
    let Some(db) = TestDb::new() else { return };
    let store = db.open().await;
    store.append("T", "a", 0, &[event(1)]).await.expect("append");
    let batch = store.append("T", "b", 0, &[event(2), event(3), event(4), event(5)]).await.expect("append");
    assert_eq!(batch.positions, vec![2, 3, 4, 5]);
    assert_eq!(batch.version, 4);
    let stream = store.read_stream("T", "b", 0, None).await.expect("read");
    assert_eq!(
        stream.iter().map(|e| (e.version, e.global_position)).collect::<Vec<_>>(),
        [(1, 2), (2, 3), (3, 4), (4, 5)]
    );

    // Paging through the log may stop, and start again, inside a batch.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = store.read_all(after, 2).await.expect("read");
        let Some(last) = page.last() else { break };
        after = last.global_position;
        seen.extend(positions(&page));
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(positions(&store.read_all(3, 1).await.expect("read")), vec![4]);
    db.drop().await;
}

#[tokio::test]
async fn a_commit_that_arrives_late_is_not_skipped() {
    let Some(db) = TestDb::new() else { return };
    let store = Arc::new(db.open().await);
    store.append("T", "first", 0, &[event(1)]).await.expect("append");

    // `slow` takes position 2 but stalls before inserting; `quick` takes 3 and commits.
    let mut held = store.hold_next_append();
    let slow = tokio::spawn({
        let store = store.clone();
        async move { store.append("T", "slow", 0, &[event(2)]).await }
    });
    assert_eq!(held.allocated().await, 2);
    let quick = store.append("T", "quick", 0, &[event(3)]).await.expect("append");
    assert_eq!(quick.positions, vec![3]);

    // A reader gets what precedes the gap at once, never what follows it.
    let started = Instant::now();
    assert_eq!(positions(&store.read_all(0, 10).await.expect("read")), vec![1]);
    assert!(started.elapsed() < Duration::from_secs(1), "a prefix is returned without waiting");

    // At the gap it waits; the late commit arrives within the window and is read in order.
    let reader = tokio::spawn({
        let store = store.clone();
        async move { store.read_all(1, 10).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reader.is_finished(), "the reader must wait for position 2, not skip it");
    held.release();
    assert_eq!(slow.await.expect("join").expect("the late append succeeds").positions, vec![2]);
    let read = reader.await.expect("join").expect("read");
    assert_eq!(positions(&read), vec![2, 3]);
    assert_eq!(read[0].aggregate_id, "slow");
    db.drop().await;
}

#[tokio::test]
async fn a_stalled_appender_gives_its_positions_up_and_takes_fresh_ones() {
    let Some(db) = TestDb::new() else { return };
    let store = Arc::new(db.open().await);
    let mut held = store.hold_next_append();
    let slow = tokio::spawn({
        let store = store.clone();
        async move { store.append("T", "slow", 0, &[event(1), event(2)]).await }
    });
    assert_eq!(held.allocated().await, 1);
    store.append("T", "quick", 0, &[event(3)]).await.expect("append");
    // Older than the allocation age limit when it goes on: it must not insert at 1..=2.
    tokio::time::sleep(Timing::default().max_allocation_age + Duration::from_millis(200)).await;
    held.release();
    let appended = slow.await.expect("join").expect("append with fresh positions");
    assert_eq!(appended.positions, vec![4, 5]);
    assert_eq!(appended.version, 2);

    // It released 1..=2 itself, so a reader passes them without waiting out the gap.
    let started = Instant::now();
    let all = store.read_all(0, 10).await.expect("read");
    assert!(started.elapsed() < Timing::default().gap_timeout, "the read waited for released positions");
    assert_eq!(positions(&all), vec![3, 4, 5]);
    assert_eq!(store.read_stream("T", "slow", 0, None).await.expect("read").len(), 2);
    db.drop().await;
}

#[tokio::test]
async fn a_gap_that_outlives_the_timeout_is_closed_and_its_commit_moves_later() {
    let Some(db) = TestDb::new() else {
        return;
    };
    // An appender slower than readers will wait (a stalled network, a paused process): the
    // allocation age limit does not catch it here, only the database can.
    let timing = Timing {
        gap_timeout: Duration::from_millis(400),
        max_allocation_age: Duration::from_secs(60),
        ..Timing::default()
    };
    let store = Arc::new(db.open_with(timing).await);
    let mut held = store.hold_next_append();
    let slow = tokio::spawn({
        let store = store.clone();
        async move { store.append("T", "slow", 0, &[event(1)]).await }
    });
    assert_eq!(held.allocated().await, 1);
    store.append("T", "quick", 0, &[event(2)]).await.expect("append");

    let started = Instant::now();
    let before = store.read_all(0, 10).await.expect("read");
    assert!(started.elapsed() >= timing.gap_timeout, "the reader waited for the gap before closing it");
    assert_eq!(positions(&before), vec![2]);

    // The stalled insert now clashes with the closed position and is retried at a fresh one,
    // so the reader, already past 2, misses nothing.
    held.release();
    let appended = slow.await.expect("join").expect("append after the retry");
    assert_eq!(appended.positions, vec![3]);
    assert_eq!(positions(&store.read_all(2, 10).await.expect("read")), vec![3]);
    assert_eq!(positions(&store.read_all(0, 10).await.expect("read")), vec![2, 3]);
    assert_eq!(store.stream_version("T", "slow").await.expect("version"), 1);
    assert_eq!(store.head_position().await.expect("head"), 3);
    db.drop().await;
}

#[tokio::test]
async fn one_relay_holds_the_lease_and_its_position_only_grows() {
    let Some(db) = TestDb::new() else { return };
    let store = db.open().await;
    let lease = Duration::from_secs(30);
    assert_eq!(store.relay_position().await.expect("position"), 0);
    assert_eq!(store.claim_relay("a", lease).await.expect("claim"), Some(0));
    assert_eq!(store.claim_relay("b", lease).await.expect("claim"), None);
    assert!(store.save_relay_position("a", 7, lease).await.expect("save"));
    assert!(store.save_relay_position("a", 5, lease).await.expect("save"));
    assert!(!store.save_relay_position("b", 9, lease).await.expect("save"));
    assert_eq!(store.relay_position().await.expect("position"), 7);
    assert_eq!(store.claim_relay("a", lease).await.expect("renew"), Some(7));
    // An expired lease goes to whoever claims it next, with the saved position; the old owner
    // can no longer save.
    assert!(store.save_relay_position("a", 8, Duration::ZERO).await.expect("save"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.claim_relay("b", lease).await.expect("take over"), Some(8));
    assert!(!store.save_relay_position("a", 9, lease).await.expect("fenced"));
    assert_eq!(store.claim_relay("a", lease).await.expect("claim"), None);
    // Of many claimants of a free lease, exactly one wins.
    assert!(store.save_relay_position("b", 8, Duration::ZERO).await.expect("release"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let store = Arc::new(store);
    let claims: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_relay(&format!("c{n}"), lease).await })
        })
        .collect();
    let mut winners = 0;
    for claim in claims {
        winners += usize::from(claim.await.expect("task").expect("claim").is_some());
    }
    assert_eq!(winners, 1);
    db.drop().await;
}

/// FerretDB's `$inc` is a read then a write: under load the counter hands the same positions to
/// two appenders. Every position must still hold one event, and every stream's positions must
/// rise with its versions.
#[tokio::test]
async fn racing_appenders_never_share_a_position() {
    let Some(db) = TestDb::new() else { return };
    let store = Arc::new(db.open().await);
    let tasks: Vec<_> = (0..16u32)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for version in 0..25u32 {
                    let batch = [event(version * 2), event(version * 2 + 1)];
                    store
                        .append("Thing", &format!("t{task}"), u64::from(version) * 2, &batch)
                        .await
                        .expect("an uncontended stream appends");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the appender finished");
    }
    let log = store.read_all(0, 10_000).await.expect("read the log");
    assert_eq!(log.len(), 16 * 50, "every event is in the log once");
    let mut seen = std::collections::HashSet::new();
    let mut last: std::collections::HashMap<String, (u64, u64)> = std::collections::HashMap::new();
    for event in &log {
        assert!(seen.insert(event.global_position), "position {} holds two events", event.global_position);
        let (version, position) = last.get(&event.aggregate_id).copied().unwrap_or((0, 0));
        assert_eq!(event.version, version + 1, "{}: versions in log order", event.aggregate_id);
        assert!(event.global_position > position, "{}: positions rise with versions", event.aggregate_id);
        last.insert(event.aggregate_id.clone(), (event.version, event.global_position));
    }
    db.drop().await;
}
