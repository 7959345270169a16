//! One contract, every backend: the same checks run against the SQLite event store (always), the
//! MongoDB one (with `SLUICE_TEST_MONGODB_URL`: FerretDB in `scripts/test`) and the PostgreSQL one
//! (with `SLUICE_TEST_POSTGRES_URL`), each in a fresh database of its own. Without a URL a backend
//! is skipped with a message (a failure when `SLUICE_REQUIRE_SERVERS=1`).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sluice::event_store::{EventStore, EventStoreError, NewEvent, SchemaCensus, StoredEvent};

fn event(n: u32) -> NewEvent {
    NewEvent { event_type: "Happened".into(), schema_version: 1, data: format!("{{\"n\":{n}}}") }
}

fn positions(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.global_position).collect()
}

/// Every backend this run can reach, each a fresh store; the temp dir keeps SQLite's file alive.
async fn stores() -> (tempfile::TempDir, Vec<(&'static str, Arc<dyn EventStore>)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("events.db").display());
    let mut urls = vec![("sqlite", Some(sqlite))];
    urls.push(("mongodb", common::fresh_database("SLUICE_TEST_MONGODB_URL", "contract")));
    urls.push(("postgres", common::fresh_database("SLUICE_TEST_POSTGRES_URL", "contract")));
    let mut stores = Vec::new();
    for (name, url) in urls {
        let Some(url) = url else { continue };
        let store = sluice::event_store::open(&url).await.unwrap_or_else(|e| panic!("open the {name} store: {e}"));
        stores.push((name, store));
    }
    (dir, stores)
}

#[tokio::test]
async fn append_checks_the_expected_version() {
    let (_dir, stores) = stores().await;
    for (name, store) in stores {
        let first = store.append("T", "a", 0, &[event(1), event(2)]).await.expect("append");
        assert_eq!((first.version, first.positions), (2, vec![1, 2]), "{name}");
        let stale = store.append("T", "a", 1, &[event(3)]).await;
        assert!(matches!(stale, Err(EventStoreError::Conflict { expected: 1, actual: 2 })), "{name}: {stale:?}");
        let ahead = store.append("T", "a", 5, &[event(3)]).await;
        assert!(matches!(ahead, Err(EventStoreError::Conflict { expected: 5, actual: 2 })), "{name}: {ahead:?}");
        let next = store.append("T", "a", 2, &[event(3)]).await.expect("append");
        assert_eq!((next.version, next.positions), (3, vec![3]), "{name}");
        let stream = store.read_stream("T", "a", 0, None).await.expect("read");
        assert_eq!(stream.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3], "{name}");
        assert_eq!(
            (stream[2].data.as_str(), stream[2].event_type.as_str(), stream[2].schema_version),
            ("{\"n\":3}", "Happened", 1),
            "{name}"
        );
        let middle = store.read_stream("T", "a", 1, Some(2)).await.expect("read");
        assert_eq!(middle.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2], "{name}");
        assert_eq!(store.stream_version("T", "a").await.expect("version"), 3, "{name}");
        assert_eq!(store.stream_version("T", "b").await.expect("version"), 0, "{name}");
        assert_eq!(store.stream_version("U", "a").await.expect("version"), 0, "{name}: streams are per type");
        assert_eq!(store.head_position().await.expect("head"), 3, "{name}");
    }
}

