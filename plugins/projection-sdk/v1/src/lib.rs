//! The generated bindings of the 0.1.0 `projection-plugin` world, re-exported by
//! `sluice-projection-sdk` as `bindings`; plugin code should not need them.
//!
//! A crate of its own because WIT 0.2.0 names its world `projection-plugin` too, and wit-bindgen
//! exports a helper macro named after the world from the crate root: two in one crate collide.

wit_bindgen::generate!({
    world: "projection-plugin",
    path: "../../../wit/v0.1",
    pub_export_macro: true,
    export_macro_name: "export_bindings",
    default_bindings_module: "::sluice_projection_sdk::bindings",
});
