//! The guest side of Sluice projections.
//!
//! A projection implements [`Projection`]: it declares its tables, subscriptions, queries and
//! routes, writes rows through a [`Db`] as events arrive, and answers queries by reading them.
//! [`export_projection!`] wires it to the component's exports; [`testing`] runs the same code
//! natively against an in-memory [`testing::MemoryDb`]; [`log()`] writes to the host's log under
//! the projection's name. [`export_projection_v1!`] exports the same code as a 0.1.0 component
//! (no `log`), for hosts that predate 0.2.0.
//!
//! This crate is separate from `sluice-sdk` (aggregates) on purpose: each plugin links the
//! bindings of exactly one world.

pub mod log;
pub mod projection;
pub mod sql;
pub mod testing;

#[doc(hidden)]
pub mod wasm;

/// The generated bindings of the 0.1.0 `projection-plugin` world (their own crate, see there);
/// plugin code should not need them.
#[doc(hidden)]
pub use sluice_projection_bindings_v1 as bindings;

/// The generated bindings of the 0.2.0 `projection-plugin` world (0.1.0's plus `log`); plugin
/// code should not need them.
#[doc(hidden)]
pub mod bindings_v2 {
    wit_bindgen::generate!({
        world: "projection-plugin",
        path: "../../wit/v0.2",
        pub_export_macro: true,
        export_macro_name: "export_bindings_v2",
        default_bindings_module: "::sluice_projection_sdk::bindings_v2",
    });
}

pub use log::{Level, log};
pub use projection::{
    Answer, Column, ColumnType, Event, Manifest, Params, Projection, QueryError, QueryRoute, RebuildRoute, Table,
};
pub use sql::{Assignment, Change, Comparison, Condition, Db, Ordering, Rows, Select, SqlError, Value};

/// Makes `$projection` (a [`Projection`]) the component's `sluice:plugin/projection@0.2.0`
/// export: the world of 0.1.0 plus the host's `log` ([`log()`]). Only on wasm32: natively the
/// crate is a plain library for tests.
#[macro_export]
macro_rules! export_projection {
    ($projection:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct SluiceProjectionExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings_v2::exports::sluice::plugin::projection::Guest for SluiceProjectionExport {
            fn describe() -> $crate::bindings_v2::exports::sluice::plugin::projection::Manifest {
                $crate::wasm::v2::manifest::<$projection>()
            }

            fn handle(events: Vec<$crate::bindings_v2::sluice::plugin::types::EventEnvelope>) -> Result<(), String> {
                $crate::wasm::v2::handle::<$projection>(events)
            }

            fn query(
                name: String,
                params: Vec<(String, String)>,
            ) -> Result<
                $crate::bindings_v2::exports::sluice::plugin::projection::Answer,
                $crate::bindings_v2::exports::sluice::plugin::projection::QueryError,
            > {
                $crate::wasm::v2::query::<$projection>(name, params)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings_v2::export_bindings_v2!(SluiceProjectionExport with_types_in $crate::bindings_v2);
    };
}

/// Makes `$projection` (a [`Projection`]) the component's `sluice:plugin/projection@0.1.0`
/// export, for plugins built before 0.2.0. Such a component has no `log`: calling [`log()`]
/// from it makes the host refuse it at load (it imports what its world does not grant).
#[macro_export]
macro_rules! export_projection_v1 {
    ($projection:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct SluiceProjectionExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::exports::sluice::plugin::projection::Guest for SluiceProjectionExport {
            fn describe() -> $crate::bindings::exports::sluice::plugin::projection::Manifest {
                $crate::wasm::v1::manifest::<$projection>()
            }

            fn handle(events: Vec<$crate::bindings::sluice::plugin::types::EventEnvelope>) -> Result<(), String> {
                $crate::wasm::v1::handle::<$projection>(events)
            }

            fn query(
                name: String,
                params: Vec<(String, String)>,
            ) -> Result<
                $crate::bindings::exports::sluice::plugin::projection::Answer,
                $crate::bindings::exports::sluice::plugin::projection::QueryError,
            > {
                $crate::wasm::v1::query::<$projection>(name, params)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_bindings!(SluiceProjectionExport with_types_in $crate::bindings);
    };
}
