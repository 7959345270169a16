//! The schema census: how many stored events share an aggregate type, event type and schema
//! version, kept up to date from the log rather than counted afresh.
//!
//! The deploy-time check needs these counts on every load and upload. Counting the whole store
//! each time cost time proportional to the log, and on FerretDB (where every such query is a
//! collection scan) a hot reload under load took seconds more with every thousand events. The
//! census counts once, through the head of the log, with the store's own aggregate
//! ([`EventStore::schema_counts`]), then folds in only the events appended since, read by
//! position from the global log ([`EventStore::read_all`], the path the relay and the followers
//! already keep cheap). The log is append-only and stored events are never rewritten, so what
//! was counted stays counted.

use std::collections::BTreeMap;

use super::{EventStore, EventStoreError, SchemaCount};

/// Events read from the log per step while catching up.
const BATCH: u32 = 1_000;

/// Counts per (aggregate type, event type, schema version), as of a position of the log.
#[derive(Default)]
pub struct SchemaCensus {
    state: tokio::sync::Mutex<Option<Counted>>,
}

/// The census through `position`.
struct Counted {
    position: u64,
    counts: BTreeMap<(String, String, u32), u64>,
}

impl SchemaCensus {
    /// The counts through the head of the log as of the call, sorted by aggregate type, event
    /// type and schema version. The first call counts in the store; later ones read only the
    /// events appended since the one before.
    pub async fn counts(&self, store: &dyn EventStore) -> Result<Vec<SchemaCount>, EventStoreError> {
        let mut state = self.state.lock().await;
        // Through the head as of now: a census that chased the end of a log under load would
        // never finish where every read of the end costs a query.
        let head = store.head_position().await?;
        let counted = match state.as_mut() {
            Some(counted) => counted,
            None => {
                let counts = store
                    .schema_counts(head)
                    .await?
                    .into_iter()
                    .map(|c| ((c.aggregate_type, c.event_type, c.schema_version), c.count))
                    .collect();
                state.insert(Counted { position: head, counts })
            }
        };
        while counted.position < head {
            let wanted = u32::try_from(head - counted.position).unwrap_or(BATCH).min(BATCH);
            let events = store.read_all(counted.position, wanted).await?;
            let Some(last) = events.last() else { break };
            counted.position = last.global_position;
            for event in events {
                *counted.counts.entry((event.aggregate_type, event.event_type, event.schema_version)).or_default() += 1;
            }
        }
        Ok(counted
            .counts
            .iter()
            .map(|((aggregate_type, event_type, schema_version), count)| SchemaCount {
                aggregate_type: aggregate_type.clone(),
                event_type: event_type.clone(),
                schema_version: *schema_version,
                count: *count,
            })
            .collect())
    }
}
