//! The scale-out event store: MongoDB (tested against FerretDB), one document per commit.
//!
//! FerretDB has neither multi-document transactions nor change streams, so this backend keeps the
//! [`EventStore`] contract with single-document writes, unique indexes and a counter document.
//!
//! **Documents.** The `commits` collection holds one document per append: `_id` is the commit's
//! first global position; then `aggregate_type`, `aggregate_id`, `start` and `end` (its first and
//! last stream version), `last_position`, `recorded_at` and `events`, each with `version`,
//! `position`, `event_type`, `schema_version`, `data` (JSON text) and `recorded_at`. A unique index
//! covers (aggregate_type, aggregate_id, start). The `counters` collection holds the global
//! position counter; `position_claims` holds one document per position handed out (`_id`), because
//! FerretDB's `$inc` is not atomic: a position is an appender's only once its unique insert there
//! succeeded. The relay's saved position is the `relay` document of `relay`; its lease is
//! the newest document of `relay_leases` (`_id` = epoch, `owner`, `expires_at` in Unix ms): a
//! claimant of an expired lease inserts the next epoch, so the unique `_id` picks one winner
//! without relying on an atomic conditional update. The database is the URL's path (`mongodb://host:27017/sluice`), `sluice` when
//! it names none; indexes and the counter are created on open, idempotently.
//!
//! **Atomic batches.** A batch is one document and a single insert is atomic, so a crash never
//! leaves half a batch.
//!
//! **Optimistic concurrency.** An appender first reads the stream's current version E (the `end` of
//! its latest commit) and refuses unless E equals the expected version; it then inserts
//! `start = E + 1`. Commits tile versions 1..N without gaps, so a new commit overlaps an existing
//! one exactly when their `start`s are equal: the unique index turns a lost race into a
//! duplicate-key error (11000), reported as [`EventStoreError::Conflict`] with the version re-read.
//!
//! **Global order.** Positions are allocated from the counter (`$inc` by the batch size) before the
//! insert, so a commit holding lower positions can become visible after one holding higher
//! positions. [`EventStore::read_all`] must not skip it:
//!
//! - A reader walks the commits by `_id` from its position. When the next position is missing
//!   while later ones are visible (a *gap*), it returns the events before the gap; if there are
//!   none, it polls until the gap fills, for at most [`Timing::gap_timeout`] (2 s).
//! - A gap that outlives that bound belongs to an appender that crashed or stalled between
//!   allocating and inserting. The reader *closes* it: it inserts an empty placeholder document at
//!   each missing position, in ascending order, stopping at the first position that is already
//!   taken. The stalled commit, if it ever arrives, now fails on `_id` (a placeholder holds its
//!   first position); its appender, finding the stream version unchanged, allocates fresh
//!   positions and tries again. Which of the two a position holds is decided by the database, so
//!   every reader sees the same log and none skips an event that lands later. No placeholder
//!   lies inside a commit's range: a reader places one only after taking every lower position of
//!   the gap, so had it reached a commit's later positions it would hold the commit's first one and
//!   the commit could never land. The document with the highest `_id` at or below a position is
//!   therefore the only commit that can hold it (how a read resumes inside a batch).
//! - An appender gives up on its positions when its insert lost a race, or when they are older
//!   than [`Timing::max_allocation_age`] (1 s) just before the insert: it then fills them with one
//!   placeholder at once so that readers need not wait, and (in the second case) allocates fresh
//!   ones. Keeping the allocation age below the gap timeout means readers never pre-empt an
//!   appender that is merely slow; the placeholders keep the log safe when even that fails (a
//!   stalled network, a paused process).
//!
//! Placeholders have a null aggregate type and id, so stream reads never see them.
//! [`EventStore::head_position`] is the last position of the newest commit that holds events;
//! positions below it may still be in flight for up to the gap timeout.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::mongodb::bson::{Bson, Document, doc};
use ::mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use ::mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use ::mongodb::{Client, Collection, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{Appended, EventStore, EventStoreError, NewEvent, StoredEvent, to_i64, to_u64};

/// The `_id` of the global position counter in `counters`.
const POSITION_COUNTER: &str = "global_position";
/// Tries to claim a range of positions before an append gives up.
const CLAIM_ATTEMPTS: u32 = 200;
/// The `_id` of the relay's document in `relay`.
const RELAY: &str = "relay";
/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// How many fresh position ranges one append tries before it reports a failure.
const APPEND_ATTEMPTS: u32 = 5;
/// The most commits one read fetches at a time.
const PAGE: u32 = 1000;

/// The protocol's time bounds (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a reader waits for a missing position, while later ones are visible, before it
    /// closes the gap.
    pub gap_timeout: Duration,
    /// How old an allocation of positions may be when its insert is sent; an older one is given
    /// up and a fresh one allocated. Keep it below `gap_timeout`.
    pub max_allocation_age: Duration,
    /// How often a reader looks again while it waits for a gap to fill.
    pub poll_interval: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            gap_timeout: Duration::from_secs(2),
            max_allocation_age: Duration::from_secs(1),
            poll_interval: Duration::from_millis(20),
        }
    }
}

