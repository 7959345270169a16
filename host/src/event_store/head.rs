//! The log-advanced signal: each event store publishes the head of its global log here, and
//! whatever follows the log (the projections on the embedded bus, the relay, `sluice events
//! --follow`) waits on it instead of re-reading the store on a timer.
//!
//! The head moves for three reasons, and every backend feeds the same [`LogHead`]:
//! - this process appended: the store publishes the positions it was given, once they are
//!   committed (no round trip, no delay);
//! - another process appended to the same store: PostgreSQL tells every listening host
//!   (`LISTEN/NOTIFY`, one notification per group commit, see [`super::postgres`]); SQLite and
//!   MongoDB have no such thing here (FerretDB has no change streams), so
//! - [`poll`] reads the head every configured interval (for PostgreSQL only a backstop against a
//!   notification lost while its listener reconnected).
//!
//! The signal only ever says "the log reached at least this position", and only after the
//! events up to it are committed, so a follower that reads `position > checkpoint` when woken
//! never waits on news it already had and never misses any.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::EventStore;

/// How often a store reads its head for other processes' appends, unless configured.
pub const DEFAULT_POLL: Duration = Duration::from_millis(500);

/// The head of the log as one store instance knows it: the position of the last committed
/// event, as far as it has heard. Dropping it stops the tasks that feed it.
#[derive(Debug)]
pub struct LogHead {
    head: watch::Sender<u64>,
    /// Cancelled on drop: ends the store's listener task.
    tasks: CancellationToken,
}

impl Default for LogHead {
    fn default() -> Self {
        Self { head: watch::Sender::new(0), tasks: CancellationToken::new() }
    }
}

impl Drop for LogHead {
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}

impl LogHead {
    /// The log holds committed events up to `position`: wake the followers if that is news.
    pub fn advanced(&self, position: u64) {
        self.head.send_if_modified(|head| {
            let newer = position > *head;
            *head = (*head).max(position);
            newer
        });
    }

    /// Follow the head: the receiver changes whenever the log grows.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Fires when the store that owns this head is dropped: its background tasks end then.
    pub(crate) fn stopped(&self) -> CancellationToken {
        self.tasks.clone()
    }
}

/// Read `store`'s head every `every` and publish it, until the store is dropped: how a host
/// hears of other processes' appends where the backend cannot tell it.
pub(crate) fn poll(store: &Arc<dyn EventStore>, every: Duration) {
    let store: Weak<dyn EventStore> = Arc::downgrade(store);
    let Some(stopped) = store.upgrade().map(|s| s.log_head().stopped()) else { return };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once: the head as the store opened.
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopped.cancelled() => return,
            }
            let Some(store) = store.upgrade() else { return };
            match store.known_head().await {
                Ok(head) => store.log_head().advanced(head),
                Err(e) => tracing::debug!("cannot read the event store's head (polled again): {e}"),
            }
        }
    });
}
