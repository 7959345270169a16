//! Every `bindgen!` of the host, in one place: one module per world of the `sluice:plugin`
//! WIT package (`wit/`), sharing one set of `types` so an event envelope converts once.
//!
//! Its own module, below both `runtime` and `capabilities`, so neither imports the other
//! through it. Nothing outside those two names a generated type: the plugin contracts
//! ([`crate::plugin`]) and the read store have their own.

/// The `aggregate-plugin` world: exports `aggregate`.
pub mod aggregate {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "aggregate-plugin",
    });
}

/// The `projection-plugin` world: imports `sql`, exports `projection`.
pub mod projection {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "projection-plugin",
        with: { "sluice:plugin/types": super::aggregate::sluice::plugin::types },
    });
}

/// The shared `types` interface.
pub use aggregate::sluice::plugin::types;
/// The `sql` interface a projection imports.
pub use projection::sluice::plugin::sql;
