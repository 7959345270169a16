//! Wiring: from a [`Config`] to a running host.

use std::sync::Arc;

use tokio::sync::watch;

use crate::bus::{BusError, KafkaBus};
use crate::command::CommandService;
use crate::config::{BusConfig, Config};
use crate::event_store::{self, EventStore, EventStoreError};
use crate::http::{self, AppState};
use crate::projection::{Projection, ProjectionError, Projections};
use crate::read_store::{ReadStore, ReadStoreError};
use crate::relay::Relay;
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
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// A host ready to serve: the runtime, the loaded plugins and the stores.
pub struct Host {
    pub runtime: WasmRuntime,
    pub registry: PluginRegistry,
    pub store: Arc<dyn EventStore>,
    pub read_store: ReadStore,
    pub state: AppState,
    /// The Kafka bus, when configured (else projections follow the event store directly).
    pub bus: Option<KafkaBus>,
    /// This host's name among the hosts sharing the stores (kept in the data directory).
    pub host_id: String,
    stop: watch::Sender<bool>,
}

impl Host {
    /// Open the stores and load the plugins directory; projections are opened but not running.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
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
        let commands = CommandService::new(registry.clone(), store.clone(), config.cached_states);
        let state = AppState { commands, projections, body_limit: config.body_limit };
        let bus = match &config.bus {
            BusConfig::Embedded => None,
            BusConfig::Kafka { bootstrap } => {
                let bus = KafkaBus::new(bootstrap)?;
                let topics: Vec<String> =
                    registry.aggregates().iter().map(|a| bus.topic(&a.manifest().topic)).collect();
                bus.ensure_topics(&topics).await?;
                Some(bus)
            }
        };
        let (stop, _) = watch::channel(false);
        let host_id = host_id(&config.data_dir)?;
        Ok(Self { runtime, registry, store, read_store, state, bus, host_id, stop })
    }

    /// Start following the log with every projection, and with Kafka, the relay.
    pub fn run_projections(&self) {
        let Some(bus) = &self.bus else {
            for projection in self.state.projections.all() {
                tokio::spawn(projection.run(self.state.commands.subscribe(), self.stop.subscribe()));
            }
            return;
        };
        // A host without aggregates knows no topic to publish to; hosts that have them relay.
        if !self.registry.aggregates().is_empty() {
            let relay = Relay::new(self.store.clone(), bus.clone(), self.registry.clone(), self.host_id.clone());
            tokio::spawn(relay.run(self.state.commands.subscribe(), self.stop.subscribe()));
        }
        for projection in self.state.projections.all() {
            let topics = self.topics_of(&projection);
            tokio::spawn(projection.run_kafka(bus.clone(), topics, self.host_id.clone(), self.stop.subscribe()));
        }
    }

    /// The topics of the aggregates whose events `projection` handles (all of them when it
    /// names none of the loaded aggregates' events).
    fn topics_of(&self, projection: &Projection) -> Vec<String> {
        let Some(bus) = &self.bus else { return Vec::new() };
        let subscriptions = &projection.plugin().manifest().subscriptions;
        let aggregates = self.registry.aggregates();
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

    /// Stop the projection followers (each finishes the batch it is in).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }
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
