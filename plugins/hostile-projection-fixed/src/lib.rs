//! The `hostile` test projection, fixed build: the same name, schema and read model as the
//! hostile build, handling every event — what tests hot-swap in before retrying the letters —
//! and one more query route, `/api/test/hostile/fixed/streams`.

pub use hostile_model::Hostile;

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(hostile_model::Hostile<true>);
