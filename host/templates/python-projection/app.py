"""The `{{snake}}` component: binds projection.py to the host's `sql` capability and exports the
`projection` interface of the `sluice:plugin@0.1.0` `projection-plugin` world (componentize-py
looks for the class named after the exported interface)."""

import projection
import wit_world.exports
from wit_world.imports import sql


class Projection(wit_world.exports.Projection):
    def describe(self):
        return projection.manifest()

    def handle(self, events):
        projection.handle(sql, events)

    def query(self, name, params):
        return projection.query(sql, name, params)
