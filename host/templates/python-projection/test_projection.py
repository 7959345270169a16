"""Given these events, when this query, then this answer: projection.py on an in-memory `sql`."""

import json
import unittest

import projection
from componentize_py_types import Err
from memory_sql import MemorySql
from wit_world.exports import projection as wit
from wit_world.imports.types import EventEnvelope


class Given:
    def __init__(self, *events):
        self.sql = MemorySql(projection.manifest())
        self.position = 0
        self.apply(*events)

    def apply(self, *events):
        for event_type, data in events:
            self.position += 1
            envelope = EventEnvelope(
                aggregate_type="Item", aggregate_id=str(data.get("id")), version=1, global_position=self.position,
                event_type=event_type, schema_version=1, data=json.dumps(data),
                recorded_at=f"2026-01-01T10:00:{self.position:02}Z",
            )
            projection.handle(self.sql, [envelope])

    def query(self, name, **params):
        return projection.query(self.sql, name, list(params.items()))


def created(item_id, name):
    return ("ItemCreatedEvent", {"id": item_id, "name": name})


class ProjectionTest(unittest.TestCase):
    def test_nothing_yet_is_no_content(self):
        self.assertEqual(Given().query("all").status, 204)

    def test_created_items_are_listed_in_order_and_found_by_id(self):
        given = Given(created("b", "First"), created("a", "Second"))
        body = json.loads(given.query("all").body)
        self.assertEqual(body["message"], "Successfully returned 2 item(s)!")
        self.assertEqual([i["id"] for i in body["items"]], ["b", "a"])
        self.assertEqual(json.loads(given.query("byId", id="a").body)["items"], [{"id": "a", "name": "Second", "renames": 0}])

    def test_a_rename_counts_and_an_archive_removes(self):
        given = Given(created("a", "First"), ("ItemRenamedEvent", {"id": "a", "name": "Renamed"}),
                      created("b", "x"), ("ItemArchivedEvent", {"id": "b"}))
        self.assertEqual(json.loads(given.query("all").body)["items"], [{"id": "a", "name": "Renamed", "renames": 1}])

    def test_an_event_applied_twice_or_unreadable_is_refused(self):
        given = Given(created("a", "First"))
        with self.assertRaises(Err) as refused:
            given.apply(created("a", "Again"))
        self.assertIn("ItemCreatedEvent at 2", refused.exception.value)
        with self.assertRaises(Err):
            given.apply(("ItemCreatedEvent", {"id": "c"}))

    def test_bad_queries_are_named(self):
        with self.assertRaises(Err) as refused:
            Given().query("byId")
        self.assertIsInstance(refused.exception.value, wit.QueryError_Invalid)
        with self.assertRaises(Err) as refused:
            Given().query("everything")
        self.assertEqual(refused.exception.value, wit.QueryError_UnknownQuery("everything"))


if __name__ == "__main__":
    unittest.main()
