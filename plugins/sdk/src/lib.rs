//! The guest side of the Sluice plugin contract.
//!
//! Plugin code implements plain Rust traits ([`Aggregate`]) and never touches the generated
//! bindings: [`export_executing_aggregate!`] wires a type to the component's exports (WIT
//! `sluice:plugin@0.3.0`: the host learns each event type's schema versions and calls the
//! plugin's upcaster for older events, and a command is one call that decides and applies what
//! it decided), [`export_upcasting_aggregate!`] to the 0.2.0 exports (the same, a command being
//! an evolve and a decide), [`export_aggregate!`] to the 0.1.0 exports (no declared versions;
//! events reach evolve as stored), and [`testing`] runs the same code natively, given/when/then.
//!
//! - [`aggregate`]: the trait a domain implements, and the envelope types it sees.
//! - [`manifest`]: what a plugin declares (commands, events, routes, topic).
//! - [`runtime`]: the JSON glue between envelopes and typed commands/events, shared by the
//!   component exports and native callers (tests, benchmarks).
//! - [`reactor`]: the trait a reactor implements ([`Reactor`]), exported by
//!   [`export_reactor!`] (WIT 0.2.0 `reactor-plugin`).
//! - [`testing`]: given/when/then for aggregates and reactors.

pub mod aggregate;
pub mod manifest;
pub mod reactor;
pub mod runtime;
pub mod testing;

#[doc(hidden)]
pub mod wasm;

/// The generated bindings of the `aggregate-plugin` world; plugin code should not need them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "aggregate-plugin",
        path: "../../wit/v0.1",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "::sluice_sdk::bindings",
    });
}

/// The generated bindings of the 0.2.0 `upcasting-aggregate-plugin` world; plugin code should not need
/// them.
#[doc(hidden)]
pub mod bindings_v2 {
    wit_bindgen::generate!({
        world: "upcasting-aggregate-plugin",
        path: "../../wit/v0.2",
        pub_export_macro: true,
        export_macro_name: "export_bindings_v2",
        default_bindings_module: "::sluice_sdk::bindings_v2",
    });
}

/// The generated bindings of the 0.3.0 `executing-aggregate-plugin` world, its `types` bound to
/// 0.2.0's (the same records); plugin code should not need them.
#[doc(hidden)]
pub mod bindings_v3 {
    wit_bindgen::generate!({
        world: "executing-aggregate-plugin",
        path: "../../wit/v0.3",
        with: { "sluice:plugin/types@0.3.0": crate::bindings_v2::sluice::plugin::types },
        pub_export_macro: true,
        export_macro_name: "export_bindings_v3",
        default_bindings_module: "::sluice_sdk::bindings_v3",
    });
}

/// The generated bindings of the 0.2.0 `reactor-plugin` world; plugin code should not need them.
#[doc(hidden)]
pub mod bindings_reactor {
    wit_bindgen::generate!({
        world: "reactor-plugin",
        path: "../../wit/v0.2",
        pub_export_macro: true,
        export_macro_name: "export_bindings_reactor",
        default_bindings_module: "::sluice_sdk::bindings_reactor",
    });
}

