//! The MongoDB event store against a real server: FerretDB in `scripts/test`, or any MongoDB.
//!
//! Set `SLUICE_TEST_MONGODB_URL` (e.g. `mongodb://127.0.0.1:27017/sluice`) to run these; without
//! it each test says it was skipped and passes (fails when `SLUICE_REQUIRE_SERVERS=1`). Every test
//! works in a fresh database of its own (the URL's database name is replaced) and drops it at the
//! end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sluice::event_store::mongodb::{self as mongodb_store, MongoEventStore};
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
        Some(Self { url: common::fresh_database(URL_VARIABLE, "events")? })
    }

    async fn open(&self) -> MongoEventStore {
        MongoEventStore::open(&self.url).await.expect("open the MongoDB event store")
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
    // The losers took no position: the log holds the winner's two events, side by side.
    let all = store.read_all(0, 100).await.expect("read");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].global_position + 1, all[1].global_position);
    assert_eq!(store.head_position().await.expect("head"), all[1].global_position);
    db.drop().await;
}

/// A store that knows the stream's version skips the read; the unique index still refuses an
/// append that another host made stale.
#[tokio::test]
async fn the_database_decides_a_race_that_the_version_check_cannot_see() {
    let Some(db) = TestDb::new() else { return };
    let store = db.open().await;
    let other_host = db.open().await;
    store.append("T", "a", 0, &[event(1)]).await.expect("append");
    other_host.append("T", "a", 1, &[event(4)]).await.expect("append");
    let lost = store.append("T", "a", 1, &[event(2), event(3)]).await;
    assert!(matches!(lost, Err(EventStoreError::Conflict { expected: 1, actual: 2 })), "{lost:?}");

    let stream = store.read_stream("T", "a", 0, None).await.expect("read");
    assert_eq!(stream.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), vec!["{\"n\":1}", "{\"n\":4}"]);
    assert_eq!(positions(&store.read_all(0, 10).await.expect("read")), vec![1, 2]);
    // Having read the stream, the store appends at its end.
    assert_eq!(store.append("T", "a", 2, &[event(5)]).await.expect("append").positions, vec![3]);
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
    assert_eq!(positions(&again.read_all(0, 10).await.expect("read")), vec![1, 2, 3, 4, 5]);
    // The first store's head sees it at once; its log readers within the documented bound (the
    // hint's interval plus the end-probe interval), never out of order.
    assert_eq!(store.head_position().await.expect("head"), 5);
    let bound = mongodb_store::HINT_INTERVAL + mongodb_store::END_PROBE_INTERVAL;
    let deadline = std::time::Instant::now() + bound + Duration::from_secs(2);
    loop {
        let seen = positions(&store.read_all(0, 10).await.expect("read"));
        let known = store.known_head().await.expect("known head");
        assert!(known <= 5, "the cheap head is never past the log: {known}");
        if seen == vec![1, 2, 3, 4, 5] && known == 5 {
            break;
        }
        assert_eq!(seen, vec![1, 2, 3, 4], "the log reads in commit order or not at all");
        assert!(std::time::Instant::now() < deadline, "another host's commit never reached this host's log reader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Appends that arrive together are written together; a conflict in the middle of such a group
/// refuses that append alone, and the log stays without gaps.
#[tokio::test]
async fn a_conflict_inside_a_group_refuses_only_its_own_append() {
    let Some(db) = TestDb::new() else { return };
    let store = Arc::new(db.open().await);
    store.append("T", "taken", 0, &[event(0)]).await.expect("append");
    let tasks: Vec<_> = (0..40u32)
        .map(|n| {
            let store = store.clone();
            let id = if n == 20 { "taken".to_owned() } else { format!("s{n}") };
            tokio::spawn(async move { store.append("T", &id, 0, &[event(n)]).await })
        })
        .collect();
    let mut refused = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.expect("join") {
            Ok(appended) => assert_eq!(appended.version, 1),
            Err(EventStoreError::Conflict { expected: 0, actual: 1 }) if n == 20 => refused += 1,
            Err(e) => panic!("append {n}: {e:?}"),
        }
    }
    assert_eq!(refused, 1);
    let log = store.read_all(0, 100).await.expect("read");
    assert_eq!(positions(&log), (1..=40).collect::<Vec<_>>());
    assert_eq!(store.head_position().await.expect("head"), 40);
    db.drop().await;
}

/// A host whose idea of the log's end is stale clashes with the commits written since, steps past
/// them and appends at the true end.
#[tokio::test]
async fn a_writer_behind_the_log_end_moves_past_other_hosts_commits() {
    let Some(db) = TestDb::new() else { return };
    let behind = db.open().await;
    let busy = db.open().await;
    assert_eq!(behind.append("T", "b", 0, &[event(0)]).await.expect("append").positions, vec![1]);
    for n in 0..30u32 {
        let batch = [event(n), event(n + 100)];
        busy.append("T", "busy", u64::from(n) * 2, &batch).await.expect("append");
    }
    assert_eq!(behind.append("T", "b", 1, &[event(1)]).await.expect("append").positions, vec![62]);
    // A store opened now finds the end from the hint and the commits after it.
    let fresh = db.open().await;
    assert_eq!(fresh.head_position().await.expect("head"), 62);
    assert_eq!(fresh.append("T", "c", 0, &[event(2)]).await.expect("append").positions, vec![63]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(busy.head_position().await.expect("head"), 63);
    assert_eq!(positions(&busy.read_all(0, 1000).await.expect("read")), (1..=63).collect::<Vec<_>>());
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

/// Two hosts append at once and keep taking the same positions: every position must still hold
/// one event, and every stream's positions must rise with its versions.
#[tokio::test]
async fn racing_appenders_never_share_a_position() {
    let Some(db) = TestDb::new() else { return };
    let stores = [Arc::new(db.open().await), Arc::new(db.open().await)];
    let store = stores[0].clone();
    let tasks: Vec<_> = (0..16u32)
        .map(|task| {
            let store = stores[task as usize % 2].clone();
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

/// A database written by the first design (positions from a counter) is refused by name, not
/// misread.
#[tokio::test]
async fn a_database_of_the_counter_design_is_refused() {
    let Some(db) = TestDb::new() else { return };
    let client = mongodb::Client::with_uri_str(&db.url).await.expect("connect");
    let database = client.default_database().expect("the test URL names a database");
    let counter = mongodb::bson::doc! { "_id": "global_position", "value": 3 };
    database.collection("counters").insert_one(counter).await.expect("insert");
    match MongoEventStore::open(&db.url).await {
        Err(EventStoreError::Unsupported(message)) => assert!(message.contains("earlier Sluice"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    db.drop().await;
}

/// A reader follows the log by `_id` from its own commits in memory and other hosts' commits
/// looked up one by one, falls back to a range read far behind the end or inside a commit it does
/// not know, and sees the same log whichever way it got there.
#[tokio::test]
async fn the_log_reads_the_same_from_memory_by_id_and_by_range() {
    let Some(db) = TestDb::new() else { return };
    let writer = Arc::new(db.open().await);
    let other = db.open().await;
    // 300 commits of two events each from one host (together, so they share inserts), then some
    // from the other, interleaved.
    let tasks: Vec<_> = (0..300u32)
        .map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.append("T", &format!("w{n}"), 0, &[event(n), event(n + 1000)]).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("append");
    }
    for n in 0..20u32 {
        other.append("T", &format!("o{n}"), 0, &[event(n)]).await.expect("append");
        writer.append("T", &format!("w{n}"), 2, &[event(n)]).await.expect("append");
    }
    let expected: Vec<u64> = (1..=640).collect();
    // The writer: its own commits from memory, the other host's by `_id`.
    assert_eq!(positions(&writer.read_all(0, 10_000).await.expect("read")), expected);
    // A reader that knows no commit: more than a walk's worth, so part by range.
    let fresh = db.open().await;
    assert_eq!(positions(&fresh.read_all(0, 10_000).await.expect("read")), expected);
    // Starting inside a commit no one in this process wrote or read, and paging by odd sizes.
    let cold = db.open().await;
    let mut after = 3;
    let mut seen = Vec::new();
    loop {
        let page = cold.read_all(after, 7).await.expect("read");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 7);
        after = last.global_position;
        seen.extend(positions(&page));
    }
    assert_eq!(seen, (4..=640).collect::<Vec<_>>());
    assert_eq!(cold.head_position().await.expect("head"), 640);
    db.drop().await;
}

/// A follower of this process's own commits reads them all from memory while the writer keeps
/// adding to it from another thread: it never takes a commit kept a moment after it asked for one
/// it had not seen, nor one the writer has inserted and not yet kept. (It raced into a lookup per
/// group, each a scan of `commits` on FerretDB; and once a lookup found the writer's own commit
/// in the database, every look after it was due again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_of_its_own_writer_never_looks_a_commit_up() {
    let Some(db) = TestDb::new() else { return };
    let store = Arc::new(db.open().await);
    store.append("T", "first", 0, &[event(0)]).await.expect("append");
    // Confirms the end once, so the follower's looks past the end are at most one a second.
    assert_eq!(positions(&store.read_all(0, 10).await.expect("read")), vec![1]);
    let before = store.commits_looked_up();
    let writers: Vec<_> = (0..8u32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..100u32 {
                    store.append("T", &format!("s{w}-{n}"), 0, &[event(n)]).await.expect("append");
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let mut after = 1;
    while after < 801 {
        let batch = store.read_all(after, 50).await.expect("read");
        if let Some(last) = batch.last() {
            assert_eq!(last.global_position, after + batch.len() as u64, "a gap after {after}");
            after = last.global_position;
        }
        tokio::task::yield_now().await;
        assert!(started.elapsed() < Duration::from_secs(60), "the follower stalled at {after}");
    }
    for writer in writers {
        writer.await.expect("join");
    }
    let looked_up = store.commits_looked_up() - before;
    let allowed = started.elapsed().as_secs() + 1;
    assert!(looked_up <= allowed, "{looked_up} commits looked up by `_id` in {:?}", started.elapsed());
    db.drop().await;
}
