//! The one admin service: everything an operator does to a running host — list plugins and
//! consumers, install, replace, remove and roll back plugins, rebuild projections — behind one
//! [`Admin`] that the HTTP admin routes ([`crate::http::admin`]), the plugins-directory watcher
//! and the CLI all call, so each operation has one implementation.
//!
//! Every install goes the same way, whatever brought the bytes (a file, an upload, a rollback):
//! compile, link and `describe` the new version before touching the running one; a refusal
//! changes nothing and is listed with its reason. Then:
//! - a new plugin joins the registry (its routes mount); a new projection opens its tables,
//!   starts from its checkpoint (0 the first time) and catches up;
//! - an aggregate replace is one registry swap: commands in flight finish on the old version,
//!   later ones run on the new, and cached states of the old version are never reused;
//! - a projection replace with the same schema swaps at a committed batch boundary and the new
//!   version continues from the old one's checkpoint; with another schema it is built into fresh
//!   tables while the old version serves, and switched to once it has caught up.
//!
//! Before any of that, the deploy-time check ([`deploy_check`]) holds the stored events' schema
//! versions against what the new version can read; one that cannot read them is refused with
//! the list, unless forced, and then the mismatch stays in its listing.
//!
//! Changes are serialised by one lock; readers (requests) never wait for it.

pub mod dead_letters;
pub mod delivery_letters;
pub mod deploy_check;
pub mod dry_run;
pub mod reactors;
pub mod rebuilds;
pub mod tail;
pub mod versions;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::bus::KafkaBus;
use crate::command::CommandService;
use crate::event_store::{EventStore, EventStoreError, SchemaCensus};
use crate::plugin::{Loaded, Plugin, PluginKind, PluginRegistry, ProjectionLogic, RegistryError, Upcaster, sha256_hex};
use crate::projection::{Projection, ProjectionError, Projections};
use crate::read_store::ReadStore;
use crate::runtime::{RuntimeError, WasmRuntime, loader};
use crate::supervisor::{Supervisor, TaskState};
use deploy_check::Unreadable;
use versions::{StoredVersion, VersionError, VersionStore};

/// Why an admin operation was refused or failed, classified by blame.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The bytes are not a component this host can run (the uploader's fault).
    #[error(transparent)]
    Invalid(#[from] RuntimeError),
    /// The plugin clashes with what is loaded: a name or a route (the uploader's fault).
    #[error(transparent)]
    Conflict(#[from] RegistryError),
    #[error("the component declares {declared}, not {expected}")]
    WrongName { expected: String, declared: String },
    #[error("no plugin {0} is loaded")]
    UnknownPlugin(String),
    #[error("plugin {name} has no stored version {sha256}")]
    UnknownVersion { name: String, sha256: String },
    #[error("projection {0} is being upgraded to a new schema; try again when it has switched")]
    Busy(String),
    /// The plugin cannot read events the store holds (the uploader's fault; `force` overrides).
    #[error("{name} cannot read stored events: {}; deploy with force=true to install it anyway", deploy_check::describe(.events))]
    Unreadable { name: String, events: Vec<Unreadable> },
    /// The event store could not be asked what it holds.
    #[error(transparent)]
    Store(#[from] EventStoreError),
    #[error(transparent)]
    Versions(#[from] VersionError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("cannot write {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("host task failed: {0}")]
    Task(String),
    #[error("no dead letter {0}")]
    UnknownLetter(i64),
    /// No parked delivery has this id (`delivery:<message id>` of a loaded reactor).
    #[error("no dead letter {0}")]
    UnknownDeliveryLetter(String),
    /// A rebuild of the projection already runs (the caller waits for it and tries again).
    #[error("projection {0} is already being rebuilt; watch its progress and try again when it ends")]
    RebuildRunning(String),
    /// Only a parked letter can be retried or dropped; a blocked one moves with its head.
    #[error("dead letter {id} is {state:?}, not parked: retry or drop the parked letter of its aggregate")]
    NotParked { id: i64, state: crate::read_store::LetterState },
    /// A reactor names a channel the operator did not grant (the uploader's or the operator's).
    #[error("reactor {reactor} sends to channel {channel:?}, which is not granted (configure [channels.{channel}]; granted: {})", if granted.is_empty() { "none".to_owned() } else { granted.join(", ") })]
    UngrantedChannel { reactor: String, channel: String, granted: Vec<String> },
    #[error("no reactor {0} is loaded")]
    NotAReactor(String),
    #[error("reactor {reactor} has no outbox message {id}")]
    UnknownMessage { reactor: String, id: String },
    #[error("outbox message {id} is {state}, not parked")]
    MessageNotParked { id: String, state: String },
    /// A reactor's outbox or position could not be read or written.
    #[error("outbox: {0}")]
    Outbox(crate::read_store::ReadStoreError),
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Created,
    Replaced,
    /// The same sha256 was already running.
    Unchanged,
}

/// A component the host refused, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    pub source: String,
    pub sha256: String,
    pub reason: String,
    pub at: String,
}

/// A plugin as the admin listing shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    pub name: String,
    pub kind: PluginKind,
    pub sha256: String,
    pub source: String,
    /// `running`, `catching-up` (behind the log's head, or building a new schema version),
    /// `paused: dead letters` (more parked letters than the limit; an operator resumes it),
    /// `stopped` or `failed`.
    pub status: String,
    /// The sha256 of a new schema version being built while this one serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrading_to: Option<String>,
    /// A consumer's committed position (none for aggregates).
    pub position: Option<u64>,
    pub head: u64,
    pub lag: Option<u64>,
    pub last_error: Option<String>,
    /// A projection's latest swap pauses (old version's last commit to the new one's first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_swap_pauses_micros: Vec<u64>,
    /// Stored events this version cannot read: it was installed with `force` over them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatch: Vec<Unreadable>,
    /// A projection's latest rebuild since the host started (running or ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<rebuilds::RebuildProgress>,
}

/// A stored version of a plugin, for the versions listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    #[serde(flatten)]
    pub version: StoredVersion,
    pub active: bool,
}

