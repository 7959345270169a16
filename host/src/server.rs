//! Wiring: from a [`Config`] to a running host.

use std::sync::Arc;

use tokio::sync::watch;

use crate::command::CommandService;
use crate::config::{BusConfig, Config};
use crate::event_store::{self, EventStore, EventStoreError};
use crate::http::{self, AppState};
use crate::projection::{Projection, ProjectionError, Projections};
use crate::read_store::{ReadStore, ReadStoreError};
use crate::runtime::registry::{PluginRegistry, RegistryError};
use crate::runtime::{RuntimeError, WasmRuntime};

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create {path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("event store: {0}")]
    EventStore(#[from] EventStoreError),
    #[error(transparent)]
    ReadStore(#[from] ReadStoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("{0}")]
    NotAvailable(String),
}

/// A host ready to serve: the runtime, the loaded plugins and the stores.
pub struct Host {
    pub runtime: WasmRuntime,
    pub registry: PluginRegistry,
    pub store: Arc<dyn EventStore>,
    pub read_store: ReadStore,
    pub state: AppState,
    stop: watch::Sender<bool>,
}

impl Host {
    /// Open the stores and load the plugins directory; projections are opened but not running.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        check_available(config)?;
        for dir in [&config.data_dir, &config.plugins_dir] {
            std::fs::create_dir_all(dir).map_err(|source| StartError::Dir { path: dir.clone(), source })?;
        }
        let runtime = WasmRuntime::new(Some(config.data_dir.join("cache")), config.limits)?;
        let registry = PluginRegistry::new();
        registry.load_dir(&runtime, &config.plugins_dir)?;
        let store = event_store::open(&config.event_store).await?;
        let read_store = ReadStore::open(&config.read_store).await?;
        let projections = Projections::new();
        for plugin in registry.projections() {
            projections.insert(Projection::open(plugin, store.clone(), read_store.clone()).await?);
        }
        let commands = CommandService::new(registry.clone(), store.clone());
        let state = AppState { commands, projections, body_limit: config.body_limit };
        let (stop, _) = watch::channel(false);
        Ok(Self { runtime, registry, store, read_store, state, stop })
    }

    /// Start following the log with every projection.
    pub fn run_projections(&self) {
        for projection in self.state.projections.all() {
            tokio::spawn(projection.run(self.state.commands.subscribe(), self.stop.subscribe()));
        }
    }

    /// Stop the projection followers (each finishes the batch it is in).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }
}

/// Backends named by the configuration that this version does not have yet.
fn check_available(config: &Config) -> Result<(), StartError> {
    if let BusConfig::Kafka { bootstrap } = &config.bus {
        return Err(StartError::NotAvailable(format!(
            "--bus kafka://{bootstrap}: the Kafka bus is not built yet in this version; use --bus embedded"
        )));
    }
    Ok(())
}
