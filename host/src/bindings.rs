//! Every `bindgen!` of the host, in one place: one module per world of the `sluice:plugin`
//! WIT package (`wit/v0.1`, `wit/v0.2`, `wit/v0.3`), the worlds of one version sharing one set of
//! `types` so an event envelope converts once (0.3.0, which has only the aggregate world and the
//! same `types` as 0.2.0, shares 0.2.0's). The versions are linked side by side: a component is
//! run by the bindings of the version it exports (told at load, [`crate::runtime::loader`]).
//!
//! Its own module, below both `runtime` and `capabilities`, so neither imports the other
//! through it. Nothing outside those two names a generated type: the plugin contracts
//! ([`crate::plugin`]) and the read store have their own.

/// The `aggregate-plugin` world: exports `aggregate`. Its calls are async (every aggregate
/// world's are): a command's decide runs on the async worker that received it and yields at each
/// epoch tick ([`crate::runtime::aggregate`]).
pub mod aggregate {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "aggregate-plugin",
        exports: { default: async },
    });
}

/// The 0.2.0 `upcasting-aggregate-plugin` world: 0.1.0's plus per-event-type schema versions and `upcast`.
pub mod aggregate_v2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "upcasting-aggregate-plugin",
        exports: { default: async },
    });
}

/// The 0.3.0 `executing-aggregate-plugin` world: 0.2.0's, with `execute` (evolve, decide and
/// apply the decided events, in one call) in place of `decide`. Its `types` are 0.2.0's, which
/// they equal; its `log` is its own (an import is linked under its version's name).
pub mod aggregate_v3 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.3",
        world: "executing-aggregate-plugin",
        exports: { default: async },
        with: { "sluice:plugin/types": super::aggregate_v2::sluice::plugin::types },
    });
}

/// The 0.2.0 `reactor-plugin` world: imports `log` and `outbox`, exports `reactor`; shares
/// 0.2.0's `types` and `log` with the aggregate world.
pub mod reactor {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "reactor-plugin",
        with: {
            "sluice:plugin/types": super::aggregate_v2::sluice::plugin::types,
            "sluice:plugin/log": super::aggregate_v2::sluice::plugin::log,
        },
    });
}

/// The `projection-plugin` world: imports `sql`, exports `projection`.
pub mod projection {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "projection-plugin",
        with: { "sluice:plugin/types": super::aggregate::sluice::plugin::types },
    });
}

/// The 0.2.0 `projection-plugin` world: 0.1.0's (imports `sql`, exports `projection`) plus
/// `log`; shares 0.2.0's `types` and `log` with the aggregate world.
pub mod projection_v2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "projection-plugin",
        with: {
            "sluice:plugin/types": super::aggregate_v2::sluice::plugin::types,
            "sluice:plugin/log": super::aggregate_v2::sluice::plugin::log,
        },
    });
}

/// The shared `types` interface (0.1.0).
pub use aggregate::sluice::plugin::types;
/// The `log` interface (0.2.0) every 0.2.0 component may import.
pub use aggregate_v2::sluice::plugin::log;
/// The `types` interface of 0.2.0.
pub use aggregate_v2::sluice::plugin::types as types_v2;
/// The `log` interface of 0.3.0.
pub use aggregate_v3::sluice::plugin::log as log_v3;
/// The `sql` interface a projection imports.
pub use projection::sluice::plugin::sql;
/// The `sql` interface a 0.2.0 projection imports.
pub use projection_v2::sluice::plugin::sql as sql_v2;
/// The `outbox` interface a reactor imports.
pub use reactor::sluice::plugin::outbox;