/// One document of `commits`: an appended batch, or a placeholder for positions that hold nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Commit {
    /// The first global position the document covers.
    #[serde(rename = "_id")]
    first_position: i64,
    /// `None` for a placeholder.
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
    /// First stream version (a placeholder's first position, which keeps the unique stream index
    /// satisfied).
    start: i64,
    /// Last stream version (0 for a placeholder).
    end: i64,
    last_position: i64,
    recorded_at: String,
    #[serde(default)]
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
    fn placeholder(first: u64, last: u64) -> Self {
        Self {
            first_position: to_i64(first),
            aggregate_type: None,
            aggregate_id: None,
            start: to_i64(first),
            end: 0,
            last_position: to_i64(last),
            recorded_at: now(),
            events: Vec::new(),
        }
    }
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
    counters: Collection<Document>,
    /// One document per allocated position (`_id`): the unique insert that makes it ours.
    claims: Collection<Document>,
    /// Appenders of this process take positions one at a time, so they never clash with each
    /// other over a counter that FerretDB does not update atomically; only other hosts can.
    allocating: tokio::sync::Mutex<()>,
    /// The relay's position: one document, `_id` [`RELAY`].
    relay: Collection<Document>,
    /// The relay's leases: one document per epoch (`_id`), with `owner` and `expires_at`.
    relay_leases: Collection<Document>,
    timing: Timing,
    hold: Mutex<Option<Hold>>,
}

