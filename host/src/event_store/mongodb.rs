//! The scale-out event store: MongoDB (tested against FerretDB), one document per commit.
//!
//! FerretDB has neither multi-document transactions nor change streams, and on its SQLite
//! back end every read is a table scan while an insert checked by a unique index is cheap. So this
//! backend keeps the [`EventStore`] contract with nothing but single-statement inserts on the
//! write path, and decides every race with a unique index.
//!
//! **Documents.** The `commits` collection holds one document per append: `_id` is the commit's
//! first global position as 20 zero-padded digits (text order is number order, and FerretDB
//! hands an equality on a text `_id` to SQLite instead of filtering every document itself); then
//! `first_position`, `last_position`, `aggregate_type`, `aggregate_id`, `start` and `end` (its
//! first and last stream version), `recorded_at` and `events`, each with `version`, `position`,
//! `event_type`, `schema_version`, `data` (JSON text) and `recorded_at`. A unique index covers
//! (aggregate_type, aggregate_id, start); another index covers `last_position` for the global
//! log's reads. `log_head` holds one document, a hint of the
//! log's last position. The relay's saved position is the `relay` document of `relay`; its lease
//! is the newest document of `relay_leases` (`_id` = epoch, `owner`, `expires_at` in Unix ms): a
//! claimant of an expired lease inserts the next epoch, so the unique `_id` picks one winner
//! without relying on an atomic conditional update. The database is the URL's path
//! (`mongodb://host:27017/sluice`), `sluice` when it names none; indexes are created on open.
//!
//! **Atomic batches.** A batch is one document and a single insert is atomic, so a crash never
//! leaves half a batch.
//!
//! **Optimistic concurrency.** Commits tile a stream's versions 1..N without gaps, so a new commit
//! at expected version E (`start = E + 1`) overlaps an existing one exactly when their `start`s
//! are equal: the unique stream index turns a lost race into a duplicate-key error, reported as
//! [`EventStoreError::Conflict`]. That holds only if E is a version some commit of the stream ends
//! at (0 included). The store remembers, per stream, the last such version it read or wrote; an
//! append at any other version reads the stream's version first and refuses unless it matches.
//!
//! **Global order without gaps.** A commit's positions are its document's `_id` range, and a
//! document is only ever inserted at the position right after the end of a document that already
//! exists. Two writers that pick the same position clash on `_id` and exactly one wins, so the
//! documents tile the log from position 1, and a document becomes visible only after the one
//! before it: a reader that follows the log by position never sees a later commit before an
//! earlier one and never skips one that lands late. Positions are given out, and commits
//! written, by one writer task per process:
//!
//! - It gathers the appends waiting at that moment (up to [`GROUP`]), places them at consecutive
//!   positions after the log's end as it knows it, and writes them with one ordered `insert_many`
//!   (group commit: one round trip for all of them).
//! - Ordered, a failed document stops the insert: those before it are committed, those after it
//!   wait for the next round. A duplicate key at the failed document means either that another
//!   process took the position (its document exists: the writer moves past it and tries again) or
//!   that the stream moved on (the append is refused with a conflict).
//! - When an insert fails without saying which document failed (the server went away), the fate
//!   of the group is unknown: its appends report a failure and the writer reads the log's end
//!   afresh before the next one. Had the insert landed after all, the next one clashes with it.
//!
//! The writer learns the log's end at start and after a failure from the `log_head` hint (which
//! it keeps up to date in the background, at most every [`HINT_INTERVAL`]), then steps over the
//! commits written after it by `_id`. The hint is only a shortcut: the end of any existing commit
//! is a valid place to look from, and a stale one costs a few more steps.
//!
//! **Reads that cost the same whatever the size of the log.** FerretDB 1.24 hands SQLite (or
//! PostgreSQL) only a filter that is a single `_id` equality; any other filter or sort is done
//! over every document of the collection, so such a query on a hot path costs time
//! proportional to the log. Even the `_id` equality is a scan on its SQLite handler: it asks for
//! `_ferretdb_sjson->'$._id' = ?`, which its own `_id` index (on `_ferretdb_sjson->"_id"`) does
//! not serve (`EXPLAIN QUERY PLAN`: `SCAN`; 0.6 s at 40,000 commits here). So the hot paths read
//! this process's own commits from memory, look in `commits` by `_id` alone, and only as often
//! as they must:
//!
//! - Commands on a cached stream read nothing ([`crate::command`]); an append at a version a
//!   commit of the stream is known to end at is one insert (above).
//! - The global log is followed by walking it: commits tile the log, so the commit after one that
//!   ends at P has `_id` P + 1, and no document there means the log ends at P. The commits this
//!   process wrote (and those it read last) are kept in memory in commit order ([`Recent`]), so
//!   the relay publishes this host's own commits without a query and looks up other hosts'
//!   commits one by one. At the end of everything it knows, a reader reads the `log_head` hint
//!   and looks in `commits` only when the hint is past that end, or at most once per probe
//!   interval ([`EndProbes`]: a second, longer where a look costs more than a hundredth of that):
//!   another process's newest commits reach this one's readers within the hint's interval of
//!   being published, while a reader that just drained the log (the relay, after every batch)
//!   costs FerretDB nothing. A read that starts inside a commit
//!   the process does not know, or falls more than [`WALK`] commits behind the end, reads the rest
//!   by range: on MongoDB through the `log` index, on FerretDB a scan, paid once per
//!   [`PAGE`] commits while catching up.
//! - The log's exact head (`head_position`: a position a query names that the cheap head has not
//!   reached, a new reactor's start, the census) starts from the hint or the newest commit this
//!   process knows and steps over newer ones by `_id`. Status, lag, the head poll and `tail` use
//!   `known_head`: the hint and this process's commits, looking in `commits` only when a reader
//!   at that end would (the same [`EndProbes`]), so a dashboard or a scrape costs FerretDB no scan.
//!
//! **Every query, with its index on MongoDB** (`commits` unless said otherwise):
//!
//! | query | filter | sort | index |
//! |---|---|---|---|
//! | append (the writer) | `insert_many`, ordered | — | `_id` and `stream` (unique) decide races |
//! | the writer's clash check, log walk, head steps | `_id` = P | — | `_id` |
//! | a reader at the end of what it knows: the hint first | `log_head`: `_id` = `head` | — | `_id` |
//! | range read of the log (catch-up) | `last_position` > P, limit | `last_position` ↑ | `log` |
//! | read a stream | `aggregate_type`, `aggregate_id`, `start` ≤ V, `end` > A | `start` ↑ | `stream` (prefix and `start` range; `end` checked on the stream's commits) |
//! | a stream's version (cold stream, refused append) | `aggregate_type`, `aggregate_id` | `start` ↓, limit 1 | `stream` |
//! | the log's newest commit (head, after [`HEAD_STEPS`]) | — | `_id` ↓, limit 1 | `_id` |
//! | schema counts (once per process, then the census follows the log) | — | — | none: a whole scan by design |
//! | `log_head`: read, raise (`$max`, upsert) | `_id` = `head` | — | `_id` |
//! | `relay`: read, raise (`$max`, upsert) | `_id` = `relay` | — | `_id` |
//! | `relay_leases`: newest lease | — | `_id` ↓, limit 1 | `_id` |
//! | `relay_leases`: renew; take the next epoch | `_id` = E, `owner`; `insert_one` | — | `_id` |
//! | `counters` (refuse the first design's database, on open) | `_id` = `global_position` | — | `_id` |

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::mongodb::bson::{Bson, Document, doc};
use ::mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use ::mongodb::options::{ClientOptions, IndexOptions};
use ::mongodb::{Client, Collection, IndexModel};
use lru::LruCache;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Appended, EventStore, EventStoreError, LogHead, NewEvent, SchemaCount, StoredEvent, to_i64, to_u64};