/// What the admin service works on; built once by the host.
pub struct AdminParts {
    pub runtime: WasmRuntime,
    pub registry: PluginRegistry,
    pub commands: CommandService,
    pub projections: Projections,
    pub store: Arc<dyn EventStore>,
    pub read_store: ReadStore,
    pub bus: Option<KafkaBus>,
    pub host_id: String,
    pub supervisor: Supervisor,
    pub plugins_dir: PathBuf,
    pub versions: VersionStore,
    /// How consumers treat events that keep failing.
    pub dead_letters: crate::projection::letters::DeadLetterPolicy,
    /// The channels granted to reactors.
    pub channels: crate::reactor::channels::Channels,
    /// How reactors' messages are retried before they park.
    pub delivery: crate::reactor::delivery::DeliveryPolicy,
}

/// The admin service; cheap to clone.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    parts: AdminParts,
    /// Serialises changes.
    changes: tokio::sync::Mutex<()>,
    refused: Mutex<Vec<Refused>>,
    /// Projections being built into fresh tables for a new schema.
    upgrading: Mutex<HashMap<String, String>>,
    /// Off until the host serves: a listing or a one-off rebuild runs no consumer.
    consumers_enabled: std::sync::atomic::AtomicBool,
    /// Upgrades found before the host serves; they start with the consumers.
    deferred: Mutex<Vec<Upgrade>>,
    /// Per plugin installed with `force`, the stored events it cannot read.
    mismatches: Mutex<HashMap<String, Vec<Unreadable>>>,
    /// Each projection's latest rebuild, for progress.
    rebuilds: rebuilds::Rebuilds,
    /// Stored events per schema, for the deploy-time check.
    census: SchemaCensus,
}

/// A projection version with a new schema, to build while the current one serves.
struct Upgrade {
    runner: Arc<Projection>,
    plugin: Plugin,
    logic: Arc<dyn ProjectionLogic>,
    source: String,
    sha256: String,
}

/// How many refusals the listing keeps.
const REFUSALS_KEPT: usize = 50;