impl std::fmt::Debug for MongoEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoEventStore")
            .field("database", &self.commits.namespace().db)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl MongoEventStore {
    /// Open the store at a `mongodb://…` URL with the default [`Timing`].
    pub async fn open(url: &str) -> Result<Self, EventStoreError> {
        Self::open_with(url, Timing::default()).await
    }

    /// Open the store at a `mongodb://…` URL: connect, create the indexes and the position counter
    /// if they are missing.
    pub async fn open_with(url: &str, timing: Timing) -> Result<Self, EventStoreError> {
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
        let store = Self {
            commits: db.collection("commits"),
            raw: db.collection("commits"),
            counters: db.collection("counters"),
            claims: db.collection("position_claims"),
            allocating: tokio::sync::Mutex::new(()),
            relay: db.collection("relay"),
            relay_leases: db.collection("relay_leases"),
            timing,
            hold: Mutex::new(None),
        };
        let stream = IndexModel::builder()
            .keys(doc! { "aggregate_type": 1, "aggregate_id": 1, "start": 1 })
            .options(IndexOptions::builder().unique(true).name("stream".to_owned()).build())
            .build();
        store.commits.create_index(stream).await?;
        store.seed_counter().await?;
        Ok(store)
    }

    /// Create the position counter if it is missing, and make sure it is not behind the log (a
    /// counter lost or restored from an older backup would otherwise hand out used positions).
    async fn seed_counter(&self) -> Result<(), EventStoreError> {
        let newest =
            self.raw.find_one(doc! {}).sort(doc! { "_id": -1 }).projection(doc! { "last_position": 1 }).await?;
        let used = newest.as_ref().and_then(|d| number(d.get("last_position"))).unwrap_or(0);
        match self.counters.insert_one(doc! { "_id": POSITION_COUNTER, "value": used }).await {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
        self.counters.update_one(doc! { "_id": POSITION_COUNTER }, doc! { "$max": { "value": used } }).await?;
        Ok(())
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

    /// Take `count` positions from the counter: the first of them and when the request was sent.
    async fn allocate(&self, count: u64) -> Result<(u64, Instant), EventStoreError> {
        let _one_at_a_time = self.allocating.lock().await;
        let sent = Instant::now();
        let counter = self
            .counters
            .find_one_and_update(doc! { "_id": POSITION_COUNTER }, doc! { "$inc": { "value": to_i64(count) } })
            .return_document(ReturnDocument::After)
            .await?;
        let Some(value) = counter.as_ref().and_then(|d| number(d.get("value"))) else {
            return Err(EventStoreError::Backend(format!(
                "the position counter ({POSITION_COUNTER:?} in `counters`) is missing or not an integer"
            )));
        };
        let mut first = match (to_u64(value) + 1).checked_sub(count) {
            Some(first) if first > 0 => first,
            _ => return Err(EventStoreError::Backend(format!("the position counter is at {value}, below {count}"))),
        };
        // FerretDB applies `$inc` as a read then a write, so two appenders may be handed the same
        // positions. Each position is therefore claimed by a unique insert, which the database
        // does decide: only a range claimed whole is ours. After a clash the next try starts
        // past the newest claim; each round has a winner, and a short random pause spreads the
        // losers out.
        for attempt in 0..CLAIM_ATTEMPTS {
            let last = first + count - 1;
            let claims: Vec<Document> = (first..=last).map(|p| doc! { "_id": to_i64(p) }).collect();
            match self.claims.insert_many(claims).ordered(true).await {
                Ok(_) => {
                    if attempt > 0 {
                        // Best effort: the counter's next answer should be past this range.
                        let bump = doc! { "$max": { "value": to_i64(last) } };
                        self.counters.update_one(doc! { "_id": POSITION_COUNTER }, bump).await?;
                    }
                    return Ok((first, sent));
                }
                Err(e) if is_duplicate_key(&e) => {
                    // Ordered: everything before the first failed document was inserted.
                    let claimed = match &*e.kind {
                        ErrorKind::InsertMany(failure) => failure
                            .write_errors
                            .as_ref()
                            .and_then(|errors| errors.iter().map(|w| w.index).min())
                            .map_or(0, |n| n as u64),
                        _ => 0,
                    };
                    if claimed > 0 {
                        self.give_up(first, first + claimed - 1).await;
                    }
                    let newest = self.claims.find_one(doc! {}).sort(doc! { "_id": -1 }).await?;
                    first = newest.as_ref().and_then(|d| number(d.get("_id"))).map_or(first + count, |n| to_u64(n) + 1);
                    let pause = (uuid::Uuid::new_v4().as_u128() % 5) as u64 + u64::from(attempt.min(10));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EventStoreError::Backend(format!(
            "could not claim {count} positions: {CLAIM_ATTEMPTS} ranges in a row were taken (is the store very busy?)"
        )))
    }

    /// Fill positions `first..=last`, which this appender allocated and will never insert, so that
    /// readers need not wait for them. Best effort: if it fails, readers close the gap later.
    async fn give_up(&self, first: u64, last: u64) {
        let filled = match self.commits.insert_one(Commit::placeholder(first, last)).await {
            Ok(_) => Ok(()),
            // A reader closed the first position already; fill the rest one by one.
            Err(e) if is_duplicate_key(&e) => self.fill(first + 1, last, false).await.map(drop),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = filled {
            tracing::warn!("cannot release the unused positions {first}..={last}; readers will close them: {e}");
        }
    }

    /// Insert one placeholder per position in `first..=last`, in ascending order. When
    /// `stop_at_taken`, stop at the first position already taken (see the module documentation
    /// for why a reader must); otherwise skip taken positions. Returns how many were inserted.
    async fn fill(&self, first: u64, last: u64, stop_at_taken: bool) -> Result<u64, EventStoreError> {
        let mut inserted = 0;
        for position in first..=last {
            match self.commits.insert_one(Commit::placeholder(position, position)).await {
                Ok(_) => inserted += 1,
                Err(e) if is_duplicate_key(&e) && stop_at_taken => break,
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(inserted)
    }

    /// The commits a reader at `after` needs next, in position order: the one that holds `after`
    /// and later positions (when `straddle`), then up to `page` whose first position is beyond
    /// `after`. Also says whether the page was full.
    async fn page(&self, after: u64, straddle: bool, page: u32) -> Result<(Vec<Commit>, bool), EventStoreError> {
        let mut commits = Vec::new();
        if straddle && after > 0 {
            let straddling =
                self.commits.find_one(doc! { "_id": { "$lte": to_i64(after) } }).sort(doc! { "_id": -1 }).await?;
            commits.extend(straddling.filter(|c| to_u64(c.last_position) > after));
        }
        let mut cursor = self
            .commits
            .find(doc! { "_id": { "$gt": to_i64(after) } })
            .sort(doc! { "_id": 1 })
            .limit(i64::from(page))
            .await?;
        let mut fetched = 0;
        while cursor.advance().await? {
            commits.push(cursor.deserialize_current()?);
            fetched += 1;
        }
        Ok((commits, fetched >= page))
    }

    /// For tests: the next append stops right after allocating its positions, reports the first
    /// one, and goes on (to its allocation-age check, then its insert) only when released, as an
    /// appender stalled between the two would.
    #[doc(hidden)]
    pub fn hold_next_append(&self) -> HeldAppend {
        let (allocated_tx, allocated) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.hold.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Hold { allocated: allocated_tx, release: release_rx });
        HeldAppend { allocated, release }
    }

    async fn wait_if_held(&self, first: u64) {
        let hold = self.hold.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(hold) = hold {
            // The test may have dropped its side; then the append simply goes on.
            let _ = hold.allocated.send(first);
            let _ = hold.release.await;
        }
    }
}

struct Hold {
    allocated: oneshot::Sender<u64>,
    release: oneshot::Receiver<()>,
}

/// A held append (see [`MongoEventStore::hold_next_append`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct HeldAppend {
    allocated: oneshot::Receiver<u64>,
    release: oneshot::Sender<()>,
}

impl HeldAppend {
    /// Wait until the held append has allocated its positions; the first of them.
    pub async fn allocated(&mut self) -> u64 {
        (&mut self.allocated).await.unwrap_or(0)
    }

    /// Let the append go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
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
        let actual = self.stream_version(aggregate_type, aggregate_id).await?;
        if actual != expected_version {
            return Err(EventStoreError::Conflict { expected: expected_version, actual });
        }
        if events.is_empty() {
            return Ok(Appended { version: actual, positions: Vec::new() });
        }
        let count = events.len() as u64;
        for _ in 0..APPEND_ATTEMPTS {
            let (first, sent) = self.allocate(count).await?;
            let last = first + count - 1;
            self.wait_if_held(first).await;
            if sent.elapsed() > self.timing.max_allocation_age {
                tracing::warn!(
                    "positions {first}..={last} for {aggregate_type}/{aggregate_id} are {:?} old; allocating fresh ones",
                    sent.elapsed()
                );
                self.give_up(first, last).await;
                continue;
            }
            let recorded_at = now();
            let commit = Commit {
                first_position: to_i64(first),
                aggregate_type: Some(aggregate_type.to_owned()),
                aggregate_id: Some(aggregate_id.to_owned()),
                start: to_i64(expected_version + 1),
                end: to_i64(expected_version + count),
                last_position: to_i64(last),
                events: events
                    .iter()
                    .zip(0..)
                    .map(|(event, offset)| EventDocument {
                        version: to_i64(expected_version + 1 + offset),
                        position: to_i64(first + offset),
                        event_type: event.event_type.clone(),
                        schema_version: i64::from(event.schema_version),
                        data: event.data.clone(),
                        recorded_at: recorded_at.clone(),
                    })
                    .collect(),
                recorded_at,
            };
            match self.commits.insert_one(&commit).await {
                Ok(_) => {
                    return Ok(Appended { version: expected_version + count, positions: (first..=last).collect() });
                }
                Err(e) if is_duplicate_key(&e) => {
                    let actual = self.stream_version(aggregate_type, aggregate_id).await?;
                    self.give_up(first, last).await;
                    if actual != expected_version {
                        return Err(EventStoreError::Conflict { expected: expected_version, actual });
                    }
                    // The stream did not move, so the clash was on `_id`: readers closed our
                    // positions as a gap before the insert arrived.
                    tracing::warn!("positions {first}..={last} were closed before the insert arrived; retrying");
                }
                // Not given up: the insert may have landed all the same.
                Err(e) => return Err(e.into()),
            }
        }
        Err(EventStoreError::Backend(format!(
            "could not append to {aggregate_type}/{aggregate_id}: {APPEND_ATTEMPTS} position ranges in a row were \
             closed before their insert arrived (is the database very slow?)"
        )))
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after_version: u64,
        to_version: Option<u64>,
    ) -> Result<Vec<StoredEvent>, EventStoreError> {
        let to_version = to_version.unwrap_or(u64::MAX);
        let filter = doc! {
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "end": { "$gt": to_i64(after_version) },
            "start": { "$lte": to_i64(to_version) },
        };
        let mut cursor = self.commits.find(filter).sort(doc! { "start": 1 }).await?;
        let mut stored = Vec::new();
        while cursor.advance().await? {
            let commit = cursor.deserialize_current()?;
            for event in &commit.events {
                let version = to_u64(event.version);
                if version > after_version && version <= to_version {
                    stored.push(to_stored(&commit, event)?);
                }
            }
        }
        Ok(stored)
    }

    async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, EventStoreError> {
        let mut events = Vec::new();
        if limit == 0 {
            return Ok(events);
        }
        // Every position up to `known` is covered by the commits walked so far.
        let mut known = after;
        // A gap at the front of what is left to read: its first position and when it was seen.
        let mut waiting: Option<(u64, Instant)> = None;
        loop {
            let (commits, full) = self.page(known, known == after, limit.min(PAGE)).await?;
            let mut next = known + 1;
            let mut gap = None;
            for commit in &commits {
                let first = to_u64(commit.first_position);
                if first > next {
                    gap = Some((next, first - 1));
                    break;
                }
                for event in commit.events.iter().filter(|e| to_u64(e.position) >= next) {
                    events.push(to_stored(commit, event)?);
                    if events.len() >= limit as usize {
                        return Ok(events);
                    }
                }
                next = next.max(to_u64(commit.last_position) + 1);
            }
            known = next - 1;
            let Some((from, to)) = gap else {
                if full {
                    continue;
                }
                return Ok(events);
            };
            // Never return events past a gap that may still fill: the prefix, if any, is the answer.
            if !events.is_empty() {
                return Ok(events);
            }
            let since = match waiting {
                Some((start, since)) if start == from => since,
                _ => waiting.insert((from, Instant::now())).1,
            };
            let waited = since.elapsed();
            if waited < self.timing.gap_timeout {
                tokio::time::sleep(self.timing.poll_interval.min(self.timing.gap_timeout - waited)).await;
            } else {
                tracing::warn!(
                    "positions {from}..={to} stayed empty for {waited:?} while later ones were committed; closing them"
                );
                if self.fill(from, to, true).await? == 0 {
                    // Someone else took the first position meanwhile: look again shortly.
                    tokio::time::sleep(self.timing.poll_interval).await;
                }
            }
        }
    }

    async fn head_position(&self) -> Result<u64, EventStoreError> {
        let newest = self
            .raw
            .find_one(doc! { "aggregate_type": { "$ne": Bson::Null } })
            .sort(doc! { "_id": -1 })
            .projection(doc! { "last_position": 1 })
            .await?;
        Ok(newest.as_ref().and_then(|d| number(d.get("last_position"))).map_or(0, to_u64))
    }

    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64, EventStoreError> {
        let latest = self
            .raw
            .find_one(doc! { "aggregate_type": aggregate_type, "aggregate_id": aggregate_id })
            .sort(doc! { "start": -1 })
            .projection(doc! { "end": 1 })
            .await?;
        Ok(latest.as_ref().and_then(|d| number(d.get("end"))).map_or(0, to_u64))
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

fn to_stored(commit: &Commit, event: &EventDocument) -> Result<StoredEvent, EventStoreError> {
    let corrupt =
        |what: &str| EventStoreError::Backend(format!("commit at position {}: {what}", commit.first_position));
    Ok(StoredEvent {
        aggregate_type: commit.aggregate_type.clone().ok_or_else(|| corrupt("events without an aggregate type"))?,
        aggregate_id: commit.aggregate_id.clone().ok_or_else(|| corrupt("events without an aggregate id"))?,
        version: to_u64(event.version),
        global_position: to_u64(event.position),
        event_type: event.event_type.clone(),
        schema_version: u32::try_from(event.schema_version).map_err(|_| corrupt("schema_version out of range"))?,
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
