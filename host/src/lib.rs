//! Sluice: a CQRS and event-sourcing host whose domain code runs as sandboxed WebAssembly
//! components. The host owns every piece of I/O and knows no domain; plugins declare their
//! commands, events and routes.
//!
//! Where things live (the modules depend on each other one way only; `scripts/test` checks):
//! - [`config`]: the typed configuration (flags, `SLUICE_*` environment, TOML file).
//! - [`http`]: the axum edge — generic aggregate API, plugin routes, the admin routes, the one
//!   error type, the operator's dashboard at `/`.
//! - [`server`]: wiring all of the below into a running host.
//! - [`admin`]: the one admin service (install, replace, remove, roll back, rebuild, listings)
//!   that the admin routes, the plugins-directory watcher and the CLI call.
//! - [`supervisor`]: the named long-running tasks (consumers, relay), stopped and restarted
//!   alone; shutdown waits for them.
//! - [`plugin_dir`]: the plugins directory's startup listing and its watcher.
//! - [`command`]: command dispatch — replay, decide, append with optimistic concurrency.
//! - [`event_store`]: the event store contract and its backends (SQLite embedded, MongoDB).
//! - [`bus`]: the bus events travel on (embedded, or Kafka topics per aggregate type).
//! - [`relay`]: publishes the event store's log to Kafka, resuming after a crash.
//! - [`projection`]: projections following the log, checkpoints, dead letters, rebuilds.
//! - [`reactor`]: reactors — a projection runner whose batches record messages in an outbox,
//!   the channels the operator grants, and the delivery worker.
//! - [`read_store`]: the SQL read store (SQLite, PostgreSQL, MySQL/MariaDB) and its dialects.
//! - [`capabilities`]: the host side of the interfaces plugins import (`sql`, `log`, `outbox`).
//! - [`runtime`]: the wasmtime engine, sandbox limits, component cache and loader.
//! - [`bindings`]: every `bindgen!` of the host, a leaf that `runtime` and `capabilities` use.
//! - [`plugin`]: the plugin contracts (aggregate, projection, reactor), manifests, faults, the registry.
//! - [`scaffold`]: `sluice new`, the plugin skeletons embedded in the binary.
//! - [`telemetry`]: the Prometheus metrics every module records, and their names.
//! - [`idle`]: a bounded list of idle connections or instances kept for reuse (a leaf).

pub mod admin;
pub mod bindings;
pub mod bus;
pub mod capabilities;
pub mod command;
pub mod config;
pub mod event_store;
pub mod http;
pub mod idle;
pub mod plugin;
pub mod plugin_dir;
pub mod projection;
pub mod reactor;
pub mod read_store;
pub mod relay;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod supervisor;
pub mod telemetry;
