//! The command service's state cache against a real (embedded) event store: two services share
//! one store, as two hosts share one, and each decides on what the store holds, not on what its
//! own cache last saw; a command on a cached stream reads nothing unless it must, and one on a
//! state its plugin brought past its own events (WIT 0.3.0) evolves nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::command::{CommandError, CommandService};
use sluice::event_store::sqlite::SqliteEventStore;
use sluice::event_store::{Appended, EventStore, EventStoreError, NewEvent, SchemaCount, StoredEvent};
use sluice::plugin::{
    AggregateLogic, AggregateManifest, CommandInput, CommandSpec, Decision, PluginFault, PluginRegistry, Refusal,
};

/// Counts `Added` events and refuses a fourth; remembers how many events each call evolved.
/// One that `applies` returns the state after the event it decided, as a 0.3.0 plugin does.
struct Tally {
    manifest: AggregateManifest,
    evolved: Mutex<Vec<usize>>,
    applies: bool,
}

const FULL: u64 = 3;

impl Tally {
    fn new() -> Arc<Self> {
        Self::with(false)
    }

    fn applying() -> Arc<Self> {
        Self::with(true)
    }

    fn with(applies: bool) -> Arc<Self> {
        Arc::new(Self {
            manifest: AggregateManifest {
                aggregate_type: "Tally".into(),
                commands: vec![CommandSpec { name: "Add".into(), creates: true, body_schema: None }],
                events: vec!["Added".into()],
                routes: Vec::new(),
                topic: "Tallies".into(),
                schemas: None,
            },
            evolved: Mutex::new(Vec::new()),
            applies,
        })
    }

    fn evolved(&self) -> Vec<usize> {
        self.evolved.lock().expect("not poisoned").clone()
    }
}

impl AggregateLogic for Tally {
    fn manifest(&self) -> &AggregateManifest {
        &self.manifest
    }

    fn execute(&self, state: Option<&[u8]>, events: &[StoredEvent], _: &CommandInput) -> Result<Decision, PluginFault> {
        self.evolved.lock().expect("not poisoned").push(events.len());
        let before: u64 = state.map_or(0, |s| String::from_utf8_lossy(s).parse().unwrap_or(0));
        let count = before + events.len() as u64;
        let state = (count > 0 || state.is_some()).then(|| count.to_string().into_bytes());
        let verdict = if count >= FULL {
            Err(Refusal::Rejected(format!("full at {count}")))
        } else {
            Ok(vec![NewEvent {
                event_type: "Added".into(),
                schema_version: 1,
                data: format!("{{\"n\":{}}}", count + 1),
            }])
        };
        let after = (self.applies && verdict.is_ok()).then(|| (count + 1).to_string().into_bytes());
        Ok(Decision { state, verdict, after })
    }

    fn render(&self, history: &[StoredEvent]) -> Result<String, PluginFault> {
        Ok(format!("{{\"count\":{}}}", history.len()))
    }
}

async fn shared_store(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    Arc::new(SqliteEventStore::open(&url).await.expect("open store"))
}

#[tokio::test]
async fn a_plugin_that_applies_what_it_decided_has_nothing_to_evolve_on_the_next_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counting = Arc::new(CountingReads { inner: shared_store(&dir).await, stream_reads: AtomicUsize::new(0) });
    let store: Arc<dyn EventStore> = counting.clone();
    let reads = || counting.stream_reads.load(Ordering::SeqCst);
    let (a_logic, b_logic) = (Tally::applying(), Tally::applying());
    let (a, b) = (service(&store, a_logic.clone(), 100), service(&store, b_logic.clone(), 100));

    // Only the first command reads: each one leaves the state after its event in the cache.
    a.execute("Tally", "t4", "Add", "{}".into(), None).await.expect("first add");
    let second = a.execute("Tally", "t4", "Add", "{}".into(), None).await.expect("second add");
    assert_eq!((second.version, reads()), (2, 1));
    assert_eq!(a_logic.evolved(), vec![0, 0], "the second decided on the state the first left");

    // Another host appends the third; A decides on its state at version 2, its append is refused
    // there, and it evolves only what it missed.
    b.execute("Tally", "t4", "Add", "{}".into(), None).await.expect("third add on the other host");
    match a.execute("Tally", "t4", "Add", "{}".into(), None).await {
        Err(CommandError::Refused(Refusal::Rejected(reason))) => assert_eq!(reason, "full at 3"),
        other => panic!("expected a refusal on the up-to-date state, got {other:?}"),
    }
    assert_eq!(a_logic.evolved(), vec![0, 0, 0, 1]);
    assert_eq!(store.read_stream("Tally", "t4", 0, None).await.expect("read").len(), 3, "nothing appended");
}

fn service(store: &Arc<dyn EventStore>, logic: Arc<Tally>, cached_states: usize) -> CommandService {
    let registry = PluginRegistry::new();
    registry.register(logic, "test".into()).expect("register");
    CommandService::new(registry, store.clone(), cached_states)
}