/// The most appends one insert writes.
pub const GROUP: usize = 64;
/// How often, at most, the writer refreshes the `log_head` hint.
pub const HINT_INTERVAL: Duration = Duration::from_millis(200);
/// The `_id` of the hint in `log_head`.
const LOG_HEAD: &str = "head";
/// The `_id` of the relay's document in `relay`.
const RELAY: &str = "relay";
/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// The most commits one range read of the log fetches at a time: range reads are for catching
/// up, so they are few and large.
const PAGE: u32 = 20_000;
/// Steps from the hint over newer commits before the writer asks for the newest one directly
/// (a sort, which FerretDB does in memory).
const HEAD_STEPS: u32 = 64;
/// Commits a read of the log looks up one by one by `_id` before it reads the rest by range.
const WALK: u32 = 256;
/// Commits the store keeps in memory for readers of the log's end (see [`Recent`]).
const RECENT: usize = 16_384;
/// Clashes on positions in a row before the writer gives up on a group.
const MAX_CLASHES: u32 = 10_000;
/// Streams whose last known version the store remembers.
const KNOWN_STREAMS: NonZeroUsize = NonZeroUsize::new(100_000).expect("non-zero");
/// Appends that may wait for the writer.
const QUEUE: usize = 4096;
/// How long, at least, a reader at the end of every commit this process knows trusts the
/// `log_head` hint instead of looking in `commits` for a newer commit (see [`EndProbes`]).
pub const END_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long, at most, it trusts the hint. A writer that stopped between committing and
/// publishing its hint has its last commits found by the next look, or at once by any host that
/// restarts or appends (its writer steps past them, and the hint then covers them).
pub const MAX_END_PROBE_INTERVAL: Duration = Duration::from_secs(600);
/// Looks past the end take at most a hundredth of the time: the interval is this many times what
/// the last look took. A look on FerretDB stalls it for as long as it scans (3 s at 250,000
/// commits here), and a twentieth still showed as seconds of relay and projection lag at p99.
const END_PROBE_SPACING: u32 = 100;

/// One document of `commits`: an appended batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Commit {
    /// The first position, 20 digits (see the module documentation).
    #[serde(rename = "_id")]
    id: String,
    first_position: i64,
    last_position: i64,
    aggregate_type: String,
    aggregate_id: String,
    /// First stream version.
    start: i64,
    /// Last stream version.
    end: i64,
    recorded_at: String,
    events: Vec<EventDocument>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventDocument {
    version: i64,
    position: i64,
    event_type: String,
    schema_version: i64,
    data: String,
    recorded_at: String,
}

impl Commit {
    /// Give the commit the positions from `first` on.
    fn place(&mut self, first: u64) {
        self.id = position_id(first);
        self.first_position = to_i64(first);
        self.last_position = to_i64(first + self.events.len() as u64 - 1);
        for (event, position) in self.events.iter_mut().zip(first..) {
            event.position = to_i64(position);
        }
    }
}

/// A position as an `_id`.
fn position_id(position: u64) -> String {
    format!("{position:020}")
}

