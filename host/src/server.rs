//! Wiring: from a [`Config`] to a running host — the stores, the runtime, the registry, the
//! [`Admin`] service that loads every plugin, and the [`Supervisor`] that runs the consumers,
//! the relay and the plugins-directory watcher, each one stoppable alone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::versions::VersionStore;
use crate::admin::{Admin, AdminParts};
use crate::bus::{BusError, KafkaBus};
use crate::command::CommandService;
use crate::config::{BusConfig, Config};
use crate::event_store::{self, EventStore, EventStoreError};
use crate::http::admin_auth::AdminToken;
use crate::http::{self, AppState};
use crate::plugin::{PluginKind, PluginRegistry};
use crate::plugin_dir::{self, DirChange, PluginDirWatcher};
use crate::projection::{ProjectionError, Projections};
use crate::reactor::channels::Channels;
use crate::read_store::{ReadStore, ReadStoreError};
use crate::relay::Relay;
use crate::runtime::{RuntimeError, WasmRuntime, loader};
use crate::supervisor::Supervisor;

/// How long the plugins directory must be quiet before a change is acted on.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(300);

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create {path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("event store: {0}")]
    EventStore(#[from] EventStoreError),
    #[error(transparent)]
    ReadStore(#[from] ReadStoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("cannot watch the plugins directory: {0}")]
    Watch(#[from] plugin_dir::WatchError),
}

/// A host ready to serve: the runtime, the loaded plugins and the stores.
pub struct Host {
    pub runtime: WasmRuntime,
    pub registry: PluginRegistry,
    pub store: Arc<dyn EventStore>,
    pub read_store: ReadStore,
    pub state: AppState,
    pub admin: Admin,
    /// The Kafka bus, when configured (else projections follow the event store directly).
    pub bus: Option<KafkaBus>,
    /// This host's name among the hosts sharing the stores (kept in the data directory).
    pub host_id: String,
    pub supervisor: Supervisor,
    config: Config,
    watcher: std::sync::Mutex<Option<PluginDirWatcher>>,
}

impl Host {
    /// Open the stores and load the plugins directory; consumers are opened but not running.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        // The metrics recorder goes in before anything records: what is recorded without one is lost.
        crate::telemetry::handle();
        for dir in [&config.data_dir, &config.plugins_dir] {
            std::fs::create_dir_all(dir).map_err(|source| StartError::Dir { path: dir.clone(), source })?;
        }
        let runtime = WasmRuntime::new(Some(config.data_dir.join("cache")), config.limits)?;
        let registry = PluginRegistry::new();
        let store = event_store::open_polling(&config.event_store, config.log_poll).await?;
        let read_store = ReadStore::open(&config.read_store).await?;
        let projections = Projections::new();
        let commands = CommandService::new(registry.clone(), store.clone(), config.cached_states);
        let bus = match &config.bus {
            BusConfig::Embedded => None,
            BusConfig::Kafka { bootstrap } => Some(KafkaBus::new(bootstrap)?),
        };
        let host_id = host_id(&config.data_dir)?;
        let supervisor = Supervisor::new();
        let channels = Channels::open(&config.channels, bus.as_ref())?;
        let admin = Admin::new(AdminParts {
            runtime: runtime.clone(),
            registry: registry.clone(),
            commands: commands.clone(),
            projections: projections.clone(),
            store: store.clone(),
            read_store: read_store.clone(),
            bus: bus.clone(),
            host_id: host_id.clone(),
            supervisor: supervisor.clone(),
            plugins_dir: config.plugins_dir.clone(),
            versions: VersionStore::new(config.data_dir.join("versions")),
            dead_letters: config.dead_letters,
            channels,
            delivery: config.delivery,
        });
        for (path, bytes) in aggregates_first(&runtime, plugin_dir::scan(&config.plugins_dir)?).await {
            // A refusal is listed by the admin service; the other plugins load regardless.
            if let Err(e) = admin.install_file(&file_name(&path), bytes).await {
                tracing::debug!(file = %path.display(), "not loaded: {e}");
            }
        }
        let state = AppState {
            commands,
            projections,
            admin: Some(admin.clone()),
            admin_token: AdminToken::new(config.admin_token.as_deref()),
            body_limit: config.body_limit,
            upload_limit: config.upload_limit,
        };
        Ok(Self {
            runtime,
            registry,
            store,
            read_store,
            state,
            admin,
            bus,
            host_id,
            supervisor,
            config: config.clone(),
            watcher: std::sync::Mutex::new(None),
        })
    }

    /// Start the consumers of every projection, the relay (with Kafka) and the watcher of the
    /// plugins directory.
    pub async fn run(&self) -> Result<(), StartError> {
        self.admin.start_consumers().await;
        if let Err(e) = self.supervisor.spawn("metrics-upkeep", |stop| Box::pin(crate::telemetry::upkeep(stop))) {
            tracing::error!("metrics upkeep not started: {e}");
        }
        if let Some(bus) = &self.bus {
            let (store, bus, registry, owner) =
                (self.store.clone(), bus.clone(), self.registry.clone(), self.host_id.clone());
            let commands = self.state.commands.clone();
            let spawned = self.supervisor.spawn("relay", move |stop| {
                let relay = Relay::new(store.clone(), bus.clone(), registry.clone(), owner.clone());
                Box::pin(relay.run(commands.subscribe(), stop))
            });
            if let Err(e) = spawned {
                tracing::error!("relay not started: {e}");
            }
        }
        self.watch_plugins_dir()
    }

    /// Act on what changes in the plugins directory: a new or changed file is installed, a
    /// removed one's plugin is removed.
    fn watch_plugins_dir(&self) -> Result<(), StartError> {
        let known = self
            .registry
            .plugins()
            .into_iter()
            .map(|l| (self.config.plugins_dir.join(&l.info.source), l.info.sha256.clone()))
            .collect();
        let (watcher, mut changes) = PluginDirWatcher::start(&self.config.plugins_dir, WATCH_DEBOUNCE, known)?;
        *self.watcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(watcher);
        let admin = self.admin.clone();
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                match change {
                    DirChange::Upsert { path, bytes, .. } => {
                        if let Err(e) = admin.install_file(&file_name(&path), bytes).await {
                            tracing::debug!(file = %path.display(), "not loaded: {e}");
                        }
                    }
                    DirChange::Removed { path } => {
                        if let Err(e) = admin.file_removed(&file_name(&path)).await {
                            tracing::error!(file = %path.display(), "cannot remove its plugin: {e}");
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Stop the watcher and every task (each consumer finishes the batch it is in), and wait.
    pub async fn shutdown(&self) {
        self.watcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        self.supervisor.shutdown().await;
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }
}

/// The plugin files, aggregates first (then in name order): a projection's or reactor's
/// deploy check holds it to what the aggregates that own its events deliver, so they must be
/// loaded before it is checked.
async fn aggregates_first(runtime: &WasmRuntime, files: Vec<(PathBuf, Vec<u8>, String)>) -> Vec<(PathBuf, Vec<u8>)> {
    let mut ordered = Vec::with_capacity(files.len());
    for (path, bytes, _) in files {
        let (runtime, origin, copy) = (runtime.clone(), file_name(&path), bytes.clone());
        // Compiling is CPU work for seconds (cached on disk for the load that follows).
        let kind = tokio::task::spawn_blocking(move || loader::kind_of(&runtime, &origin, &copy)).await;
        let aggregate = kind.unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), "cannot tell the plugin's kind: {e}");
            None
        }) == Some(PluginKind::Aggregate);
        ordered.push((!aggregate, path, bytes));
    }
    // Stable: name order within each group.
    ordered.sort_by_key(|(later, ..)| *later);
    ordered.into_iter().map(|(_, path, bytes)| (path, bytes)).collect()
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The host's id: read from `<data-dir>/host-id`, created on the first start.
fn host_id(data_dir: &std::path::Path) -> Result<String, StartError> {
    let path = data_dir.join("host-id");
    let io = |source| StartError::Dir { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let id = format!("host-{}", uuid::Uuid::new_v4());
    std::fs::write(&path, format!("{id}\n")).map_err(io)?;
    Ok(id)
}
