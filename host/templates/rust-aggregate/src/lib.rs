//! The {{Pascal}} aggregate: a named thing that can be renamed and archived.
//!
//! Replace the commands, events and rules with your domain's. `decide` ([`Aggregate::handle`])
//! and `evolve` ([`Aggregate::apply`]) are pure; `tests/{{snake}}.rs` tests them given/when/then.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Aggregate, CommandContext, CommandError, CommandSpec, DomainEvent, Manifest, Method, Route};

/// What clients ask for; the variant name is the command type, its fields the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum {{Pascal}}Command {
    Create{{Pascal}} { name: String },
    Rename{{Pascal}} { name: String },
    Archive{{Pascal}} {},
}

/// What happened; the serde name is the stable event type stored and published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum {{Pascal}}Event {
    #[serde(rename = "{{Pascal}}CreatedEvent")]
    Created { id: String, name: String },
    #[serde(rename = "{{Pascal}}RenamedEvent")]
    Renamed { id: String, name: String },
    #[serde(rename = "{{Pascal}}ArchivedEvent")]
    Archived { id: String },
}

/// Every event is at its first schema version: nothing to upcast yet.
impl DomainEvent for {{Pascal}}Event {}

/// The state: `Default` is a stream that has not started.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct {{Pascal}} {
    pub name: Option<String>,
    pub archived: bool,
}

fn valid_name(name: &str) -> Result<String, CommandError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(CommandError::invalid("name must have 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

impl Aggregate for {{Pascal}} {
    type Command = {{Pascal}}Command;
    type Event = {{Pascal}}Event;

    fn manifest() -> Manifest {
        Manifest {
            aggregate_type: "{{Pascal}}".to_owned(),
            commands: vec![
                CommandSpec::creating("Create{{Pascal}}"),
                CommandSpec::updating("Rename{{Pascal}}"),
                CommandSpec::updating("Archive{{Pascal}}"),
            ],
            events: ["{{Pascal}}CreatedEvent", "{{Pascal}}RenamedEvent", "{{Pascal}}ArchivedEvent"]
                .map(String::from)
                .to_vec(),
            routes: vec![
                Route::new(Method::Post, "/api/v1/{{camel}}", "Create{{Pascal}}").with_new_id().status(201).message("Created!"),
                Route::new(Method::Put, "/api/v1/{{camel}}/{id}/name", "Rename{{Pascal}}").message("Renamed!"),
                Route::new(Method::Delete, "/api/v1/{{camel}}/{id}", "Archive{{Pascal}}").message("Archived!"),
            ],
            topic: "{{snake}}-events".to_owned(),
        }
    }

    fn handle(&self, command: Self::Command, ctx: &CommandContext) -> Result<Vec<Self::Event>, CommandError> {
        let id = ctx.aggregate_id.clone();
        match command {
            {{Pascal}}Command::Create{{Pascal}} { name } => {
                if self.name.is_some() {
                    return Err(CommandError::rejected("it exists already"));
                }
                Ok(vec![{{Pascal}}Event::Created { id, name: valid_name(&name)? }])
            }
            _ if self.archived => Err(CommandError::rejected("it is archived")),
            {{Pascal}}Command::Rename{{Pascal}} { name } => {
                let name = valid_name(&name)?;
                if self.name.as_deref() == Some(name.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![{{Pascal}}Event::Renamed { id, name }])
            }
            {{Pascal}}Command::Archive{{Pascal}} {} => Ok(vec![{{Pascal}}Event::Archived { id }]),
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            {{Pascal}}Event::Created { name, .. } | {{Pascal}}Event::Renamed { name, .. } => self.name = Some(name),
            {{Pascal}}Event::Archived { .. } => self.archived = true,
        }
    }
}

// Only the component exports it; natively the crate is a library for the tests.
sluice_sdk::export_executing_aggregate!({{Pascal}});