/// The commits this process wrote or read last, by first position: a reader of the log's end
/// (the relay above all) finds this host's own commits here in commit order without a query, and
/// looks up only other hosts' commits, by `_id`. Commits never change once written, so a kept
/// commit is always true; the oldest are dropped past [`RECENT`].
#[derive(Default)]
struct Recent {
    commits: Mutex<BTreeMap<u64, Arc<Commit>>>,
    /// The positions this process's writer is inserting: kept the moment they are committed.
    writing: Mutex<Option<std::ops::Range<u64>>>,
}

impl Recent {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Commit>>> {
        self.commits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer is inserting `positions` (or nothing): a reader past the end that asked the
    /// database for them would find this process's own commit before the writer keeps it, and
    /// under load each such find led to the next lookup.
    fn writing(&self, positions: Option<std::ops::Range<u64>>) {
        *self.writing.lock().unwrap_or_else(PoisonError::into_inner) = positions;
    }

    fn keep(&self, commit: Arc<Commit>) {
        let mut map = self.map();
        map.insert(to_u64(commit.first_position), commit);
        while map.len() > RECENT {
            map.pop_first();
        }
    }

    /// The kept commit that holds `position`.
    fn holding(&self, position: u64) -> Option<Arc<Commit>> {
        match self.find(position) {
            Kept::Holding(commit) => Some(commit),
            Kept::Gap | Kept::Writing | Kept::PastEnd => None,
        }
    }

    /// What is kept of `position`, decided under one lock: the writer keeps commits from
    /// another thread, and a reader that asked "held?" and then "past the end?" separately
    /// could see a commit kept in between and take it for one this process never saw (a lookup
    /// in `commits` that costs FerretDB a scan, hundreds of times a second under load).
    fn find(&self, position: u64) -> Kept {
        let map = self.map();
        let past_end = map.last_key_value().is_none_or(|(_, newest)| position > to_u64(newest.last_position));
        if past_end {
            let writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
            return if writing.as_ref().is_some_and(|w| w.contains(&position)) { Kept::Writing } else { Kept::PastEnd };
        }
        match map.range(..=position).next_back() {
            Some((_, commit)) if to_u64(commit.last_position) >= position => Kept::Holding(commit.clone()),
            _ => Kept::Gap,
        }
    }

    /// Whether a kept commit ends at `position`: then the next commit starts right after it.
    fn ends_at(&self, position: u64) -> bool {
        let map = self.map();
        map.range(..=position).next_back().is_some_and(|(_, c)| to_u64(c.last_position) == position)
    }

    /// The last position of the newest kept commit (0 when none is kept).
    fn end(&self) -> u64 {
        self.map().last_key_value().map_or(0, |(_, c)| to_u64(c.last_position))
    }
}

/// What [`Recent`] holds of a position.
enum Kept {
    /// This kept commit holds it.
    Holding(Arc<Commit>),
    /// Some kept commit lies after it, none holds it: another process's commit, or one let go.
    Gap,
    /// It lies after every kept commit, in what this process's writer is inserting: the log ends
    /// here until the writer keeps it.
    Writing,
    /// It lies after every kept commit.
    PastEnd,
}

/// When a reader last looked in `commits` past the end of every commit this process knows. On
/// FerretDB even an `_id` equality costs time in proportion to the collection (0.6 s at 40,000
/// commits here), and the relay reaches the end of the log after every drain: looking each time
/// kept FerretDB busy with nothing to find. A reader at that end reads the one-document
/// `log_head` hint instead (cheap at any size) and looks in `commits` only when the hint is past
/// its end (another process wrote and published it), or when no look confirmed an end within the
/// probe interval, which finds the commits of a writer that stopped before publishing its hint.
/// The interval is [`END_PROBE_INTERVAL`], or [`END_PROBE_SPACING`] times what the last look
/// took when that is longer (at most [`MAX_END_PROBE_INTERVAL`]): on MongoDB a look costs a
/// millisecond and happens once a second; on FerretDB looking never takes more than a hundredth
/// of its time, however long the log. A walk over commits it finds is never slowed: only a
/// confirmed end is trusted for a while.
#[derive(Default)]
struct EndProbes {
    state: Mutex<ProbeState>,
}

#[derive(Default)]
struct ProbeState {
    /// The last end a look in `commits` confirmed (nothing after it), and when.
    confirmed: Option<(u64, std::time::Instant)>,
    /// How long that look took.
    took: Duration,
}

impl ProbeState {
    /// How long a confirmed end is trusted.
    fn interval(&self) -> Duration {
        (self.took * END_PROBE_SPACING).clamp(END_PROBE_INTERVAL, MAX_END_PROBE_INTERVAL)
    }
}

impl EndProbes {
    /// Whether a reader at `end`, the end of everything this process knows, should look in
    /// `commits` for the commit after it, given the published `hint`: unless the hint is not past
    /// it and a look confirmed an end at or before it lately (what lies between is this
    /// process's own commits, which it knows). A reader told to look has the look to itself:
    /// the others trust `end` until the interval has passed again.
    fn due(&self, end: u64, hint: u64) -> bool {
        if hint > end {
            return true;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let interval = state.interval();
        if state.confirmed.is_some_and(|(at, when)| at <= end && when.elapsed() < interval) {
            return false;
        }
        // This reader looks; the others trust `end` meanwhile. On FerretDB a look at a long log
        // takes seconds, and every reader that came by during it looked too.
        state.confirmed = Some((end, std::time::Instant::now()));
        true
    }

    /// A look found a commit: the reader walks on, and so may the others.
    fn found(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).confirmed = None;
    }

