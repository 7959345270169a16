//! A test aggregate whose aggregate type is `accounts`, the name of the `accounts` projection,
//! so end-to-end tests can show the host refuses a plugin of one kind under a name a plugin of
//! the other kind holds (the admin API names both kinds in one space: `/admin/plugins/{name}`).
//!
//! Otherwise harmless: one command, `Note`, that starts a stream with one `Noted` event; no
//! routes.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Aggregate, CommandContext, CommandError, CommandSpec, DomainEvent, Manifest};

/// No state worth keeping: renders as `{}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Squatter {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SquatterCommand {
    Note {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SquatterEvent {
    Noted {},
}

impl DomainEvent for SquatterEvent {}

/// The name it squats on.
pub const AGGREGATE_TYPE: &str = "accounts";

impl Aggregate for Squatter {
    type Command = SquatterCommand;
    type Event = SquatterEvent;

    fn manifest() -> Manifest {
        Manifest {
            aggregate_type: AGGREGATE_TYPE.to_owned(),
            commands: vec![CommandSpec::creating("Note")],
            events: vec!["Noted".to_owned()],
            routes: Vec::new(),
            topic: "SquatterEvents".to_owned(),
        }
    }

    fn handle(&self, command: SquatterCommand, _: &CommandContext) -> Result<Vec<SquatterEvent>, CommandError> {
        match command {
            SquatterCommand::Note {} => Ok(vec![SquatterEvent::Noted {}]),
        }
    }

    fn apply(&mut self, _: SquatterEvent) {}
}

// Only the component exports it: natively the crate is a library for the tests.
sluice_sdk::export_aggregate!(Squatter);

#[cfg(test)]
mod tests {
    use sluice_sdk::testing::AggregateTest;

    use super::*;

    #[test]
    fn is_named_like_the_accounts_projection() {
        let manifest = Squatter::manifest();
        assert_eq!(manifest.aggregate_type, "accounts");
        assert!(manifest.routes.is_empty());
    }

    #[test]
    fn note_is_noted() {
        AggregateTest::<Squatter>::given_no_previous_events()
            .when_json("Note", "{}")
            .then_expect_events(vec![SquatterEvent::Noted {}]);
    }
}
