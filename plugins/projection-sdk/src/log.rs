//! The host's `log` capability (WIT 0.2.0): a line goes to the host's log under the
//! projection's name, rate-limited by the host. Natively (tests) it goes to stderr.

/// Log severity, for [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Write a line to the host's log under the projection's name (rate-limited by the host). Only
/// for components exported with [`export_projection!`](crate::export_projection) (0.2.0).
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings_v2::sluice::plugin::log as wit;
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}