    /// A look in `commits` that started at `started` found nothing after `end`.
    fn confirm(&self, end: u64, started: std::time::Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = ProbeState { confirmed: Some((end, std::time::Instant::now())), took: started.elapsed() };
    }
}

/// An append waiting for the writer; the answer is its first position.
struct PendingAppend {
    commit: Commit,
    reply: oneshot::Sender<Result<u64, Refusal>>,
}

/// Why the writer did not commit an append.
enum Refusal {
    /// The stream already has a commit at this version.
    Conflict,
    Failed(String),
}

/// A relay lease as stored.
struct Lease {
    epoch: i64,
    owner: String,
    expires_at: i64,
}

/// The MongoDB event store.
pub struct MongoEventStore {
    commits: Collection<Commit>,
    /// The same collection, untyped, for queries that return only some fields.
    raw: Collection<Document>,
    log_head: Collection<Document>,
    /// The relay's position: one document, `_id` [`RELAY`].
    relay: Collection<Document>,
    /// The relay's leases: one document per epoch (`_id`), with `owner` and `expires_at`.
    relay_leases: Collection<Document>,
    /// Appends go to the writer task.
    writer: mpsc::Sender<PendingAppend>,
    /// Per stream (`type\0id`), the last version a commit of it was seen to end at.
    known: Mutex<LruCache<String, u64>>,
    /// Published after each append; other processes' appends reach it by polling (FerretDB has
    /// no change streams).
    head: LogHead,
    /// The commits written or read last (shared with the writer).
    recent: Arc<Recent>,
    /// When a reader last looked past the end it knew.
    probes: EndProbes,
    /// Single commits read of the log by `_id` (see [`Self::commits_looked_up`]).
    looked_up: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for MongoEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoEventStore").field("database", &self.commits.namespace().db).finish_non_exhaustive()
    }
}

