//! The `hostile` test projection, hostile build: it traps, spins, hogs memory or refuses the
//! events of aggregates whose id starts with `trap-`, `loop-`, `bomb-` or `fail-` (see
//! `hostile-model`), and records every other stream's positions in order.

pub use hostile_model::Hostile;

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(hostile_model::Hostile<false>);