impl Admin {
    pub fn new(parts: AdminParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                changes: tokio::sync::Mutex::new(()),
                refused: Mutex::new(Vec::new()),
                upgrading: Mutex::new(HashMap::new()),
                consumers_enabled: std::sync::atomic::AtomicBool::new(false),
                deferred: Mutex::new(Vec::new()),
                mismatches: Mutex::new(HashMap::new()),
                rebuilds: rebuilds::Rebuilds::default(),
                census: SchemaCensus::default(),
            }),
        }
    }

    fn parts(&self) -> &AdminParts {
        &self.inner.parts
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.parts().registry
    }

    pub fn projections(&self) -> &Projections {
        &self.parts().projections
    }

    pub fn plugins_dir(&self) -> &Path {
        &self.parts().plugins_dir
    }

    /// Install component `bytes` that were read from file `source` of the plugins directory.
    /// Bytes the file no longer holds are stale (an upload or another write came after them, and
    /// its own change follows): they are skipped, so a late event never undoes a newer change.
    pub async fn install_file(
        &self,
        source: &str,
        bytes: Vec<u8>,
    ) -> Result<Option<(Installed, PluginStatus)>, AdminError> {
        let _change = self.inner.changes.lock().await;
        let now_there = std::fs::read(self.plugins_dir().join(source)).ok();
        if now_there.is_none_or(|current| sha256_hex(&current) != sha256_hex(&bytes)) {
            tracing::debug!(file = %source, "skipped bytes the file no longer holds");
            return Ok(None);
        }
        self.install_locked(source.to_owned(), bytes, None, false).await.map(Some)
    }

    /// Install uploaded `bytes` as plugin `name`, writing them into the plugins directory so a
    /// restart keeps them (over the file the plugin came from, else `<name>.wasm`). `force`
    /// installs a version that cannot read some stored events (listed as its `mismatch`).
    pub async fn upload(
        &self,
        name: &str,
        bytes: Vec<u8>,
        force: bool,
    ) -> Result<(Installed, PluginStatus), AdminError> {
        let _change = self.inner.changes.lock().await;
        let source = self.registry().get(name).map_or_else(|| format!("{name}.wasm"), |l| l.info.source.clone());
        let outcome = self.install_locked(source.clone(), bytes.clone(), Some(name), force).await?;
        if outcome.0 != Installed::Unchanged || !self.plugins_dir().join(&source).exists() {
            self.write_file(&source, &bytes)?;
        }
        Ok(outcome)
    }

    /// Run an earlier version of `name` again: the same path as any install.
    pub async fn activate(&self, name: &str, sha256: &str) -> Result<PluginStatus, AdminError> {
        let _change = self.inner.changes.lock().await;
        let Some(bytes) = self.parts().versions.read(name, sha256)? else {
            return Err(AdminError::UnknownVersion { name: name.to_owned(), sha256: sha256.to_owned() });
        };
        let source = self.registry().get(name).map_or_else(|| format!("{name}.wasm"), |l| l.info.source.clone());
        let (_, status) = self.install_locked(source.clone(), bytes.clone(), Some(name), false).await?;
        self.write_file(&source, &bytes)?;
        Ok(status)
    }

    /// Remove plugin `name` and its file: its consumers stop at a batch boundary and its routes
    /// unmount; its tables and position stay, so installing it again resumes exactly.
    pub async fn delete(&self, name: &str) -> Result<(), AdminError> {
        let _change = self.inner.changes.lock().await;
        let loaded = self.remove_locked(name).await?;
        let path = self.plugins_dir().join(&loaded.info.source);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(AdminError::File { path, source }),
        }
    }

    /// The file `source` left the plugins directory: remove the plugin it held, if any.
    pub async fn file_removed(&self, source: &str) -> Result<Option<String>, AdminError> {
        let _change = self.inner.changes.lock().await;
        let Some(loaded) = self.registry().plugins().into_iter().find(|l| l.info.source == source) else {
            return Ok(None);
        };
        self.remove_locked(&loaded.info.name).await?;
        Ok(Some(loaded.info.name.clone()))
    }

    async fn remove_locked(&self, name: &str) -> Result<Loaded, AdminError> {
        if self.is_upgrading(name) {
            return Err(AdminError::Busy(name.to_owned()));
        }
        let loaded = self.registry().get(name).ok_or_else(|| AdminError::UnknownPlugin(name.to_owned()))?;
        // The routes first, then the consumer (at a batch boundary) and the runner.
        self.registry().remove(name);
        crate::telemetry::plugin_swap(name, "remove");
        self.inner.mismatches.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
        self.inner.rebuilds.forget(name);
        if let Plugin::Projection(_) | Plugin::Reactor(_) = loaded.plugin {
            self.parts().supervisor.remove(&consumer_task(name)).await;
            self.parts().supervisor.remove(&reactors::delivery_task(name)).await;
            self.parts().projections.remove(name);
        }
        if matches!(loaded.plugin, Plugin::Aggregate(_)) {
            self.restart_kafka_consumers().await;
        }
        tracing::info!(plugin = %name, kind = %loaded.info.kind, "plugin removed");
        Ok(loaded)
    }

    async fn install_locked(
        &self,
        source: String,
        bytes: Vec<u8>,
        expected_name: Option<&str>,
        force: bool,
    ) -> Result<(Installed, PluginStatus), AdminError> {
        let sha256 = sha256_hex(&bytes);
        // The same bytes as a running plugin of that name or file: nothing to compile.
        let same = self.registry().plugins().into_iter().find(|l| {
            l.info.sha256 == sha256 && expected_name.map_or(l.info.source == source, |name| l.info.name == name)
        });
        if let Some(running) = same {
            return Ok((Installed::Unchanged, self.status(&running).await));
        }
        let result = self.try_install(&source, &bytes, expected_name, force).await;
        match &result {
            Ok((installed, status)) => {
                self.forget_refusal(&source);
                let what = match installed {
                    Installed::Created => "plugin loaded",
                    Installed::Replaced => "plugin replaced",
                    Installed::Unchanged => "plugin unchanged (same sha256)",
                };
                match installed {
                    Installed::Created => crate::telemetry::plugin_swap(&status.name, "install"),
                    Installed::Replaced => crate::telemetry::plugin_swap(&status.name, "replace"),
                    Installed::Unchanged => {}
                }
                tracing::info!(plugin = %status.name, %source, sha256 = %status.sha256, "{what}");
            }
            Err(e) => {
                tracing::error!(plugin = %source, %sha256, "plugin refused: {e}");
                self.note_refusal(Refused { source, sha256, reason: e.to_string(), at: now() });
            }
        }
        result
    }

    async fn try_install(
        &self,
        source: &str,
        bytes: &[u8],
        expected_name: Option<&str>,
        force: bool,
    ) -> Result<(Installed, PluginStatus), AdminError> {
        let runtime = self.parts().runtime.clone();
        let (origin, owned) = (source.to_owned(), bytes.to_vec());
        // Compiling is CPU work for seconds: off the async threads.
        let component = tokio::task::spawn_blocking(move || loader::load(&runtime, &origin, &owned))
            .await
            .map_err(|e| AdminError::Task(e.to_string()))??;
        let name = component.plugin.name().to_owned();
        if let Some(expected) = expected_name
            && expected != name
        {
            return Err(AdminError::WrongName { expected: expected.to_owned(), declared: name });
        }
        if self.is_upgrading(&name) {
            return Err(AdminError::Busy(name));
        }
        let existing = self.registry().get(&name);
        if let Some(existing) = &existing
            && existing.info.sha256 == component.sha256
        {
            return Ok((Installed::Unchanged, self.status(existing).await));
        }
        if let Plugin::Reactor(reactor) = &component.plugin {
            self.check_channels(reactor.as_ref())?;
        }
        let counts = self.inner.census.counts(self.parts().store.as_ref()).await?;
        let unreadable = deploy_check::unreadable(&component.plugin, self.registry(), &counts);
        // A version once installed by force stays forced: a restart, which loads the files
        // without `force`, loads it again (its mismatch listed) instead of refusing it.
        let forced_before = !unreadable.is_empty()
            && !force
            && self.parts().versions.was_forced(&name, &component.sha256).unwrap_or_else(|e| {
                tracing::warn!(plugin = %name, "cannot read whether this version was forced: {e}");
                false
            });
        if !unreadable.is_empty() && !force && !forced_before {
            return Err(AdminError::Unreadable { name, events: unreadable });
        }
        let forced = !unreadable.is_empty();
        if !unreadable.is_empty() {
            tracing::warn!(plugin = %name, "installed by force over stored events it cannot read: {}", deploy_check::describe(&unreadable));
        }
        self.note_mismatch(&name, unreadable);
        let installed = match (existing, component.plugin.clone()) {
            (None, Plugin::Aggregate(_)) => {
                self.registry().add(component.plugin, source.to_owned(), component.sha256.clone())?;
                self.ensure_topics().await;
                self.restart_kafka_consumers().await;
                Installed::Created
            }
            (None, Plugin::Projection(logic)) => {
                // Tables built by an earlier schema version (a file replaced while the host was
                // down): that version serves them while this one builds fresh tables.
                if let Some((previous, previous_sha)) = self.previous_version(&name, &logic).await? {
                    self.check_routes(&Plugin::Projection(previous.clone()))?;
                    self.check_routes(&component.plugin)?;
                    self.start_projection(previous.clone(), &previous_sha).await?;
                    self.registry().add(Plugin::Projection(previous), source.to_owned(), previous_sha)?;
                    let runner = self.parts().projections.get(&name)?;
                    runner.know_version(&logic, &component.sha256);
                    self.start_upgrade(runner, component.plugin, logic, source.to_owned(), component.sha256.clone());
                    self.record_version(&name, bytes, source, &component.sha256, forced)?;
                    let loaded = self.registry().get(&name).ok_or_else(|| AdminError::UnknownPlugin(name.clone()))?;
                    return Ok((Installed::Created, self.status(&loaded).await));
                }
                // Name and routes checked first (a refusal leaves nothing behind), then the
                // runner, then the routes: a route never leads to a projection not yet there.
                self.check_routes(&component.plugin)?;
                self.start_projection(logic, &component.sha256).await?;
                if let Err(e) = self.registry().add(component.plugin, source.to_owned(), component.sha256.clone()) {
                    self.parts().supervisor.remove(&consumer_task(&name)).await;
                    self.parts().projections.remove(&name);
                    return Err(e.into());
                }
                Installed::Created
            }
            (None, Plugin::Reactor(reactor)) => {
                self.check_routes(&component.plugin)?;
                self.start_reactor(reactor, &component.sha256).await?;
                if let Err(e) = self.registry().add(component.plugin, source.to_owned(), component.sha256.clone()) {
                    self.parts().supervisor.remove(&consumer_task(&name)).await;
                    self.parts().supervisor.remove(&reactors::delivery_task(&name)).await;
                    self.parts().projections.remove(&name);
                    return Err(e.into());
                }
                Installed::Created
            }
            (Some(old), Plugin::Reactor(reactor)) => {
                if old.info.kind != PluginKind::Reactor {
                    return Err(RegistryError::NameTaken {
                        kind: old.info.kind,
                        name,
                        existing: old.info.source.clone(),
                    }
                    .into());
                }
                // At a batch boundary, from the old version's position: nothing is handled twice.
                let runner = self.parts().projections.get(&name)?;
                let resets = self.reset_generation(&name).await?;
                let logic: Arc<dyn ProjectionLogic> = Arc::new(crate::reactor::ReactorRunner::new(reactor, resets));
                runner.know_version(&logic, &component.sha256);
                self.registry().replace(component.plugin, source.to_owned(), component.sha256.clone())?;
                runner.replace(logic).await;
                Installed::Replaced
            }
            (Some(old), Plugin::Aggregate(_)) => {
                if old.info.kind != PluginKind::Aggregate {
                    return Err(RegistryError::NameTaken {
                        kind: old.info.kind,
                        name,
                        existing: old.info.source.clone(),
                    }
                    .into());
                }
                self.registry().replace(component.plugin, source.to_owned(), component.sha256.clone())?;
                Installed::Replaced
            }
            (Some(old), Plugin::Projection(logic)) => {
                let Plugin::Projection(old_logic) = &old.plugin else {
                    return Err(RegistryError::NameTaken {
                        kind: old.info.kind,
                        name,
                        existing: old.info.source.clone(),
                    }
                    .into());
                };
                let runner = self.parts().projections.get(&name)?;
                runner.know_version(&logic, &component.sha256);
                let same_schema = old_logic.manifest().schema_version == logic.manifest().schema_version
                    && old_logic.manifest().schema == logic.manifest().schema;
                if same_schema {
                    // Routes first (checked, may refuse), then the runner at a batch boundary.
                    self.registry().replace(component.plugin, source.to_owned(), component.sha256.clone())?;
                    runner.replace(logic).await;
                } else {
                    self.check_routes(&component.plugin)?;
                    self.start_upgrade(runner, component.plugin, logic, source.to_owned(), component.sha256.clone());
                }
                Installed::Replaced
            }
        };
        self.record_version(&name, bytes, source, &component.sha256, forced)?;
        let loaded = self.registry().get(&name).ok_or_else(|| AdminError::UnknownPlugin(name.clone()))?;
        Ok((installed, self.status(&loaded).await))
    }

    /// Keep the version just installed, marked when it went in by force over stored events.
    fn record_version(
        &self,
        name: &str,
        bytes: &[u8],
        source: &str,
        sha256: &str,
        forced: bool,
    ) -> Result<(), AdminError> {
        self.parts().versions.record(name, bytes, source)?;
        if forced {
            self.parts().versions.mark_forced(name, sha256)?;
        }
        Ok(())
    }

    /// The stored version of projection `name` that built its tables, when those tables were
    /// built by another schema version than `logic`'s (none when there are no tables, they fit
    /// `logic`, or no stored version has their schema version).
    async fn previous_version(
        &self,
        name: &str,
        logic: &Arc<dyn ProjectionLogic>,
    ) -> Result<Option<(Arc<dyn ProjectionLogic>, String)>, AdminError> {
        let Some(checkpoint) = self.parts().read_store.checkpoint(name).await.map_err(ProjectionError::from)? else {
            return Ok(None);
        };
        if checkpoint.schema_version == logic.manifest().schema_version {
            return Ok(None);
        }
        for version in self.parts().versions.list(name)? {
            let Some(bytes) = self.parts().versions.read(name, &version.sha256)? else { continue };
            let runtime = self.parts().runtime.clone();
            let origin = format!("{name} {}", version.sha256);
            let loaded = tokio::task::spawn_blocking(move || loader::load(&runtime, &origin, &bytes))
                .await
                .map_err(|e| AdminError::Task(e.to_string()))?;
            match loaded {
                Ok(component) => {
                    if let Plugin::Projection(previous) = component.plugin
                        && previous.manifest().schema_version == checkpoint.schema_version
                    {
                        tracing::info!(projection = %name, sha256 = %version.sha256, "the tables were built by this earlier version: it serves while the new one builds");
                        return Ok(Some((previous, component.sha256)));
                    }
                }
                Err(e) => {
                    tracing::warn!(projection = %name, sha256 = %version.sha256, "stored version does not load: {e}")
                }
            }
        }
        Ok(None)
    }

    /// Would `plugin` fit the registry in place of the plugin of its name? (Nothing changes.)
    fn check_routes(&self, plugin: &Plugin) -> Result<(), AdminError> {
        Ok(self.registry().check(plugin)?)
    }

    /// Open a projection's tables and start its consumer.
    async fn start_projection(&self, logic: Arc<dyn ProjectionLogic>, sha256: &str) -> Result<(), AdminError> {
        let parts = self.parts();
        let upcaster = Upcaster::new(parts.registry.clone());
        let projection = Projection::open_with(
            logic.clone(),
            parts.store.clone(),
            parts.read_store.clone(),
            parts.dead_letters,
            upcaster,
        )
        .await?;
        projection.know_version(&logic, sha256);
        parts.projections.insert(projection.clone());
        self.spawn_consumer(projection);
        Ok(())
    }

    /// Build the new schema's tables in the background; the old version serves until the switch,
    /// then the registry swaps the routes.
    fn start_upgrade(
        &self,
        runner: Arc<Projection>,
        plugin: Plugin,
        logic: Arc<dyn ProjectionLogic>,
        source: String,
        sha256: String,
    ) {
        let name = runner.name().to_owned();
        self.inner.upgrading.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone(), sha256.clone());
        if !self.inner.consumers_enabled.load(std::sync::atomic::Ordering::SeqCst) {
            let upgrade = Upgrade { runner, plugin, logic, source, sha256 };
            self.inner.deferred.lock().unwrap_or_else(PoisonError::into_inner).push(upgrade);
            return;
        }
        let admin = self.clone();
        tokio::spawn(async move {
            tracing::info!(projection = %name, "new schema: building fresh tables while the old version serves");
            let switching = admin.clone();
            let (swap_name, swap_source, swap_sha) = (name.clone(), source.clone(), sha256.clone());
            // In the switch: the routes swap with the tables, and the projection is free again.
            let on_switch = Box::new(move || {
                if let Err(e) = switching.registry().replace(plugin, swap_source, swap_sha) {
                    tracing::error!("upgraded, but the routes could not be swapped: {e}");
                }
                switching.inner.upgrading.lock().unwrap_or_else(PoisonError::into_inner).remove(&swap_name);
            });
            let outcome = runner.upgrade(logic, on_switch, &|_, _| {}).await;
            match outcome {
                Ok(position) => tracing::info!(projection = %name, position, "switched to the new schema"),
                Err(e) => {
                    admin.inner.upgrading.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
                    tracing::error!(projection = %name, "upgrade failed; the old version keeps serving: {e}");
                    admin.note_refusal(Refused { source, sha256, reason: format!("upgrade failed: {e}"), at: now() });
                }
            }
        });
    }

    fn is_upgrading(&self, name: &str) -> bool {
        self.inner.upgrading.lock().unwrap_or_else(PoisonError::into_inner).contains_key(name)
    }

    /// Create the aggregates' topics and start the consumer of every projection, and of every
    /// projection installed from now on.
    pub async fn start_consumers(&self) {
        self.inner.consumers_enabled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.ensure_topics().await;
        self.ensure_channel_topics().await;
        for projection in self.parts().projections.all() {
            if self.parts().bus.is_some() {
                // A projection without bus offsets first catches up from the log; doing it here,
                // before the host says it is ready, keeps that pass short and before new events.
                if let Err(e) = projection.catch_up_if_fresh().await {
                    tracing::warn!(projection = %projection.name(), "initial catch-up not finished, the consumer retries: {e}");
                }
            }
            self.spawn_consumer(projection);
        }
        let deferred = std::mem::take(&mut *self.inner.deferred.lock().unwrap_or_else(PoisonError::into_inner));
        for Upgrade { runner, plugin, logic, source, sha256 } in deferred {
            self.start_upgrade(runner, plugin, logic, source, sha256);
        }
    }

    /// Start the task that feeds `projection`: the embedded follower, or its Kafka consumer.
    fn spawn_consumer(&self, projection: Arc<Projection>) {
        if !self.inner.consumers_enabled.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let parts = self.parts();
        let name = consumer_task(projection.name());
        let projection_for_delivery = projection.clone();
        let commands = parts.commands.clone();
        let bus = parts.bus.clone();
        let registry = parts.registry.clone();
        let host_id = parts.host_id.clone();
        let spawned = parts.supervisor.spawn(name.clone(), move |stop| {
            let projection = projection.clone();
            match &bus {
                None => Box::pin(projection.run(commands.subscribe(), stop)),
                Some(bus) => {
                    let topics = topics_of(bus, &registry, &projection);
                    Box::pin(projection.run_kafka(bus.clone(), topics, host_id.clone(), stop))
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(task = %name, "consumer not started: {e}");
        }
        self.spawn_delivery(&projection_for_delivery);
    }

    /// Create the topics of the loaded aggregates (once the host serves: a one-off listing or
    /// rebuild creates nothing on the broker).
    async fn ensure_topics(&self) {
        if !self.inner.consumers_enabled.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(bus) = &self.parts().bus else { return };
        let topics: Vec<String> = self.registry().aggregates().iter().map(|a| bus.topic(&a.manifest().topic)).collect();
        if let Err(e) = bus.ensure_topics(&topics).await {
            tracing::error!("cannot create the topics of the aggregates: {e}");
        }
    }

    /// The aggregates changed: Kafka consumers re-subscribe to the topics they now need.
    async fn restart_kafka_consumers(&self) {
        if self.parts().bus.is_none() {
            return;
        }
        for projection in self.parts().projections.all() {
            let task = consumer_task(projection.name());
            if let Err(e) = self.parts().supervisor.restart(&task).await {
                tracing::debug!(%task, "not restarted: {e}");
            }
        }
    }

    /// Every loaded plugin with its status.
    pub async fn plugins(&self) -> Vec<PluginStatus> {
        // One read of the head for the whole listing (on FerretDB every read is a scan).
        let head = self.head().await;
        self.registry().plugins().iter().map(|loaded| self.status_at(loaded, head)).collect()
    }

    /// One plugin with its status.
    pub async fn plugin(&self, name: &str) -> Result<PluginStatus, AdminError> {
        let loaded = self.registry().get(name).ok_or_else(|| AdminError::UnknownPlugin(name.to_owned()))?;
        Ok(self.status(&loaded).await)
    }

    /// Components the host refused, newest last.
    pub fn refused(&self) -> Vec<Refused> {
        self.inner.refused.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The stored versions of `name`, newest activation first.
    pub fn versions(&self, name: &str) -> Result<(Option<String>, Vec<VersionStatus>), AdminError> {
        let active = self.registry().get(name).map(|l| l.info.sha256.clone());
        let versions = self.parts().versions.list(name)?;
        if active.is_none() && versions.is_empty() {
            return Err(AdminError::UnknownPlugin(name.to_owned()));
        }
        let listed = versions
            .into_iter()
            .map(|version| VersionStatus { active: Some(&version.sha256) == active.as_ref(), version })
            .collect();
        Ok((active, listed))
    }

    /// Every consumer (projection) with its position and lag.
    pub async fn consumers(&self) -> Vec<PluginStatus> {
        self.plugins().await.into_iter().filter(|p| p.kind != PluginKind::Aggregate).collect()
    }

    /// Rebuild projection `name`, in place or into the read store at `into`. `progress` hears
    /// (position, head) as it goes; so does [`Admin::rebuild_progress`], for other callers. A
    /// second rebuild of the same projection while one runs is refused.
    pub async fn rebuild(
        &self,
        name: &str,
        into: Option<&ReadStore>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, AdminError> {
        let projection = self.parts().projections.get(name)?;
        let Some(running) = self.inner.rebuilds.start(name) else {
            return Err(AdminError::RebuildRunning(name.to_owned()));
        };
        running.advance(0, self.head().await);
        let noted = |position: u64, head: u64| {
            running.advance(position, head);
            progress(position, head);
        };
        let outcome = projection.rebuild(into, &noted).await;
        running.finish(outcome.as_ref().copied().map_err(ToString::to_string));
        Ok(outcome?)
    }

    /// The latest rebuild of projection `name` since the host started, running or ended.
    pub fn rebuild_progress(&self, name: &str) -> Result<Option<rebuilds::RebuildProgress>, AdminError> {
        self.parts().projections.get(name)?;
        Ok(self.inner.rebuilds.get(name))
    }

    async fn status(&self, loaded: &Loaded) -> PluginStatus {
        let head = self.head().await;
        self.status_at(loaded, head)
    }

    /// The log's head, for lag (0, logged, when the store cannot tell).
    async fn head(&self) -> u64 {
        match self.parts().store.known_head().await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!("cannot read the log's head: {e}");
                0
            }
        }
    }

    /// `loaded`'s status against the log's `head`.
    fn status_at(&self, loaded: &Loaded, head: u64) -> PluginStatus {
        let info = &loaded.info;
        let failure = match self.parts().supervisor.state(&consumer_task(&info.name)) {
            Some(TaskState::Panicked(message)) => Some(format!("the consumer panicked: {message}")),
            _ => None,
        };
        let runner = self.parts().projections.get(&info.name).ok();
        let pauses = runner.as_ref().map_or_else(Vec::new, |r| {
            r.swap_pauses().iter().map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)).collect()
        });
        let (status, position) = match loaded.plugin {
            Plugin::Aggregate(_) => ("running".to_owned(), None),
            Plugin::Projection(_) | Plugin::Reactor(_) => {
                let position = runner.as_ref().map(|p| p.position());
                let running = self.parts().supervisor.is_running(&consumer_task(&info.name));
                let status = if self.is_upgrading(&info.name) {
                    "catching-up"
                } else if runner.as_ref().is_some_and(|r| r.is_paused()) {
                    "paused: dead letters"
                } else if failure.is_some() {
                    "failed"
                } else if !running {
                    "stopped"
                } else if position.is_some_and(|p| p < head) {
                    "catching-up"
                } else {
                    "running"
                };
                (status.to_owned(), position)
            }
        };
        PluginStatus {
            name: info.name.clone(),
            kind: info.kind,
            sha256: info.sha256.clone(),
            source: info.source.clone(),
            status,
            position,
            head,
            lag: position.map(|p| head.saturating_sub(p)),
            last_error: failure,
            recent_swap_pauses_micros: pauses,
            upgrading_to: self.inner.upgrading.lock().unwrap_or_else(PoisonError::into_inner).get(&info.name).cloned(),
            mismatch: self
                .inner
                .mismatches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&info.name)
                .cloned()
                .unwrap_or_default(),
            rebuild: self.inner.rebuilds.get(&info.name),
        }
    }

    fn note_refusal(&self, refusal: Refused) {
        let mut refused = self.inner.refused.lock().unwrap_or_else(PoisonError::into_inner);
        refused.retain(|r| r.source != refusal.source);
        refused.push(refusal);
        let excess = refused.len().saturating_sub(REFUSALS_KEPT);
        refused.drain(..excess);
    }

    /// Remember what a forced install cannot read (forget it when the new version reads all).
    /// Noted before the install, which may still fail: then the next install notes again.
    fn note_mismatch(&self, name: &str, unreadable: Vec<Unreadable>) {
        let mut mismatches = self.inner.mismatches.lock().unwrap_or_else(PoisonError::into_inner);
        if unreadable.is_empty() {
            mismatches.remove(name);
        } else {
            mismatches.insert(name.to_owned(), unreadable);
        }
    }

    fn forget_refusal(&self, source: &str) {
        self.inner.refused.lock().unwrap_or_else(PoisonError::into_inner).retain(|r| r.source != source);
    }

    /// Write a component into the plugins directory, whole: a temporary (hidden) name, then a
    /// rename, so the directory watcher never sees half of it.
    fn write_file(&self, source: &str, bytes: &[u8]) -> Result<(), AdminError> {
        let path = self.plugins_dir().join(source);
        let partial = self.plugins_dir().join(format!(".{source}.partial"));
        std::fs::write(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|source| AdminError::File { path, source })
    }
}

/// The supervisor's name for the task that feeds projection `name`.
pub fn consumer_task(name: &str) -> String {
    format!("projection:{name}")
}

/// The topics of the aggregates whose events `projection` handles (all of them when it names
/// none of the loaded aggregates' events).
fn topics_of(bus: &KafkaBus, registry: &PluginRegistry, projection: &Projection) -> Vec<String> {
    let plugin = projection.plugin();
    let subscriptions = &plugin.manifest().subscriptions;
    let aggregates = registry.aggregates();
    let mut topics: Vec<String> = aggregates
        .iter()
        .filter(|a| a.manifest().events.iter().any(|e| subscriptions.contains(e)))
        .map(|a| bus.topic(&a.manifest().topic))
        .collect();
    if topics.is_empty() {
        topics = aggregates.iter().map(|a| bus.topic(&a.manifest().topic)).collect();
    }
    topics.sort();
    topics.dedup();
    topics
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
