//! How far each projection's rebuild has come: the position it has replayed to against the
//! log's head when it started, while it runs and after it ends (with its outcome). A rebuild
//! through the admin service notes its progress here, so the `/admin` routes, the dashboard and
//! `sluice rebuild --url` can show a progress bar for a rebuild that runs inside the host.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// One projection's latest rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebuildProgress {
    pub projection: String,
    /// Still replaying.
    pub running: bool,
    /// The position replayed to so far.
    pub position: u64,
    /// The position the rebuild replays to (the log's head as the rebuild goes; it may grow).
    pub head: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339), none while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The latest rebuild of every projection rebuilt since the host started.
#[derive(Debug, Default)]
pub struct Rebuilds {
    latest: Mutex<HashMap<String, RebuildProgress>>,
}

impl Rebuilds {
    /// Note that `projection` starts rebuilding now; `None` (and nothing noted) when a rebuild
    /// of it already runs. The guard ends the rebuild's note: with its outcome, or as cancelled
    /// when it is dropped first (the request that ran it went away).
    pub fn start<'a>(&'a self, projection: &'a str) -> Option<Running<'a>> {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if latest.get(projection).is_some_and(|p| p.running) {
            return None;
        }
        let progress = RebuildProgress {
            projection: projection.to_owned(),
            running: true,
            position: 0,
            head: 0,
            started_at: super::now(),
            finished_at: None,
            error: None,
        };
        latest.insert(projection.to_owned(), progress);
        Some(Running { rebuilds: self, projection, ended: false })
    }

    /// The running rebuild of `projection` has replayed to `position` of `head`.
    fn advance(&self, projection: &str, position: u64, head: u64) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(progress) = latest.get_mut(projection).filter(|p| p.running) {
            progress.position = position;
            progress.head = head.max(position);
        }
    }

    /// The rebuild of `projection` ended: at `Ok(position)`, or with an error.
    fn finish(&self, projection: &str, outcome: Result<u64, String>) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(progress) = latest.get_mut(projection) {
            progress.running = false;
            progress.finished_at = Some(super::now());
            match outcome {
                Ok(position) => {
                    progress.position = position;
                    progress.head = progress.head.max(position);
                }
                Err(error) => progress.error = Some(error),
            }
        }
    }

    /// The latest rebuild of `projection`, if it was rebuilt since the host started.
    pub fn get(&self, projection: &str) -> Option<RebuildProgress> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).get(projection).cloned()
    }

    /// Forget `projection` (it was removed).
    pub fn forget(&self, projection: &str) {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).remove(projection);
    }
}

/// A rebuild that runs; see [`Rebuilds::start`].
pub struct Running<'a> {
    rebuilds: &'a Rebuilds,
    projection: &'a str,
    ended: bool,
}

impl Running<'_> {
    /// It has replayed to `position` of `head`.
    pub fn advance(&self, position: u64, head: u64) {
        self.rebuilds.advance(self.projection, position, head);
    }

    /// It ended: at `Ok(position)`, or with an error.
    pub fn finish(mut self, outcome: Result<u64, String>) {
        self.ended = true;
        self.rebuilds.finish(self.projection, outcome);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.rebuilds.finish(self.projection, Err("cancelled: the request that ran it went away".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_is_noted_from_start_to_end() {
        let rebuilds = Rebuilds::default();
        assert_eq!(rebuilds.get("p"), None);
        let running = rebuilds.start("p").expect("nothing runs");
        assert!(rebuilds.start("p").is_none(), "a second rebuild of the same projection while one runs");
        running.advance(40, 100);
        let noted = rebuilds.get("p").expect("noted");
        assert!(noted.running && noted.finished_at.is_none());
        assert_eq!((noted.position, noted.head), (40, 100));
        running.finish(Ok(120));
        let done = rebuilds.get("p").expect("noted");
        assert!(!done.running && done.finished_at.is_some() && done.error.is_none());
        assert_eq!((done.position, done.head), (120, 120));
        rebuilds.advance("p", 1, 2);
        assert_eq!(rebuilds.get("p").map(|p| p.position), Some(120), "a finished rebuild does not move");

        let again = rebuilds.start("p").expect("the last one ended");
        assert_eq!(rebuilds.get("p").map(|p| (p.position, p.running)), Some((0, true)), "it starts afresh");
        again.finish(Err("the read store is gone".into()));
        assert_eq!(rebuilds.get("p").and_then(|p| p.error), Some("the read store is gone".into()));
        rebuilds.forget("p");
        assert_eq!(rebuilds.get("p"), None);
    }

    #[test]
    fn a_rebuild_dropped_unfinished_ends_as_cancelled() {
        let rebuilds = Rebuilds::default();
        drop(rebuilds.start("p").expect("nothing runs"));
        let noted = rebuilds.get("p").expect("noted");
        assert!(!noted.running, "{noted:?}");
        assert!(noted.error.is_some_and(|e| e.starts_with("cancelled")));
        assert!(rebuilds.start("p").is_some(), "a cancelled rebuild does not block the next");
    }
}