/// Makes `$reactor` (a [`Reactor`]) the component's `sluice:plugin/reactor@0.2.0` export.
/// Only on wasm32: natively (domain tests) the crate is a plain library.
#[macro_export]
macro_rules! export_reactor {
    ($reactor:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct SluiceReactorExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings_reactor::exports::sluice::plugin::reactor::Guest for SluiceReactorExport {
            fn describe() -> $crate::bindings_reactor::exports::sluice::plugin::reactor::Manifest {
                $crate::reactor::wasm::manifest::<$reactor>()
            }

            fn handle(
                events: Vec<$crate::bindings_reactor::sluice::plugin::types::EventEnvelope>,
            ) -> Result<(), String> {
                $crate::reactor::wasm::handle::<$reactor>(events)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings_reactor::export_bindings_reactor!(SluiceReactorExport with_types_in $crate::bindings_reactor);
    };
}

pub use aggregate::{Aggregate, CommandContext, CommandError, DomainEvent, NewEvent, StoredEvent};
pub use manifest::{CommandSpec, IdSource, Manifest, Method, Route};
pub use reactor::{Outbox, Reactor, ReactorManifest, Start};

/// Makes `$aggregate` (an [`Aggregate`]) the component's `sluice:plugin/aggregate@0.3.0`
/// export: as [`export_upcasting_aggregate!`] (schema versions, upcasting), and a command is one
/// call, `execute`, which decides and applies the events it decided, so the host keeps the state
/// after the command and the next one has nothing to evolve. What a new plugin should use. Only
/// on wasm32: natively (domain tests, benchmarks) the crate is a plain library.
#[macro_export]
macro_rules! export_executing_aggregate {
    ($aggregate:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct SluiceAggregateExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings_v3::exports::sluice::plugin::aggregate::Guest for SluiceAggregateExport {
            fn describe() -> $crate::bindings_v3::exports::sluice::plugin::aggregate::Manifest {
                $crate::wasm::v3::manifest::<$aggregate>()
            }

            fn evolve(
                state: Option<Vec<u8>>,
                events: Vec<$crate::bindings_v2::sluice::plugin::types::EventEnvelope>,
            ) -> Result<Vec<u8>, String> {
                $crate::runtime::evolve::<$aggregate>(state.as_deref(), &$crate::wasm::v2::stored(events))
            }

            fn execute(
                state: Option<Vec<u8>>,
                events: Vec<$crate::bindings_v2::sluice::plugin::types::EventEnvelope>,
                command: $crate::bindings_v3::exports::sluice::plugin::aggregate::Command,
            ) -> Result<$crate::bindings_v3::exports::sluice::plugin::aggregate::Decision, String> {
                $crate::wasm::v3::execute::<$aggregate>(state, events, command)
            }

            fn upcast(
                events: Vec<$crate::bindings_v2::sluice::plugin::types::EventEnvelope>,
            ) -> Result<Vec<$crate::bindings_v2::sluice::plugin::types::NewEvent>, String> {
                $crate::wasm::v2::upcast::<$aggregate>(events)
            }

            fn render(state: Vec<u8>) -> Result<String, String> {
                $crate::runtime::render::<$aggregate>(&state)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings_v3::export_bindings_v3!(SluiceAggregateExport with_types_in $crate::bindings_v3);
    };
}

/// Makes `$aggregate` (an [`Aggregate`]) the component's `sluice:plugin/aggregate@0.2.0`
/// export: the manifest declares every event type's current and oldest schema version
/// ([`DomainEvent`]), and the host brings older events to the current shape through the
/// plugin's [`DomainEvent::upcast`] before evolve or any projection sees them. Only on wasm32:
/// natively (domain tests, benchmarks) the crate is a plain library.
#[macro_export]
macro_rules! export_upcasting_aggregate {
    ($aggregate:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct SluiceAggregateExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings_v2::exports::sluice::plugin::aggregate::Guest for SluiceAggregateExport {
            fn describe() -> $crate::bindings_v2::exports::sluice::plugin::aggregate::Manifest {
                $crate::wasm::v2::manifest::<$aggregate>()
            }

            fn evolve(
                state: Option<Vec<u8>>,
                events: Vec<$crate::bindings_v2::sluice::plugin::types::EventEnvelope>,
            ) -> Result<Vec<u8>, String> {
                $crate::runtime::evolve::<$aggregate>(state.as_deref(), &$crate::wasm::v2::stored(events))
            }

            fn decide(
                state: Option<Vec<u8>>,
                command: $crate::bindings_v2::exports::sluice::plugin::aggregate::Command,
            ) -> Result<
                Vec<$crate::bindings_v2::sluice::plugin::types::NewEvent>,
                $crate::bindings_v2::exports::sluice::plugin::aggregate::CommandError,
            > {
                $crate::wasm::v2::decide::<$aggregate>(state, command)
            }

            fn upcast(
                events: Vec<$crate::bindings_v2::sluice::plugin::types::EventEnvelope>,
            ) -> Result<Vec<$crate::bindings_v2::sluice::plugin::types::NewEvent>, String> {
                $crate::wasm::v2::upcast::<$aggregate>(events)
            }

            fn render(state: Vec<u8>) -> Result<String, String> {
                $crate::runtime::render::<$aggregate>(&state)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings_v2::export_bindings_v2!(SluiceAggregateExport with_types_in $crate::bindings_v2);
    };
}

/// Makes `$aggregate` (an [`Aggregate`]) the component's `sluice:plugin/aggregate@0.1.0`
/// export, for plugins built before 0.2.0: no schema versions are declared, and events reach
/// evolve as stored (which still runs [`DomainEvent::upcast`] inside the plugin). Only on
/// wasm32: natively (domain tests, benchmarks) the crate is a plain library.
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
