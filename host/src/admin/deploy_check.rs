//! The deploy-time check: before a plugin version is installed (at start-up, from a file, or by
//! upload), the event store's counts per (aggregate type, event type, schema version) are held
//! against what the plugin can read, so a version that could not replay or project the events
//! already stored is refused with the list of what it cannot read, instead of failing later on
//! some command or batch. An operator may force it in (`?force=true`); the mismatch then stays
//! in the admin listing.
//!
//! What a plugin can read:
//! - an aggregate, the stored events of its aggregate type: the event types it declares, each at
//!   the schema versions from its `oldest` to its `current` (WIT 0.2.0). A 0.1.0 aggregate
//!   declares no versions and replays its history as stored: only its event types are checked.
//! - a projection, the stored events it subscribes to, as their owning aggregate delivers them:
//!   current, when the owner (the loaded aggregate of that type) can upcast them. Events of a
//!   type no loaded aggregate declares versions for reach it as stored, and are not held
//!   against it (a projection declares no schema versions).

use serde::{Deserialize, Serialize};

use crate::event_store::SchemaCount;
use crate::plugin::{Plugin, PluginRegistry};

/// Stored events a plugin cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Unreadable {
    pub aggregate_type: String,
    pub event_type: String,
    pub schema_version: u32,
    /// How many such events the store holds.
    pub count: u64,
    /// What the plugin reads instead.
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.count == 1 { "" } else { "s" };
        write!(
            f,
            "{} {} v{} ({} event{plural}): {}",
            self.aggregate_type, self.event_type, self.schema_version, self.count, self.reason
        )
    }
}

/// The stored events `plugin` could not read, were it installed beside (or in the place of its
/// namesake among) the plugins of `registry`; empty when it reads them all.
pub fn unreadable(plugin: &Plugin, registry: &PluginRegistry, counts: &[SchemaCount]) -> Vec<Unreadable> {
    let refuse = |count: &SchemaCount, reason: String| Unreadable {
        aggregate_type: count.aggregate_type.clone(),
        event_type: count.event_type.clone(),
        schema_version: count.schema_version,
        count: count.count,
        reason,
    };
    match plugin {
        Plugin::Aggregate(logic) => {
            let manifest = logic.manifest();
            counts
                .iter()
                .filter(|c| c.aggregate_type == manifest.aggregate_type)
                .filter_map(|c| {
                    if !manifest.events.contains(&c.event_type) {
                        return Some(refuse(c, "the plugin does not declare this event type".into()));
                    }
                    let schema = manifest.schema(&c.event_type)?;
                    (!schema.reads(c.schema_version)).then(|| {
                        refuse(c, format!("the plugin reads schema versions {}..={}", schema.oldest, schema.current))
                    })
                })
                .collect()
        }
        Plugin::Projection(_) | Plugin::Reactor(_) => {
            let subscriptions = match plugin {
                Plugin::Projection(logic) => &logic.manifest().subscriptions,
                Plugin::Reactor(logic) => &logic.manifest().subscriptions,
                Plugin::Aggregate(_) => return Vec::new(),
            };
            counts
                .iter()
                .filter(|c| subscriptions.contains(&c.event_type))
                .filter_map(|c| {
                    let owner = registry.aggregate(&c.aggregate_type)?;
                    let schema = owner.manifest().schema(&c.event_type)?;
                    (!schema.reads(c.schema_version)).then(|| {
                        refuse(
                            c,
                            format!(
                                "its aggregate upcasts schema versions {}..={} only, so it cannot deliver it",
                                schema.oldest, schema.current
                            ),
                        )
                    })
                })
                .collect()
        }
    }
}

/// The list, for a refusal's message.
pub fn describe(unreadable: &[Unreadable]) -> String {
    unreadable.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
