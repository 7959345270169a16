//! The command service's state cache against a real (embedded) event store: two services share
//! one store, as two hosts share one, and each decides on what the store holds, not on what its
//! own cache last saw.

use std::sync::{Arc, Mutex};

use sluice::command::{CommandError, CommandService};
use sluice::event_store::sqlite::SqliteEventStore;
use sluice::event_store::{EventStore, NewEvent, StoredEvent};
use sluice::plugin::{
    AggregateLogic, AggregateManifest, CommandInput, CommandSpec, Decision, PluginFault, PluginRegistry, Refusal,
};

/// Counts `Added` events and refuses a fourth; remembers how many events each call evolved.
struct Tally {
    manifest: AggregateManifest,
    evolved: Mutex<Vec<usize>>,
}

const FULL: u64 = 3;

impl Tally {
    fn new() -> Arc<Self> {
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
        Ok(Decision { state, verdict })
    }

    fn render(&self, history: &[StoredEvent]) -> Result<String, PluginFault> {
        Ok(format!("{{\"count\":{}}}", history.len()))
    }
}

async fn shared_store(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    Arc::new(SqliteEventStore::open(&url).await.expect("open store"))
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
    // A replayed only what it had not seen: nothing, one event, then the two appended since.
    assert_eq!(a_logic.evolved(), vec![0, 1, 2]);
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
