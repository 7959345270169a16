"""Given post events, when a query runs, then this answer: the `audit-feed` projection's logic on
an in-memory `sql`, natively (`python -m unittest`)."""

import json
import unittest

import audit
from componentize_py_types import Err
from memory_sql import MemorySql
from wit_world.exports import projection as wit
from wit_world.imports.types import EventEnvelope

POST = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"


class Given:
    """A fresh projection that has applied `events` (pairs of type and data)."""

    def __init__(self, *events):
        self.sql = MemorySql(audit.manifest())
        self.position = 0
        self.and_(*events)

    def and_(self, *events):
        for event_type, data in events:
            self.position += 1
            envelope = EventEnvelope(
                aggregate_type="Post",
                aggregate_id=data.get("id", ""),
                version=1,
                global_position=self.position,
                event_type=event_type,
                schema_version=1,
                data=json.dumps(data),
                recorded_at=f"2026-01-01T10:00:{self.position:02}Z",
            )
            audit.handle(self.sql, [envelope])
        return self

    def query(self, name, **params):
        return audit.query(self.sql, name, list(params.items()))

    def entries(self, name, **params):
        answer = self.query(name, **params)
        self_test.assertEqual(answer.status, 200, answer.body)
        body = json.loads(answer.body)
        self_test.assertEqual(body["message"], f"Successfully returned {len(body['entries'])} audit entries!")
        return body["entries"]


def created(post_id, author):
    return ("PostCreatedEvent", {"id": post_id, "author": author, "message": "hi", "datePosted": "2026-01-01T10:00:00Z"})


def commented(post_id, user):
    return ("CommentAddedEvent", {"id": post_id, "commentId": "c1", "comment": "yes", "username": user, "commentDate": "x"})


self_test = unittest.TestCase()


class AuditFeedTest(unittest.TestCase):
    def test_the_manifest_declares_its_table_queries_and_routes(self):
        manifest = audit.manifest()
        self.assertEqual(manifest.name, "audit_feed")
        self.assertEqual([t.name for t in manifest.tables], ["post_audit"])
        self.assertEqual(sorted(r.query for r in manifest.routes), ["byPost", "feed"])
        self.assertIn("PostRemovedEvent", manifest.subscriptions)

    def test_no_events_is_no_content(self):
        self.assertEqual(Given().query("feed").status, 204)

    def test_every_event_is_one_entry_in_log_order_naming_who_acted(self):
        given = Given(created(POST, "Ada"), ("PostLikedEvent", {"id": POST}), commented(POST, "Grace"))
        entries = given.entries("feed")
        self.assertEqual([e["position"] for e in entries], [1, 2, 3])
        self.assertEqual([e["eventType"] for e in entries], ["PostCreatedEvent", "PostLikedEvent", "CommentAddedEvent"])
        self.assertEqual([e["actor"] for e in entries], ["Ada", None, "Grace"])
        self.assertEqual(entries[0], {
            "position": 1, "postId": POST, "eventType": "PostCreatedEvent", "actor": "Ada",
            "recordedAt": "2026-01-01T10:00:01Z",
        })

    def test_the_feed_pages_after_a_position(self):
        given = Given(*[created(f"p{i}", "Ada") for i in range(5)])
        self.assertEqual([e["position"] for e in given.entries("feed", after="2", limit="2")], [3, 4])
        self.assertEqual(given.query("feed", after="5").status, 204)

    def test_bad_paging_is_invalid(self):
        for params in ({"after": "x"}, {"limit": "0"}, {"limit": "100000"}, {"after": "-1"}):
            with self.assertRaises(Err) as refused:
                Given().query("feed", **params)
            self.assertIsInstance(refused.exception.value, wit.QueryError_Invalid, params)

    def test_by_post_lists_only_that_post(self):
        given = Given(created(POST, "Ada"), created(OTHER, "Alan"), ("PostRemovedEvent", {"id": POST}))
        self.assertEqual([e["position"] for e in given.entries("byPost", postId=POST)], [1, 3])
        self.assertEqual(given.query("byPost", postId="nobody").status, 204)

    def test_an_event_applied_twice_is_refused(self):
        given = Given(created(POST, "Ada"))
        given.position = 0
        with self.assertRaises(Err) as refused:
            given.and_(created(POST, "Ada"))
        self.assertIn("PostCreatedEvent at 1", refused.exception.value)

    def test_an_event_without_a_post_id_is_refused(self):
        with self.assertRaises(Err):
            Given(("PostLikedEvent", {"nope": 1}))

    def test_an_unknown_query_is_named(self):
        with self.assertRaises(Err) as refused:
            Given().query("everything")
        self.assertEqual(refused.exception.value, wit.QueryError_UnknownQuery("everything"))


if __name__ == "__main__":
    unittest.main()
