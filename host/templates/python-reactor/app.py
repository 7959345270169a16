"""The `{{snake}}` component: binds reactor.py to the host's `outbox` and exports the `reactor`
interface of the `sluice:plugin@0.2.0` `reactor-plugin` world (componentize-py looks for the class
named after the exported interface)."""

import reactor
import wit_world.exports
from wit_world.imports import log, outbox


class Reactor(wit_world.exports.Reactor):
    def describe(self):
        return reactor.manifest()

    def handle(self, events):
        reactor.handle(outbox, events)
        log.log(log.Level.DEBUG, f"sent {len(events)} message(s)")
