"""Given these events, when this command, then these events or this refusal: aggregate.py natively."""

import json
import unittest

import aggregate
from aggregate import ARCHIVED, CREATED, RENAMED
from componentize_py_types import Err
from wit_world.exports import aggregate as wit
from wit_world.imports.types import EventEnvelope

ID = "6f1c1a52-1d0e-4c55-9d7e-3d6c2a1b0c01"


def envelope(event_type, data, version=1, schema_version=None):
    return EventEnvelope(
        aggregate_type="{{Pascal}}", aggregate_id=ID, version=version, global_position=version,
        event_type=event_type, schema_version=schema_version or aggregate.SCHEMAS[event_type][0],
        data=json.dumps(data), recorded_at="2026-01-01T10:00:00Z",
    )


class Given:
    """A stream that has seen `events` ((type, data) pairs)."""

    def __init__(self, *events):
        envelopes = [envelope(t, d, version=i + 1) for i, (t, d) in enumerate(events)]
        self.state = aggregate.evolve(None, envelopes) if events else None

    def when(self, command_type, body):
        """The events the command produced, as (type, data) pairs; a refusal raises `Err`."""
        command = wit.Command(
            command_type=command_type, aggregate_id=ID,
            data=body if isinstance(body, str) else json.dumps(body),
            issued_at="2026-01-01T10:00:00Z", fresh_id="00000000-0000-4000-8000-000000000000",
        )
        return [(e.event_type, json.loads(e.data)) for e in aggregate.decide(self.state, command)]


def created(name):
    return (CREATED, {"id": ID, "name": name})


class AggregateTest(unittest.TestCase):
    def refused(self, given, command_type, body, kind):
        with self.assertRaises(Err) as refusal:
            given.when(command_type, body)
        self.assertIsInstance(refusal.exception.value, kind)
        return refusal.exception.value.value

    def test_create_names_it(self):
        self.assertEqual(Given().when("Create{{Pascal}}", {"name": " First "}), [created("First")])

    def test_an_empty_or_missing_name_or_a_body_that_is_not_an_object_is_invalid(self):
        self.assertIn("name", self.refused(Given(), "Create{{Pascal}}", {"name": "  "}, wit.CommandError_Invalid))
        self.refused(Given(), "Create{{Pascal}}", {}, wit.CommandError_Invalid)
        self.refused(Given(), "Create{{Pascal}}", "[1]", wit.CommandError_Invalid)
        self.assertIn("not JSON", self.refused(Given(), "Create{{Pascal}}", '{"name":', wit.CommandError_Invalid))

    def test_it_cannot_be_created_twice(self):
        why = self.refused(Given(created("First")), "Create{{Pascal}}", {"name": "Again"}, wit.CommandError_Rejected)
        self.assertIn("exists", why)

    def test_a_rename_to_the_same_name_changes_nothing_to_another_one_renames(self):
        self.assertEqual(Given(created("First")).when("Rename{{Pascal}}", {"name": "First"}), [])
        self.assertEqual(
            Given(created("First")).when("Rename{{Pascal}}", {"name": "Second"}),
            [(RENAMED, {"id": ID, "name": "Second"})],
        )
        self.assertEqual(Given(created("First"), (RENAMED, {"id": ID, "name": "Second"})).state,
                         {"name": "Second", "archived": False})

    def test_an_archived_one_refuses_everything_a_missing_one_is_not_found(self):
        archived = Given(created("First"), (ARCHIVED, {"id": ID}))
        self.assertIn("archived", self.refused(archived, "Rename{{Pascal}}", {"name": "x"}, wit.CommandError_Rejected))
        self.refused(archived, "Archive{{Pascal}}", {}, wit.CommandError_Rejected)
        self.refused(Given(), "Archive{{Pascal}}", {}, wit.CommandError_NotFound)
        why = self.refused(Given(created("First")), "Paint{{Pascal}}", {}, wit.CommandError_Invalid)
        self.assertIn("unknown command", why)

    def test_an_old_rename_is_upcast_versions_it_cannot_read_are_refused(self):
        [current] = aggregate.upcast([envelope(RENAMED, {"id": ID, "newName": "Old"}, schema_version=1)])
        self.assertEqual((current.event_type, current.schema_version, json.loads(current.data)),
                         (RENAMED, 2, {"id": ID, "name": "Old"}))
        with self.assertRaises(Err) as refusal:
            aggregate.upcast([envelope(RENAMED, {"id": ID, "name": "Future"}, schema_version=3)])
        self.assertIn("schema versions 1 to 2", refusal.exception.value)
        declared = [s for s in aggregate.manifest().event_schemas if s.event_type == RENAMED]
        self.assertEqual(declared, [wit.EventSchema(event_type=RENAMED, current=2, oldest=1)])

    def test_events_that_do_not_fit_the_state_are_a_fault(self):
        with self.assertRaises(Err) as refusal:
            aggregate.evolve(None, [envelope(RENAMED, {"id": ID, "name": "x"})])
        self.assertIn("comes before", refusal.exception.value)

    def test_every_route_names_a_declared_command(self):
        manifest = aggregate.manifest()
        commands = {c.name for c in manifest.commands}
        for route in manifest.routes:
            self.assertIn(route.command, commands, route.path)
        for command in manifest.commands:
            self.assertEqual(json.loads(command.body_schema)["type"], "object")


if __name__ == "__main__":
    unittest.main()