#[tokio::test]
async fn a_cached_state_is_brought_up_to_date_with_another_hosts_appends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = shared_store(&dir).await;
    let (a_logic, b_logic) = (Tally::new(), Tally::new());
    let (a, b) = (service(&store, a_logic.clone(), 100), service(&store, b_logic.clone(), 100));

    a.execute("Tally", "t1", "Add", "{}".into(), None).await.expect("first add");
    a.execute("Tally", "t1", "Add", "{}".into(), None).await.expect("second add");
    // Another host appends the third event; A's cache still says version 1.
    let third = b.execute("Tally", "t1", "Add", "{}".into(), None).await.expect("third add on the other host");
    assert_eq!(third.version, 3);

    // A must decide on three events, so it refuses; a stale state (two) would have accepted.
    match a.execute("Tally", "t1", "Add", "{}".into(), None).await {
        Err(CommandError::Refused(Refusal::Rejected(reason))) => assert_eq!(reason, "full at 3"),
        other => panic!("expected a refusal on the up-to-date state, got {other:?}"),
    }
    // A replayed only what it had not seen: nothing; one event; its own second event, without a
    // read, which the store refused to append after; then the third, read after that refusal.
    assert_eq!(a_logic.evolved(), vec![0, 1, 1, 2]);
    assert_eq!(b_logic.evolved(), vec![2], "the other host started from the whole stream");
    assert_eq!(store.read_stream("Tally", "t1", 0, None).await.expect("read").len(), 3, "nothing appended");
}

#[tokio::test]
async fn without_a_cache_every_command_replays_the_whole_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = shared_store(&dir).await;
    let logic = Tally::new();
    let commands = service(&store, logic.clone(), 0);
    for _ in 0..3 {
        commands.execute("Tally", "t2", "Add", "{}".into(), None).await.expect("add");
    }
    assert!(commands.execute("Tally", "t2", "Add", "{}".into(), None).await.is_err(), "the fourth is refused");
    assert_eq!(logic.evolved(), vec![0, 1, 2, 3]);
}

/// An event store that counts the stream reads it serves.
struct CountingReads {
    inner: Arc<dyn EventStore>,
    stream_reads: AtomicUsize,
}

#[async_trait::async_trait]
impl EventStore for CountingReads {
    async fn append(
        &self,
        kind: &str,
        id: &str,
        expected: u64,
        events: &[NewEvent],
    ) -> Result<Appended, EventStoreError> {
        self.inner.append(kind, id, expected, events).await
    }
    async fn read_stream(
        &self,
        kind: &str,
        id: &str,
        after: u64,
        to: Option<u64>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_stream(kind, id, after, to).await
    }
    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, EventStoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn head_position(&self) -> Result<u64, EventStoreError> {
        self.inner.head_position().await
    }
    async fn stream_version(&self, kind: &str, id: &str) -> Result<u64, EventStoreError> {
        self.inner.stream_version(kind, id).await
    }
    async fn claim_relay(&self, owner: &str, lease: Duration) -> Result<Option<u64>, EventStoreError> {
        self.inner.claim_relay(owner, lease).await
    }
    async fn save_relay_position(&self, owner: &str, position: u64, lease: Duration) -> Result<bool, EventStoreError> {
        self.inner.save_relay_position(owner, position, lease).await
    }
    async fn relay_position(&self) -> Result<u64, EventStoreError> {
        self.inner.relay_position().await
    }
    async fn schema_counts(&self, through: u64) -> Result<Vec<SchemaCount>, EventStoreError> {
        self.inner.schema_counts(through).await
    }
    fn log_head(&self) -> &sluice::event_store::LogHead {
        self.inner.log_head()
    }
}

#[tokio::test]
async fn a_command_on_a_cached_stream_reads_nothing_until_it_must_answer_from_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counting = Arc::new(CountingReads { inner: shared_store(&dir).await, stream_reads: AtomicUsize::new(0) });
    let store: Arc<dyn EventStore> = counting.clone();
    let logic = Tally::new();
    let commands = service(&store, logic.clone(), 100);
    let reads = || counting.stream_reads.load(Ordering::SeqCst);

    // The first command reads the (empty) stream; the tally keeps no state for it, so the second
    // reads again; from then on the cache holds the state and the events just appended.
    commands.execute("Tally", "t3", "Add", "{}".into(), None).await.expect("first add");
    commands.execute("Tally", "t3", "Add", "{}".into(), None).await.expect("second add");
    assert_eq!(reads(), 2);
    let third = commands.execute("Tally", "t3", "Add", "{}".into(), None).await.expect("third add");
    assert_eq!((third.version, reads()), (3, 2), "the third command read nothing");
    assert_eq!(logic.evolved(), vec![0, 1, 1], "it evolved only the event the second appended");

    // A refusal decided on the cache is answered only after the store confirms it.
    match commands.execute("Tally", "t3", "Add", "{}".into(), None).await {
        Err(CommandError::Refused(Refusal::Rejected(reason))) => assert_eq!(reason, "full at 3"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(reads(), 3, "one read to confirm the refusal");
    // An expected version the cache disagrees with is checked against the store too.
    match commands.execute("Tally", "t3", "Add", "{}".into(), Some(2)).await {
        Err(CommandError::Conflict { expected: 2, actual: 3, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(reads(), 4);
}
