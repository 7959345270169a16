//! Reactor plugins: the `reactor-plugin` world's bindings and [`WasmReactor`]. A batch runs in
//! one fresh instance whose clocks stand still and whose `outbox` collects what it sends; each
//! event is handed to `handle` alone, so every message is tagged with the event that sent it
//! (the message's id is built from it, see [`crate::reactor`]).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};

use super::{PluginCtx, RuntimeError, WasmRuntime, classify_fault};
use crate::capabilities::log::{LogCapability, LogSink};
use crate::capabilities::outbox::OutboxCapability;
use crate::event_store::StoredEvent;
use crate::plugin::{HandleFailure, Outgoing, ReactorLogic, ReactorManifest, StartAt};

use crate::bindings::reactor::exports::sluice::plugin::reactor as wit;
use crate::bindings::reactor::{ReactorPlugin, ReactorPluginPre};

/// The export of a reactor component.
pub const EXPORT: &str = "sluice:plugin/reactor@0.2.0";

/// The most one batch may take (guest CPU only: a reactor does no I/O of its own).
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A reactor plugin loaded from a component.
pub struct WasmReactor {
    runtime: WasmRuntime,
    pre: ReactorPluginPre<PluginCtx>,
    manifest: ReactorManifest,
    log: Arc<LogSink>,
}

impl WasmReactor {
    /// Link a compiled component and read its manifest.
    pub fn load(runtime: &WasmRuntime, origin: &str, component: &Component) -> Result<Self, RuntimeError> {
        let link_error =
            |e: wasmtime::Error| RuntimeError::Link { origin: origin.to_owned(), reason: format!("{e:#}") };
        let mut linker = Linker::<PluginCtx>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_error)?;
        crate::bindings::types_v2::add_to_linker::<PluginCtx, HasSelf<LogCapability>>(&mut linker, |ctx| &mut ctx.log)
            .map_err(link_error)?;
        super::link_log(&mut linker).map_err(link_error)?;
        crate::bindings::outbox::add_to_linker::<PluginCtx, HasSelf<OutboxCapability>>(&mut linker, |ctx| {
            &mut ctx.outbox
        })
        .map_err(link_error)?;
        let pre = ReactorPluginPre::new(linker.instantiate_pre(component).map_err(link_error)?).map_err(link_error)?;
        let name = origin.to_owned();
        let mut store = runtime.new_frozen_store(runtime.limits().call_timeout);
        store.data_mut().log.grant(LogSink::new(origin));
        let described = pre
            .instantiate(&mut store)
            .and_then(|plugin| plugin.sluice_plugin_reactor().call_describe(&mut store))
            .map_err(|e| RuntimeError::Contract {
                plugin: name.clone(),
                reason: classify_fault(&name, &store, &e).to_string(),
            })?;
        let manifest = ReactorManifest {
            name: described.name,
            subscriptions: described.subscriptions,
            channels: described.channels,
            start: match described.start {
                wit::StartAt::Now => StartAt::Now,
                wit::StartAt::Beginning => StartAt::Beginning,
            },
        };
        manifest
            .validate()
            .map_err(|reason| RuntimeError::Contract { plugin: name, reason: format!("invalid manifest: {reason}") })?;
        let log = LogSink::new(manifest.name.clone());
        Ok(Self { runtime: runtime.clone(), pre, manifest, log })
    }
}

impl ReactorLogic for WasmReactor {
    fn manifest(&self) -> &ReactorManifest {
        &self.manifest
    }

    fn handle(&self, events: &[StoredEvent]) -> Result<Vec<Outgoing>, HandleFailure> {
        let plugin_name = self.manifest.name.as_str();
        let timeout = self
            .runtime
            .limits()
            .call_timeout
            .saturating_mul(u32::try_from(1 + events.len() / 100).unwrap_or(u32::MAX))
            .min(BATCH_TIMEOUT);
        let mut store = self.runtime.new_frozen_store(timeout);
        store.data_mut().log.grant(self.log.clone());
        store.data_mut().outbox.grant(&self.manifest.channels);
        let plugin: ReactorPlugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| HandleFailure::Fault(classify_fault(plugin_name, &store, &e)))?;
        let mut outgoing = Vec::new();
        for event in events {
            let envelope = super::aggregate::to_envelope_v2(event);
            match plugin.sluice_plugin_reactor().call_handle(&mut store, std::slice::from_ref(&envelope)) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(HandleFailure::Refused(reason)),
                Err(e) => return Err(HandleFailure::Fault(classify_fault(plugin_name, &store, &e))),
            }
            let sent = store.data_mut().outbox.take();
            outgoing.extend(sent.into_iter().enumerate().map(|(index, sent)| Outgoing {
                position: event.global_position,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                sent,
            }));
        }
        Ok(outgoing)
    }
}
