//! A misbehaving aggregate for the host's end-to-end tests: each command shows one way a
//! plugin can fail (trap, run forever, exhaust memory, emit an undeclared event), so the tests
//! can prove that only the offending call fails and the host carries on.
//!
//! Every command may start a stream; `Ok` is the well-behaved control.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Aggregate, CommandContext, CommandError, CommandSpec, DomainEvent, Manifest};

/// No state worth keeping: renders as `{}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Faulty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FaultyCommand {
    /// Behaves: emits `Happened`.
    Ok {},
    /// Panics, which traps the component.
    Trap {},
    /// Never returns; only the host's CPU limit stops it.
    Spin {},
    /// Allocates until memory runs out; only the host's memory limit stops it.
    Hog {},
    /// Emits an event the manifest does not declare.
    Undeclared {},
    /// Behaves, slowly: counts for 200 ms of wall-clock time, then emits `Happened` (longer than
    /// a command may run on the host's async worker, far shorter than the call timeout).
    Slow {},
    /// Behaves, but keeps 4 MiB it never frees, then emits `Happened`: a leak that exhausts the
    /// memory cap of an instance that serves enough commands.
    Leak {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FaultyEvent {
    Happened {},
    /// Not in the manifest: the host must refuse to store it.
    Sneaky {},
}

impl DomainEvent for FaultyEvent {}

const COMMANDS: [&str; 7] = ["Ok", "Trap", "Spin", "Hog", "Undeclared", "Slow", "Leak"];

impl Aggregate for Faulty {
    type Command = FaultyCommand;
    type Event = FaultyEvent;

    fn manifest() -> Manifest {
        Manifest {
            aggregate_type: "Faulty".to_owned(),
            commands: COMMANDS.map(CommandSpec::creating).to_vec(),
            events: vec!["Happened".to_owned()],
            routes: Vec::new(),
            topic: "FaultyEvents".to_owned(),
        }
    }

    fn handle(&self, command: FaultyCommand, _: &CommandContext) -> Result<Vec<FaultyEvent>, CommandError> {
        match command {
            FaultyCommand::Ok {} => Ok(vec![FaultyEvent::Happened {}]),
            FaultyCommand::Trap {} => panic!("the Trap command traps, as asked"),
            FaultyCommand::Spin {} => spin(),
            FaultyCommand::Hog {} => hog(),
            FaultyCommand::Undeclared {} => Ok(vec![FaultyEvent::Sneaky {}]),
            FaultyCommand::Slow {} => {
                count_for(std::time::Duration::from_millis(200));
                Ok(vec![FaultyEvent::Happened {}])
            }
            FaultyCommand::Leak {} => {
                std::hint::black_box(Vec::leak(vec![0xA5u8; 4 << 20]));
                Ok(vec![FaultyEvent::Happened {}])
            }
        }
    }

    fn apply(&mut self, _: FaultyEvent) {}
}

/// Counts forever; `black_box` keeps the optimizer from proving the loop useless.
fn spin() -> ! {
    let mut count: u64 = 0;
    loop {
        count = std::hint::black_box(count.wrapping_add(1));
    }
}

/// Counts until `wanted` has passed on the monotonic clock.
fn count_for(wanted: std::time::Duration) {
    let started = std::time::Instant::now();
    let mut count: u64 = 0;
    while started.elapsed() < wanted {
        count = std::hint::black_box(count.wrapping_add(1));
    }
}

/// Keeps 1 MiB blocks of non-zero bytes (so every page is touched) until allocation fails.
fn hog() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xA5; 1 << 20]);
        std::hint::black_box(&mut hoard);
    }
}

// Only the component exports it: the export names (`sluice:plugin/aggregate@0.1.0#decide`)
// are not valid symbols for a native linker, and native builds only run the tests.
sluice_sdk::export_aggregate!(Faulty);

#[cfg(test)]
mod tests {
    use sluice_sdk::testing::AggregateTest;

    use super::*;

    #[test]
    fn ok_happens() {
        AggregateTest::<Faulty>::given_no_previous_events()
            .when_json("Ok", "{}")
            .then_expect_events(vec![FaultyEvent::Happened {}]);
    }

    #[test]
    #[should_panic(expected = "the Trap command traps")]
    fn trap_panics() {
        let _ = AggregateTest::<Faulty>::given(vec![FaultyEvent::Happened {}]).when_json("Trap", "{}");
    }

    #[test]
    fn undeclared_emits_an_event_the_manifest_does_not_declare() {
        AggregateTest::<Faulty>::given_no_previous_events()
            .when_json("Undeclared", "{}")
            .then_expect_events(vec![FaultyEvent::Sneaky {}]);
        assert_eq!(Faulty::manifest().events, ["Happened"]);
    }

    #[test]
    fn the_manifest_declares_every_command_as_creating() {
        let manifest = Faulty::manifest();
        let declared: Vec<(&str, bool)> = manifest.commands.iter().map(|c| (c.name.as_str(), c.creates)).collect();
        assert_eq!(declared, COMMANDS.map(|name| (name, true)));
        assert_eq!((manifest.aggregate_type.as_str(), manifest.topic.as_str()), ("Faulty", "FaultyEvents"));
        assert!(manifest.routes.is_empty());
    }
}
