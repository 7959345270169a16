//! The host side of each interface plugins import. Each capability is granted per call and
//! scoped: [`sql`] reaches only the calling projection's own tables, [`outbox`] only the
//! calling reactor's declared channels, [`log`] writes under the calling plugin's name.

pub mod log;
pub mod outbox;
pub mod sql;