impl MongoEventStore {
    /// How many single commits reads of the log have looked up in `commits` by `_id` so far (on
    /// FerretDB each one is a scan): a reader of this process's own commits should need none.
    /// For tests and diagnostics.
    pub fn commits_looked_up(&self) -> u64 {
        self.looked_up.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Open the store at a `mongodb://…` URL: connect, create the indexes if they are missing and
    /// start the writer task (it stops when the store is dropped).
    pub async fn open(url: &str) -> Result<Self, EventStoreError> {
        if url.starts_with("mongodb+srv:") {
            return Err(EventStoreError::Unsupported(
                "--event-store: mongodb+srv:// URLs need DNS SRV lookups, which this build leaves out; \
                 list the hosts in a mongodb:// URL instead"
                    .into(),
            ));
        }
        // The message names the setting, not the URL, which may hold a password.
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(|e| EventStoreError::Unsupported(format!("--event-store: not a valid MongoDB URL: {e}")))?;
        options.app_name.get_or_insert_with(|| "sluice".to_owned());
        // Fail start-up within seconds when the server is down, not after the driver's 30 s.
        options.server_selection_timeout.get_or_insert(Duration::from_secs(10));
        let database = options.default_database.clone().unwrap_or_else(|| "sluice".to_owned());
        let client = Client::with_options(options)?;
        let db = client.database(&database);
        // The first design took positions from a counter; its documents do not read as commits.
        let counters = db.collection::<Document>("counters");
        if counters.find_one(doc! { "_id": "global_position" }).await?.is_some() {
            return Err(EventStoreError::Unsupported(format!(
                "--event-store: database {database:?} holds an event store written by an earlier Sluice \
                 (positions from a counter), which this version cannot read; use a new database"
            )));
        }
        let commits: Collection<Commit> = db.collection("commits");
        let stream = IndexModel::builder()
            .keys(doc! { "aggregate_type": 1, "aggregate_id": 1, "start": 1 })
            .options(IndexOptions::builder().unique(true).name("stream".to_owned()).build())
            .build();
        commits.create_index(stream).await?;
        let log = IndexModel::builder()
            .keys(doc! { "last_position": 1 })
            .options(IndexOptions::builder().name("log".to_owned()).build())
            .build();
        commits.create_index(log).await?;

        let (hint, hints) = watch::channel(0);
        let log_head: Collection<Document> = db.collection("log_head");
        tokio::spawn(publish_hints(log_head.clone(), hints));
        let (writer, queue) = mpsc::channel(QUEUE);
        let recent = Arc::new(Recent::default());
        let task = Writer {
            commits: commits.clone(),
            raw: db.collection("commits"),
            log_head: log_head.clone(),
            next: None,
            hint,
            recent: recent.clone(),
        };
        tokio::spawn(task.run(queue));
        Ok(Self {
            raw: db.collection("commits"),
            commits,
            log_head,
            relay: db.collection("relay"),
            relay_leases: db.collection("relay_leases"),
            writer,
            known: Mutex::new(LruCache::new(KNOWN_STREAMS)),
            head: LogHead::default(),
            recent,
            probes: EndProbes::default(),
            looked_up: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn known_version(&self, key: &str) -> Option<u64> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner).get(key).copied()
    }

    /// Remember that a commit of the stream ends at `version`: a later append there needs no read.
    fn remember(&self, key: String, version: u64) {
        if version > 0 {
            self.known.lock().unwrap_or_else(PoisonError::into_inner).put(key, version);
        }
    }

    /// The newest relay lease, if any.
    async fn current_lease(&self) -> Result<Option<Lease>, EventStoreError> {
        let newest = self.relay_leases.find_one(doc! {}).sort(doc! { "_id": -1 }).await?;
        Ok(newest.map(|d| Lease {
            epoch: number(d.get("_id")).unwrap_or(0),
            owner: d.get_str("owner").unwrap_or_default().to_owned(),
            expires_at: number(d.get("expires_at")).unwrap_or(0),
        }))
    }
}

/// The task that gives out positions and writes commits (see the module documentation).
struct Writer {
    commits: Collection<Commit>,
    raw: Collection<Document>,
    log_head: Collection<Document>,
    /// The next free position, when known.
    next: Option<u64>,
    /// The last position written, for the `log_head` hint.
    hint: watch::Sender<u64>,
    /// Where committed appends are handed to this process's readers of the log.
    recent: Arc<Recent>,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<PendingAppend>) {
        while let Some(first) = queue.recv().await {
            let mut group = vec![first];
            while group.len() < GROUP {
                match queue.try_recv() {
                    Ok(pending) => group.push(pending),
                    Err(_) => break,
                }
            }
            self.write(group).await;
        }
    }

    /// Commit `group`, or refuse each append in it; answers every one.
    async fn write(&mut self, group: Vec<PendingAppend>) {
        self.write_placed(group).await;
        self.recent.writing(None);
    }

    async fn write_placed(&mut self, mut group: Vec<PendingAppend>) {
        let mut clashes = 0;
        while !group.is_empty() {
            let next = match self.next {
                Some(next) => next,
                None => match log_end(&self.raw, &self.log_head, &self.recent).await {
                    Ok(end) => end + 1,
                    Err(e) => return fail(group, &e.to_string()),
                },
            };
            let mut position = next;
            for pending in &mut group {
                pending.commit.place(position);
                position += pending.commit.events.len() as u64;
            }
            self.recent.writing(Some(next..position));
            let failed = match self.commits.insert_many(group.iter().map(|p| &p.commit)).ordered(true).await {
                Ok(_) => None,
                Err(e) => match first_failed(&e) {
                    Some(failed) => Some((failed.min(group.len()), e)),
                    None => {
                        // Unknown fate: learn the log's end afresh before the next insert.
                        self.next = None;
                        return fail(group, &e.to_string());
                    }
                },
            };
            let Some((failed, error)) = failed else {
                self.committed(group, position);
                return;
            };
            let mut rest = group.split_off(failed);
            let resume = rest.first().map_or(position, |p| to_u64(p.commit.first_position));
            self.next = Some(resume);
            self.committed(group, resume);
            let Some(blocked) = rest.first() else { return };
            if !is_duplicate_key(&error) {
                let blocked = rest.remove(0);
                let _ = blocked.reply.send(Err(Refusal::Failed(error.to_string())));
                group = rest;
                continue;
            }
            // Someone holds the position, or the stream's version: which one, the `_id` says.
            match self.commits.find_one(doc! { "_id": &blocked.commit.id }).await {
                Ok(Some(taken)) => {
                    clashes += 1;
                    if clashes > MAX_CLASHES {
                        let error = format!("the log's end kept moving: {MAX_CLASHES} positions in a row were taken");
                        return fail(rest, &error);
                    }
                    let mut next = to_u64(taken.last_position) + 1;
                    if clashes > 1 {
                        // Another process is writing fast: jump to its last published end.
                        if let Ok(hint) = read_hint(&self.log_head).await {
                            next = next.max(hint + 1);
                        }
                    }
                    self.next = Some(next);
                }
                Ok(None) => {
                    let lost = rest.remove(0);
                    let _ = lost.reply.send(Err(Refusal::Conflict));
                }
                Err(e) => {
                    self.next = None;
                    return fail(rest, &e.to_string());
                }
            }
            group = rest;
        }
    }

    /// The appends in `group` were committed and `next` is the next free position.
    fn committed(&mut self, group: Vec<PendingAppend>, next: u64) {
        if group.is_empty() {
            return;
        }
        self.next = Some(next);
        // Kept before anyone hears of them: a reader woken by the hint or by an answer finds
        // the commits in memory instead of asking the database for them.
        let replies: Vec<_> = group
            .into_iter()
            .map(|pending| {
                let first = to_u64(pending.commit.first_position);
                self.recent.keep(Arc::new(pending.commit));
                (pending.reply, first)
            })
            .collect();
        self.hint.send_replace(next - 1);
        for (reply, first) in replies {
            let _ = reply.send(Ok(first));
        }
    }
}

fn fail(group: Vec<PendingAppend>, error: &str) {
    for pending in group {
        let _ = pending.reply.send(Err(Refusal::Failed(error.to_owned())));
    }
}

/// The index of the first document an ordered insert did not write, if the error says.
fn first_failed(e: &MongoError) -> Option<usize> {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(failure) => failure.write_errors.as_ref()?.iter().map(|w| w.index).min(),
        ErrorKind::Write(WriteFailure::WriteError(_)) => Some(0),
        _ => None,
    }
}

/// Keep the `log_head` hint near the log's end (best effort: a stale hint costs readers a few
/// more steps, never a wrong answer).
async fn publish_hints(log_head: Collection<Document>, mut ends: watch::Receiver<u64>) {
    while ends.changed().await.is_ok() {
        let end = *ends.borrow_and_update();
        let raise = doc! { "$max": { "last_position": to_i64(end) } };
        match log_head.update_one(doc! { "_id": LOG_HEAD }, raise).upsert(true).await {
            Ok(_) => {}
            // Two processes created the hint at once; the next update raises it.
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => tracing::debug!("cannot update the log's end hint: {e}"),
        }
        tokio::time::sleep(HINT_INTERVAL).await;
    }
}

