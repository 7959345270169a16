//! The guest side of the Sluice plugin contract.
//!
//! Plugin code implements plain Rust traits ([`Aggregate`]) and never touches the generated
//! bindings: [`export_aggregate!`] wires a type to the component's exports, and
//! [`testing`] runs the same code natively, given/when/then.
//!
//! - [`aggregate`]: the trait a domain implements, and the envelope types it sees.
//! - [`manifest`]: what a plugin declares (commands, events, routes, topic).
//! - [`runtime`]: the JSON glue between envelopes and typed commands/events, shared by the
//!   component exports and native callers (tests, benchmarks).
//! - [`testing`]: given/when/then for aggregates.

pub mod aggregate;
pub mod manifest;
pub mod runtime;
pub mod testing;

#[doc(hidden)]
pub mod wasm;

/// The generated bindings of the `aggregate-plugin` world; plugin code should not need them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "aggregate-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "::sluice_sdk::bindings",
    });
}

pub use aggregate::{Aggregate, CommandContext, CommandError, DomainEvent, NewEvent, StoredEvent};
pub use manifest::{CommandSpec, IdSource, Manifest, Method, Route};

/// Makes `$aggregate` (an [`Aggregate`]) the component's `aggregate` export. Only on wasm32:
/// natively (domain tests, benchmarks) the crate is a plain library.
#[macro_export]
macro_rules! export_aggregate {
    ($aggregate:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct SluiceAggregateExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::exports::sluice::plugin::aggregate::Guest for SluiceAggregateExport {
            fn describe() -> $crate::bindings::exports::sluice::plugin::aggregate::Manifest {
                $crate::wasm::manifest::<$aggregate>()
            }

            fn evolve(
                state: Option<Vec<u8>>,
                events: Vec<$crate::bindings::sluice::plugin::types::EventEnvelope>,
            ) -> Result<Vec<u8>, String> {
                $crate::wasm::evolve::<$aggregate>(state, events)
            }

            fn decide(
                state: Option<Vec<u8>>,
                command: $crate::bindings::exports::sluice::plugin::aggregate::Command,
            ) -> Result<
                Vec<$crate::bindings::sluice::plugin::types::NewEvent>,
                $crate::bindings::exports::sluice::plugin::aggregate::CommandError,
            > {
                $crate::wasm::decide::<$aggregate>(state, command)
            }

            fn render(state: Vec<u8>) -> Result<String, String> {
                $crate::runtime::render::<$aggregate>(&state)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_bindings!(SluiceAggregateExport with_types_in $crate::bindings);
    };
}