#[tokio::test]
async fn a_refused_batch_appends_nothing() {
    let (_dir, stores) = stores().await;
    for (name, store) in stores {
        store.append("T", "a", 0, &[event(1)]).await.expect("append");
        assert!(store.append("T", "a", 0, &[event(2), event(3)]).await.is_err(), "{name}");
        assert_eq!(store.stream_version("T", "a").await.expect("version"), 1, "{name}");
        assert_eq!(store.read_all(0, 100).await.expect("read").len(), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_at_one_version_have_one_winner() {
    let (_dir, stores) = stores().await;
    for (name, store) in stores {
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.append("T", "a", 0, &[event(n)]).await })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.expect("join") {
                Ok(_) => winners += 1,
                Err(EventStoreError::Conflict { expected: 0, actual: 1 }) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(winners, 1, "{name}");
        assert_eq!(store.stream_version("T", "a").await.expect("version"), 1, "{name}");
    }
}

#[tokio::test]
async fn the_global_log_is_in_commit_order_across_streams() {
    let (_dir, stores) = stores().await;
    for (name, store) in stores {
        store.append("T", "a", 0, &[event(1)]).await.expect("append");
        store.append("U", "b", 0, &[event(2), event(3)]).await.expect("append");
        let all = store.read_all(0, 10).await.expect("read");
        assert_eq!(positions(&all), vec![1, 2, 3], "{name}");
        let one = store.read_all(1, 1).await.expect("read");
        assert_eq!((one.len(), one[0].aggregate_id.as_str()), (1, "b"), "{name}");
        assert!(store.read_all(3, 10).await.expect("read").is_empty(), "{name}");
    }
}

/// `schema_counts(through)` counts only up to its position, and the census (counted once, then
/// followed from the log, as every deploy reads it) agrees with a fresh count after more appends.
#[tokio::test]
async fn the_schema_census_follows_the_log() {
    let (_dir, stores) = stores().await;
    for (name, store) in stores {
        let v2 = |n: u32| NewEvent { schema_version: 2, ..event(n) };
        store.append("T", "a", 0, &[event(1), event(2)]).await.expect("append");
        store.append("U", "b", 0, &[v2(3)]).await.expect("append");
        let through_two = store.schema_counts(2).await.expect("count");
        assert_eq!(
            through_two.iter().map(|c| (c.aggregate_type.as_str(), c.schema_version, c.count)).collect::<Vec<_>>(),
            vec![("T", 1, 2)],
            "{name}"
        );
        let census = SchemaCensus::default();
        assert_eq!(
            census.counts(store.as_ref()).await.expect("census"),
            store.schema_counts(3).await.expect("count"),
            "{name}"
        );
        store.append("T", "a", 2, &[v2(4)]).await.expect("append");
        store.append("U", "c", 0, &[v2(5), v2(6)]).await.expect("append");
        let counts = census.counts(store.as_ref()).await.expect("census");
        assert_eq!(counts, store.schema_counts(6).await.expect("count"), "{name}");
        assert_eq!(
            counts.iter().map(|c| (c.aggregate_type.as_str(), c.schema_version, c.count)).collect::<Vec<_>>(),
            vec![("T", 1, 2), ("T", 2, 1), ("U", 2, 3)],
            "{name}"
        );
    }
}

#[tokio::test]
async fn one_relay_holds_the_lease_and_its_position_only_grows() {
    let (_dir, stores) = stores().await;
    for (name, store) in stores {
        let lease = Duration::from_secs(30);
        assert_eq!(store.relay_position().await.expect("position"), 0, "{name}");
        assert_eq!(store.claim_relay("a", lease).await.expect("claim"), Some(0), "{name}");
        assert_eq!(store.claim_relay("b", lease).await.expect("claim"), None, "{name}");
        assert!(store.save_relay_position("a", 7, lease).await.expect("save"), "{name}");
        assert!(store.save_relay_position("a", 5, lease).await.expect("save"), "{name}");
        assert!(!store.save_relay_position("b", 9, lease).await.expect("save"), "{name}");
        assert_eq!(store.relay_position().await.expect("position"), 7, "{name}");
        assert_eq!(store.claim_relay("a", lease).await.expect("renew"), Some(7), "{name}");
        // An expired lease goes to whoever claims it next, with the saved position.
        assert!(store.save_relay_position("a", 8, Duration::ZERO).await.expect("save"), "{name}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.claim_relay("b", lease).await.expect("take over"), Some(8), "{name}");
        assert!(!store.save_relay_position("a", 9, lease).await.expect("fenced"), "{name}");
    }
}

/// Writers race on many streams (and, for the server backends, through two store instances, each
/// with its own connections, as two hosts would) while a follower reads the log by position: the
/// follower ends with exactly the log — no commit skipped because it landed late, none twice, none
/// out of order — and every acknowledged append is in it at the positions it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_never_skips_a_commit_while_writers_race() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("events.db").display());
    let mut urls = vec![("sqlite", Some(sqlite))];
    urls.push(("mongodb", common::fresh_database("SLUICE_TEST_MONGODB_URL", "contract")));
    urls.push(("postgres", common::fresh_database("SLUICE_TEST_POSTGRES_URL", "contract")));
    for (name, url) in urls {
        let Some(url) = url else { continue };
        let started = std::time::Instant::now();
        let first = sluice::event_store::open(&url).await.expect("open");
        let second = sluice::event_store::open(&url).await.expect("open again");
        let writers: Vec<_> = (0..8u32)
            .map(|w| {
                let store = if w % 2 == 0 { first.clone() } else { second.clone() };
                tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    for n in 0..15u32 {
                        // Two writers share each stream, so some appends lose and are refused.
                        let stream = format!("s{}", w / 2);
                        let version = store.stream_version("T", &stream).await.expect("version");
                        let events = if n % 3 == 0 { vec![event(n), event(n + 1)] } else { vec![event(n)] };
                        match store.append("T", &stream, version, &events).await {
                            Ok(done) => acknowledged.push((stream, done)),
                            Err(EventStoreError::Conflict { .. }) => {}
                            Err(e) => panic!("append: {e}"),
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        // The follower reads while the writers write, then on after they are done until it
        // reaches the head, so an event it never sees is one the log hid from it, not one it
        // stopped too early for.
        let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let follower = {
            let store = first.clone();
            let writers_done = writers_done.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let done = writers_done.load(std::sync::atomic::Ordering::SeqCst);
                    let after = seen.last().map_or(0, |e: &StoredEvent| e.global_position);
                    let batch = store.read_all(after, 10).await.expect("read");
                    // The end is the head (another process's last commits may reach `read_all`
                    // a little late; the head is never late).
                    if batch.is_empty() && done && after >= store.head_position().await.expect("head") {
                        break;
                    }
                    seen.extend(batch);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            })
        };
        let mut acknowledged = Vec::new();
        for writer in writers {
            acknowledged.extend(writer.await.expect("join"));
        }
        writers_done.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = follower.await.expect("join");
        let log = first.read_all(0, 100_000).await.expect("read");
        assert_eq!(positions(&seen), positions(&log), "{name}: the follower's view differs from the log");
        assert!(positions(&log).windows(2).all(|p| p[0] < p[1]), "{name}: positions not increasing");
        let in_log: BTreeSet<(String, u64, u64)> =
            log.iter().map(|e| (e.aggregate_id.clone(), e.version, e.global_position)).collect();
        let mut acknowledged_events = 0;
        for (stream, done) in &acknowledged {
            let first_version = done.version + 1 - done.positions.len() as u64;
            for (k, position) in done.positions.iter().enumerate() {
                let key = (stream.clone(), first_version + k as u64, *position);
                assert!(in_log.contains(&key), "{name}: acknowledged {key:?} is not in the log");
                acknowledged_events += 1;
            }
        }
        assert_eq!(acknowledged_events, log.len(), "{name}: the log holds events nobody was told of");
        for stream in 0..4 {
            let events = first.read_stream("T", &format!("s{stream}"), 0, None).await.expect("read");
            assert!(
                events.iter().enumerate().all(|(i, e)| e.version == i as u64 + 1),
                "{name}: stream s{stream} has a gap"
            );
        }
        eprintln!("{name}: {} events from 8 racing writers, followed in {:.1?}", log.len(), started.elapsed());
    }
}

/// The log's head is the store's to publish: a store instance's subscribers hear of its own
/// appends as soon as they are acknowledged, and of another instance's (another host's) — by
/// polling on SQLite and MongoDB, and on PostgreSQL by notification: there both instances poll
/// once an hour, so nothing else could wake them within the wait below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_is_published_for_every_hosts_appends() {
    const HOUR: Duration = Duration::from_secs(3600);
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("events.db").display());
    let mut urls = vec![("sqlite", Some(sqlite), Duration::from_millis(50))];
    urls.push(("mongodb", common::fresh_database("SLUICE_TEST_MONGODB_URL", "contract"), Duration::from_millis(50)));
    urls.push(("postgres", common::fresh_database("SLUICE_TEST_POSTGRES_URL", "contract"), HOUR));
    for (name, url, poll) in urls {
        let Some(url) = url else { continue };
        let notified = poll == HOUR;
        let first = sluice::event_store::open_polling(&url, HOUR).await.expect("open");
        let second = sluice::event_store::open_polling(&url, poll).await.expect("open again");
        let (mut own, mut other) = (first.subscribe(), second.subscribe());
        let done = first.append("T", "a", 0, &[event(1), event(2)]).await.expect("append");
        assert_eq!(done.positions, vec![1, 2], "{name}");
        assert!(own.has_changed().expect("the store lives"), "{name}: its own append was not published");
        assert_eq!(*own.borrow_and_update(), 2, "{name}");
        let heard = tokio::time::timeout(Duration::from_secs(30), other.wait_for(|head| *head >= 2)).await;
        assert!(heard.is_ok_and(|h| h.is_ok()), "{name}: the other instance never heard of position 2");
        if notified {
            // And the other way round, with neither instance polling.
            second.append("T", "b", 0, &[event(3)]).await.expect("append");
            let heard = tokio::time::timeout(Duration::from_secs(30), own.wait_for(|head| *head >= 3)).await;
            assert!(heard.is_ok_and(|h| h.is_ok()), "{name}: the first instance never heard of position 3");
        }
    }
}
