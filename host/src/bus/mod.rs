//! The bus events travel on after the event store committed them: `embedded` (the store's own
//! log, followed directly by projections) or [`kafka`] (fed by the [`crate::relay`], consumed
//! by projections through consumer groups).

pub mod kafka;

pub use kafka::{BusError, KafkaBus};
