//! An aggregate whose `describe` traps: the host must refuse it at load (or upload), list the
//! reason, and leave whatever runs untouched. Its commands are never reached.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Aggregate, CommandContext, CommandError, DomainEvent, Manifest};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TrappingDescribe {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Never {}

impl DomainEvent for Never {}

impl Aggregate for TrappingDescribe {
    type Command = Never;
    type Event = Never;

    fn manifest() -> Manifest {
        panic!("describe traps, as this test plugin is meant to")
    }

    fn handle(&self, command: Never, _: &CommandContext) -> Result<Vec<Never>, CommandError> {
        match command {}
    }

    fn apply(&mut self, event: Never) {
        match event {}
    }
}

sluice_sdk::export_aggregate!(TrappingDescribe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "describe traps")]
    fn the_manifest_panics() {
        let _ = TrappingDescribe::manifest();
    }
}
