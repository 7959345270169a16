//! The `log` capability: a guest's lines go to the host's `tracing`, each with the plugin's
//! name (target `sluice::plugin`), through a per-plugin token bucket so a plugin that logs in a
//! loop cannot flood the host's log or slow its calls.
//!
//! A token bucket of our own rather than a crate such as `governor`: the whole need is one
//! counter refilled by elapsed time under a mutex held for nanoseconds, plus the count of
//! dropped lines that the next admitted line reports — which a general rate limiter does not
//! keep for us.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::bindings::log::{self as wit, Level};

/// Lines a plugin may write in a burst.
const BURST: f64 = 200.0;
/// Lines per second a plugin may keep writing.
const PER_SECOND: f64 = 100.0;
/// Longest line kept; the rest is cut (a guest chooses the length, the host's log does not).
const LINE_LIMIT: usize = 4096;

/// One plugin's log: its name and its bucket, shared by every call of the plugin.
pub struct LogSink {
    plugin: String,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

impl LogSink {
    pub fn new(plugin: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            plugin: plugin.into(),
            bucket: Mutex::new(Bucket { tokens: BURST, refilled: Instant::now(), dropped: 0 }),
        })
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Take a token: `Some(lines dropped since the last admitted line)`, or `None` to drop.
    fn admit(&self) -> Option<u64> {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
        bucket.refilled = now;
        if bucket.tokens < 1.0 {
            bucket.dropped += 1;
            return None;
        }
        bucket.tokens -= 1.0;
        Some(std::mem::take(&mut bucket.dropped))
    }

    /// Write `message` at `level`, if the bucket allows.
    pub fn write(&self, level: Level, message: &str) {
        // A line the host's filter would discard costs no token (and is never counted dropped).
        let enabled = match level {
            Level::Trace => tracing::enabled!(target: "sluice::plugin", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "sluice::plugin", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "sluice::plugin", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "sluice::plugin", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "sluice::plugin", tracing::Level::ERROR),
        };
        if !enabled {
            return;
        }
        let Some(dropped) = self.admit() else { return };
        if dropped > 0 {
            tracing::warn!(target: "sluice::plugin", plugin = %self.plugin, dropped, "plugin log lines suppressed by the rate limit");
        }
        let message = cut(message);
        let plugin = self.plugin.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "sluice::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "sluice::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "sluice::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "sluice::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "sluice::plugin", plugin, "{message}"),
        }
    }
}

fn cut(message: &str) -> &str {
    if message.len() <= LINE_LIMIT {
        return message;
    }
    let mut end = LINE_LIMIT;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// The capability's context in a store: the calling plugin's sink (none: lines are dropped).
#[derive(Default)]
pub struct LogCapability {
    sink: Option<Arc<LogSink>>,
}

impl LogCapability {
    pub fn grant(&mut self, sink: Arc<LogSink>) {
        self.sink = Some(sink);
    }
}

impl wit::Host for LogCapability {
    fn log(&mut self, level: Level, message: String) {
        if let Some(sink) = &self.sink {
            sink.write(level, &message);
        }
    }
}

/// 0.2.0's `types` carries no functions; linking it needs a host for it.
impl crate::bindings::types_v2::Host for LogCapability {}

/// 0.3.0's `log` is 0.2.0's under another name: the same sink, the same levels.
impl crate::bindings::log_v3::Host for LogCapability {
    fn log(&mut self, level: crate::bindings::log_v3::Level, message: String) {
        use crate::bindings::log_v3::Level as V3;
        let level = match level {
            V3::Trace => Level::Trace,
            V3::Debug => Level::Debug,
            V3::Info => Level::Info,
            V3::Warn => Level::Warn,
            V3::Error => Level::Error,
        };
        wit::Host::log(self, level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_past_the_bucket_is_dropped_and_counted() {
        let sink = LogSink::new("chatty");
        let admitted = (0..1000).filter(|_| sink.admit().is_some()).count();
        // The burst, plus what refilled while the loop ran (well under a second).
        assert!((200..300).contains(&admitted), "admitted {admitted}");
        let dropped = sink.bucket.lock().map(|b| b.dropped).unwrap_or_default();
        assert_eq!(dropped, 1000 - admitted as u64);
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let line = "é".repeat(LINE_LIMIT);
        let kept = cut(&line);
        assert!(kept.len() <= LINE_LIMIT && kept.chars().all(|c| c == 'é'));
    }
}