async fn read_hint(log_head: &Collection<Document>) -> Result<u64, EventStoreError> {
    let hint = log_head.find_one(doc! { "_id": LOG_HEAD }).await?;
    Ok(hint.as_ref().and_then(|d| number(d.get("last_position"))).map_or(0, to_u64))
}

/// The log's last position (0 when empty): from the hint or the newest commit this process
/// knows, whichever is further, step over newer commits (kept ones, then by `_id`).
async fn log_end(
    raw: &Collection<Document>,
    log_head: &Collection<Document>,
    recent: &Recent,
) -> Result<u64, EventStoreError> {
    let mut end = read_hint(log_head).await?.max(recent.end());
    for _ in 0..HEAD_STEPS {
        if let Some(kept) = recent.holding(end + 1) {
            end = to_u64(kept.last_position);
            continue;
        }
        let next = raw.find_one(doc! { "_id": position_id(end + 1) }).projection(doc! { "last_position": 1 }).await?;
        match next.as_ref().and_then(|d| number(d.get("last_position"))) {
            Some(last) => end = to_u64(last),
            None => return Ok(end),
        }
    }
    let newest = raw.find_one(doc! {}).sort(doc! { "_id": -1 }).projection(doc! { "last_position": 1 }).await?;
    Ok(end.max(newest.as_ref().and_then(|d| number(d.get("last_position"))).map_or(0, to_u64)))
}

fn stream_key(aggregate_type: &str, aggregate_id: &str) -> String {
    format!("{aggregate_type}\0{aggregate_id}")
}

