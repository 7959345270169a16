//! An aggregate whose manifest is invalid: it declares a route under `/admin`, which the host
//! keeps for itself. The host must refuse it at load (or upload) with the reason, and leave
//! whatever runs untouched.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Aggregate, CommandContext, CommandError, CommandSpec, DomainEvent, Manifest, Method, Route};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ReservedRoute {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReservedCommand {
    Take {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReservedEvent {
    Taken {},
}

impl DomainEvent for ReservedEvent {}

/// The route it must not have.
pub const RESERVED_PATH: &str = "/admin/plugins/{id}/take";

impl Aggregate for ReservedRoute {
    type Command = ReservedCommand;
    type Event = ReservedEvent;

    fn manifest() -> Manifest {
        Manifest {
            aggregate_type: "ReservedRoute".to_owned(),
            commands: vec![CommandSpec::creating("Take")],
            events: vec!["Taken".to_owned()],
            routes: vec![Route::new(Method::Post, RESERVED_PATH, "Take").with_id_param("id")],
            topic: "ReservedRouteEvents".to_owned(),
        }
    }

    fn handle(&self, command: ReservedCommand, _: &CommandContext) -> Result<Vec<ReservedEvent>, CommandError> {
        match command {
            ReservedCommand::Take {} => Ok(vec![ReservedEvent::Taken {}]),
        }
    }

    fn apply(&mut self, _: ReservedEvent) {}
}

sluice_sdk::export_aggregate!(ReservedRoute);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_claims_a_path_under_admin() {
        let manifest = ReservedRoute::manifest();
        assert!(manifest.routes.iter().any(|r| r.path.starts_with("/admin")), "{:?}", manifest.routes);
    }
}
