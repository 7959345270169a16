//! The global log as a watcher reads it through the admin service: the events after a
//! position, waiting a bounded while for new ones when there are none yet (a long poll), so
//! the dashboard's live events and `sluice tail --url` follow a running host without opening
//! its event store themselves.

use std::time::{Duration, Instant};

use super::{Admin, AdminError};
use crate::event_store::StoredEvent;

/// The most events one read answers.
pub const MAX_EVENTS: u32 = 1000;
/// The longest a read waits for new events.
pub const MAX_WAIT: Duration = Duration::from_secs(25);
/// How often a waiting read looks again.
const POLL: Duration = Duration::from_millis(100);

impl Admin {
    /// Up to `limit` events after global position `after`, in log order, and the log's head.
    /// With none there yet, look again until `wait` has passed (bounded by [`MAX_WAIT`]).
    pub async fn events_after(
        &self,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> Result<(Vec<StoredEvent>, u64), AdminError> {
        let store = &self.parts().store;
        let limit = limit.clamp(1, MAX_EVENTS);
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        loop {
            let events = store.read_all(after, limit).await?;
            if !events.is_empty() || Instant::now() >= deadline {
                let head = store.known_head().await?;
                return Ok((events, head));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