#[async_trait::async_trait]
impl EventStore for MongoEventStore {
    async fn append(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, EventStoreError> {
        let key = stream_key(aggregate_type, aggregate_id);
        // The unique index decides races only at versions where a commit ends (see above).
        let at_a_boundary = expected_version == 0 || self.known_version(&key) == Some(expected_version);
        if !at_a_boundary || events.is_empty() {
            let actual = self.stream_version(aggregate_type, aggregate_id).await?;
            if actual != expected_version {
                return Err(EventStoreError::Conflict { expected: expected_version, actual });
            }
            if events.is_empty() {
                return Ok(Appended::nothing(actual));
            }
        }
        let count = events.len() as u64;
        let recorded_at = now();
        let appended_at = recorded_at.clone();
        let commit = Commit {
            id: String::new(),
            first_position: 0,
            last_position: 0,
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            start: to_i64(expected_version + 1),
            end: to_i64(expected_version + count),
            events: events
                .iter()
                .zip(expected_version + 1..)
                .map(|(event, version)| EventDocument {
                    version: to_i64(version),
                    position: 0,
                    event_type: event.event_type.clone(),
                    schema_version: i64::from(event.schema_version),
                    data: event.data.clone(),
                    recorded_at: recorded_at.clone(),
                })
                .collect(),
            recorded_at,
        };
        let (reply, answer) = oneshot::channel();
        let stopped = || EventStoreError::Backend("the event store's writer task stopped".into());
        self.writer.send(PendingAppend { commit, reply }).await.map_err(|_| stopped())?;
        match answer.await.map_err(|_| stopped())? {
            Ok(first) => {
                self.remember(key, expected_version + count);
                self.head.advanced(first + count - 1);
                Ok(Appended {
                    version: expected_version + count,
                    positions: (first..first + count).collect(),
                    recorded_at: appended_at,
                })
            }
            Err(Refusal::Conflict) => {
                let actual = self.stream_version(aggregate_type, aggregate_id).await?;
                Err(EventStoreError::Conflict { expected: expected_version, actual })
            }
            Err(Refusal::Failed(e)) => Err(EventStoreError::Backend(e)),
        }
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let until = to_version.unwrap_or(u64::MAX);
        let filter = doc! {
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "end": { "$gt": to_i64(after_version) },
            "start": { "$lte": to_i64(until) },
        };
        let mut cursor = self.commits.find(filter).sort(doc! { "start": 1 }).await?;
        let mut stored = Vec::new();
        while cursor.advance().await? {
            let commit = cursor.deserialize_current()?;
            for event in &commit.events {
                let version = to_u64(event.version);
                if version > after_version && version <= until {
                    stored.push(to_stored(&commit, event)?);
                }
            }
        }
        // Read to the end, whole commits: the last version is where a commit ends.
        if let (None, Some(last)) = (to_version, stored.last()) {
            self.remember(stream_key(aggregate_type, aggregate_id), last.version);
        }
        Ok(stored)
    }

    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, EventStoreError> {
        let limit = limit as usize;
        let mut events = Vec::new();
        // Every event up to `at` has been read (or was not asked for).
        let mut at = after;
        // Whether a commit ends at `at`, so that the next one, if any, has `_id` `at + 1`.
        let mut boundary = at == 0 || self.recent.ends_at(at);
        let mut lookups = 0;
        let mut hint = None;
        while events.len() < limit {
            let past_end = match self.recent.find(at + 1) {
                Kept::Holding(kept) => {
                    boundary = take(&kept, &mut at, &mut events, limit)?;
                    continue;
                }
                Kept::Writing => break,
                Kept::Gap => false,
                Kept::PastEnd => true,
            };
            if boundary && lookups < WALK {
                if past_end {
                    let published = match hint {
                        Some(published) => published,
                        None => *hint.insert(read_hint(&self.log_head).await?),
                    };
                    // What this process's writer kept or began while the hint was being read
                    // is taken from memory or waited for, never looked up.
                    match self.recent.find(at + 1) {
                        Kept::Holding(_) => continue,
                        Kept::Writing => break,
                        Kept::Gap | Kept::PastEnd => {}
                    }
                    if !self.probes.due(at, published) {
                        break;
                    }
                }
                lookups += 1;
                self.looked_up.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let started = std::time::Instant::now();
                // Commits tile the log: none at `at + 1` means the log ends at `at`.
                let Some(next) = self.commits.find_one(doc! { "_id": position_id(at + 1) }).await? else {
                    self.probes.confirm(at, started);
                    break;
                };
                if past_end {
                    self.probes.found();
                }
                let next = Arc::new(next);
                self.recent.keep(next.clone());
                boundary = take(&next, &mut at, &mut events, limit)?;
                continue;
            }
            // Inside a commit this process does not know, or far behind the end: read by range.
            // Each commit holds at least one event, so `wanted` commits are enough.
            let wanted = u32::try_from(limit - events.len()).unwrap_or(PAGE).min(PAGE);
            let mut cursor = self
                .commits
                .find(doc! { "last_position": { "$gt": to_i64(at) } })
                .sort(doc! { "last_position": 1 })
                .limit(i64::from(wanted))
                .await?;
            let mut fetched = 0;
            while cursor.advance().await? {
                let commit = Arc::new(cursor.deserialize_current()?);
                fetched += 1;
                self.recent.keep(commit.clone());
                boundary = take(&commit, &mut at, &mut events, limit)?;
            }
            if fetched < wanted {
                break;
            }
        }
        Ok(events)
    }

    async fn schema_counts(&self, through: u64) -> Result<Vec<SchemaCount>, EventStoreError> {
        // Counted here rather than by a `$group` stage: FerretDB drops top-level fields from a
        // group key once `$unwind` has run. A scan either way, and only once per process: the
        // census follows the log after that.
        let mut counts: std::collections::BTreeMap<(String, String, u32), u64> = std::collections::BTreeMap::new();
        let mut cursor = self.commits.find(doc! {}).await?;
        while cursor.advance().await? {
            let commit = cursor.deserialize_current()?;
            for event in commit.events.iter().filter(|event| to_u64(event.position) <= through) {
                let schema_version = u32::try_from(event.schema_version).map_err(|_| {
                    EventStoreError::Backend(format!("schema version {} out of range", event.schema_version))
                })?;
                let key = (commit.aggregate_type.clone(), event.event_type.clone(), schema_version);
                *counts.entry(key).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|((aggregate_type, event_type, schema_version), count)| SchemaCount {
                aggregate_type,
                event_type,
                schema_version,
                count,
            })
            .collect())
    }

    async fn head_position(&self) -> Result<u64, EventStoreError> {
        let started = std::time::Instant::now();
        let end = log_end(&self.raw, &self.log_head, &self.recent).await?;
        self.probes.confirm(end, started);
        Ok(end)
    }

    async fn known_head(&self) -> Result<u64, EventStoreError> {
        // The hint and this process's own commits; `commits` only when a reader at that end
        // would look there too.
        let hint = read_hint(&self.log_head).await?;
        let end = hint.max(self.recent.end());
        if self.probes.due(end, hint) { self.head_position().await } else { Ok(end) }
    }

    fn log_head(&self) -> &LogHead {
        &self.head
    }

    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64, EventStoreError> {
        let latest = self
            .raw
            .find_one(doc! { "aggregate_type": aggregate_type, "aggregate_id": aggregate_id })
            .sort(doc! { "start": -1 })
            .projection(doc! { "end": 1 })
            .await?;
        let version = latest.as_ref().and_then(|d| number(d.get("end"))).map_or(0, to_u64);
        self.remember(stream_key(aggregate_type, aggregate_id), version);
        Ok(version)
    }

    async fn claim_relay(&self, owner: &str, lease: Duration) -> Result<Option<u64>, EventStoreError> {
        let (now, expires_at) = super::lease_expiry(lease);
        let epoch = match self.current_lease().await? {
            Some(current) if current.owner == owner => {
                let renew = doc! { "$set": { "expires_at": expires_at } };
                self.relay_leases.update_one(doc! { "_id": current.epoch, "owner": owner }, renew).await?;
                return Ok(Some(self.relay_position().await?));
            }
            Some(current) if current.expires_at >= now => return Ok(None),
            Some(current) => current.epoch + 1,
            None => 1,
        };
        // A new epoch is a new document: of two claimants, the unique `_id` lets one win.
        match self.relay_leases.insert_one(doc! { "_id": epoch, "owner": owner, "expires_at": expires_at }).await {
            Ok(_) => Ok(Some(self.relay_position().await?)),
            Err(e) if is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn save_relay_position(&self, owner: &str, position: u64, lease: Duration) -> Result<bool, EventStoreError> {
        let (_, expires_at) = super::lease_expiry(lease);
        let Some(current) = self.current_lease().await?.filter(|c| c.owner == owner) else { return Ok(false) };
        // Saved positions only ever grow and were acknowledged by the bus, so a relay that loses
        // its lease between the check and this write still saves a true position.
        self.relay
            .update_one(doc! { "_id": RELAY }, doc! { "$max": { "position": to_i64(position) } })
            .upsert(true)
            .await?;
        self.relay_leases
            .update_one(doc! { "_id": current.epoch, "owner": owner }, doc! { "$set": { "expires_at": expires_at } })
            .await?;
        Ok(true)
    }

    async fn relay_position(&self) -> Result<u64, EventStoreError> {
        let relay = self.relay.find_one(doc! { "_id": RELAY }).await?;
        Ok(relay.as_ref().and_then(|d| number(d.get("position"))).map_or(0, to_u64))
    }
}

impl From<MongoError> for EventStoreError {
    fn from(e: MongoError) -> Self {
        Self::Backend(e.to_string())
    }
}

fn is_duplicate_key(e: &MongoError) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(many) => {
            many.write_errors.as_ref().is_some_and(|errors| errors.iter().any(|w| w.code == DUPLICATE_KEY))
        }
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// Append `commit`'s events after `at` to `events`, up to `limit` of them, and move `at` to the
/// last one taken. Returns whether `at` is then the commit's end.
fn take(commit: &Commit, at: &mut u64, events: &mut Vec<StoredEvent>, limit: usize) -> Result<bool, EventStoreError> {
    let from = *at;
    for event in commit.events.iter().filter(|e| to_u64(e.position) > from) {
        if events.len() >= limit {
            break;
        }
        events.push(to_stored(commit, event)?);
        *at = to_u64(event.position);
    }
    Ok(*at == to_u64(commit.last_position))
}

fn to_stored(commit: &Commit, event: &EventDocument) -> Result<StoredEvent, EventStoreError> {
    let schema_version = u32::try_from(event.schema_version).map_err(|_| {
        EventStoreError::Backend(format!("commit at position {}: schema_version out of range", commit.first_position))
    })?;
    Ok(StoredEvent {
        aggregate_type: commit.aggregate_type.clone(),
        aggregate_id: commit.aggregate_id.clone(),
        version: to_u64(event.version),
        global_position: to_u64(event.position),
        event_type: event.event_type.clone(),
        schema_version,
        data: event.data.clone(),
        recorded_at: event.recorded_at.clone(),
    })
}

/// An integer field, whichever BSON width it was stored with.
fn number(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(n) => Some(*n),
        Bson::Int32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The behaviour against a real server is tested in `host/tests/mongodb_event_store.rs`.

    #[test]
    fn looks_past_the_end_are_spaced_by_what_they_cost() {
        let probes = EndProbes::default();
        assert!(probes.due(10, 0), "nothing confirmed yet");
        assert!(!probes.due(10, 0), "one look at a time");
        let now = std::time::Instant::now();
        probes.confirm(10, now);
        assert!(!probes.due(10, 10), "a cheap look is trusted for a second");
        assert!(!probes.due(12, 12), "what lies past a confirmed end is this process's own");
        assert!(probes.due(10, 11), "a hint past the end is looked into at once");
        assert!(probes.due(9, 9), "an end before the confirmed one is not confirmed");

        // A look that took half a second is trusted for fifty (a hundred times as long).
        let costly = EndProbes::default();
        costly.confirm(10, now - Duration::from_millis(500));
        let interval = costly.state.lock().expect("lock").interval();
        assert!(interval >= Duration::from_secs(50) && interval < Duration::from_secs(51), "{interval:?}");
        // And one that took an hour, for ten minutes at most.
        let endless = EndProbes::default();
        endless.confirm(10, now - Duration::from_secs(3600));
        assert_eq!(endless.state.lock().expect("lock").interval(), MAX_END_PROBE_INTERVAL);
    }

    #[test]
    fn what_the_writer_is_inserting_ends_the_log_until_it_is_kept() {
        let recent = Recent::default();
        let events = (1..=2)
            .map(|version| EventDocument {
                version,
                position: 0,
                event_type: "E".into(),
                schema_version: 1,
                data: "{}".into(),
                recorded_at: now(),
            })
            .collect();
        let mut commit = Commit {
            id: String::new(),
            first_position: 0,
            last_position: 0,
            aggregate_type: "T".into(),
            aggregate_id: "a".into(),
            start: 1,
            end: 2,
            recorded_at: now(),
            events,
        };
        assert!(matches!(recent.find(1), Kept::PastEnd));
        recent.writing(Some(1..3));
        assert!(matches!(recent.find(1), Kept::Writing));
        assert!(matches!(recent.find(3), Kept::PastEnd));
        commit.place(1);
        recent.keep(Arc::new(commit));
        recent.writing(None);
        assert!(matches!(recent.find(2), Kept::Holding(_)));
        assert!(matches!(recent.find(3), Kept::PastEnd));
    }

    #[tokio::test]
    async fn urls_it_cannot_use_are_refused_before_connecting() {
        for url in ["mongodb+srv://cluster.example/sluice", "mongodb://", "mongodb://host:notaport/sluice"] {
            let opened = MongoEventStore::open(url).await;
            assert!(matches!(opened, Err(EventStoreError::Unsupported(_))), "{url}: {opened:?}");
        }
    }

    #[test]
    fn integers_are_read_in_either_width() {
        assert_eq!(number(Some(&Bson::Int32(7))), Some(7));
        assert_eq!(number(Some(&Bson::Int64(1 << 40))), Some(1 << 40));
        assert_eq!(number(Some(&Bson::Double(1.0))), None);
        assert_eq!(number(None), None);
    }
}
