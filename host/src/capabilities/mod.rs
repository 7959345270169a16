//! The host side of each interface plugins import. Each capability is granted per call and
//! scoped: [`sql`] reaches only the calling projection's own tables.

pub mod sql;
