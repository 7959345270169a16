"""The `audit-feed` component: binds the logic of `audit.py` to the host's `sql` capability and
exports it as the `projection` interface of the `sluice:plugin@0.1.0` `projection-plugin` world
(componentize-py looks for the class named after the exported interface)."""

import audit
import wit_world.exports
from wit_world.imports import sql


class Projection(wit_world.exports.Projection):
    def describe(self):
        return audit.manifest()

    def handle(self, events):
        audit.handle(sql, events)

    def query(self, name, params):
        return audit.query(sql, name, params)
