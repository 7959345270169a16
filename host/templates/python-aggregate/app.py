"""The `{{snake}}` component: exports aggregate.py as the `aggregate` interface of the
`sluice:plugin@0.2.0` `upcasting-aggregate-plugin` world (componentize-py looks for the class
named after the exported interface). The host keeps the state as opaque bytes: here, the state
dict as JSON text."""

import json

import aggregate
import wit_world.exports
from wit_world.imports import log


def _load(state):
    return None if state is None else json.loads(state)


class Aggregate(wit_world.exports.Aggregate):
    def describe(self):
        return aggregate.manifest()

    def evolve(self, state, events):
        return json.dumps(aggregate.evolve(_load(state), events)).encode()

    def decide(self, state, command):
        events = aggregate.decide(_load(state), command)
        log.log(log.Level.DEBUG, f"{command.command_type} on {command.aggregate_id}: {len(events)} event(s)")
        return events

    def upcast(self, events):
        return aggregate.upcast(events)

    def render(self, state):
        return json.dumps(_load(state))
