//! The guest side of Sluice projections.
//!
//! A projection implements [`Projection`]: it declares its tables, subscriptions, queries and
//! routes, writes rows through a [`Db`] as events arrive, and answers queries by reading them.
//! [`export_projection!`] wires it to the component's exports; [`testing`] runs the same code
//! natively against an in-memory [`testing::MemoryDb`].
//!
//! This crate is separate from `sluice-sdk` (aggregates) on purpose: each plugin links the
//! bindings of exactly one world.

pub mod projection;
pub mod sql;
pub mod testing;

#[doc(hidden)]
pub mod wasm;

/// The generated bindings of the `projection-plugin` world; plugin code should not need them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "projection-plugin",
        path: "../../wit/v0.1",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "::sluice_projection_sdk::bindings",
    });
}

pub use projection::{
    Answer, Column, ColumnType, Event, Manifest, Params, Projection, QueryError, QueryRoute, RebuildRoute, Table,
};
pub use sql::{Assignment, Change, Comparison, Condition, Db, Ordering, Rows, Select, SqlError, Value};

/// Makes `$projection` (a [`Projection`]) the component's `projection` export. Only on wasm32:
/// natively the crate is a plain library for tests.
#[macro_export]
macro_rules! export_projection {
    ($projection:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct SluiceProjectionExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::exports::sluice::plugin::projection::Guest for SluiceProjectionExport {
            fn describe() -> $crate::bindings::exports::sluice::plugin::projection::Manifest {
                $crate::wasm::manifest::<$projection>()
            }

            fn handle(events: Vec<$crate::bindings::sluice::plugin::types::EventEnvelope>) -> Result<(), String> {
                $crate::wasm::handle::<$projection>(events)
            }

            fn query(
                name: String,
                params: Vec<(String, String)>,
            ) -> Result<
                $crate::bindings::exports::sluice::plugin::projection::Answer,
                $crate::bindings::exports::sluice::plugin::projection::QueryError,
            > {
                $crate::wasm::query::<$projection>(name, params)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_bindings!(SluiceProjectionExport with_types_in $crate::bindings);
    };
}
