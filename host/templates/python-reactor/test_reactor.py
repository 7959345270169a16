"""Given these events, then these messages: reactor.py on a recording outbox, natively."""

import json
import unittest

import reactor
from componentize_py_types import Err
from reactor import CHANNEL
from wit_world.exports import reactor as wit
from wit_world.imports import outbox
from wit_world.imports.types import EventEnvelope

ID = "6f1c1a52-1d0e-4c55-9d7e-3d6c2a1b0c01"


def event(event_type, data, position=42):
    return EventEnvelope(
        aggregate_type="{{Pascal}}", aggregate_id=ID, version=1, global_position=position, event_type=event_type,
        schema_version=1, data=data if isinstance(data, str) else json.dumps(data), recorded_at="2026-01-01T10:00:00Z",
    )


class Recording:
    """An outbox that keeps what is sent, as (channel, key, payload) triples."""

    def __init__(self):
        self.sent = []

    def send(self, channel, key, payload):
        self.sent.append((channel, key, json.loads(payload)))


class Refusing:
    def send(self, channel, key, payload):
        raise Err(outbox.SendError_UndeclaredChannel("elsewhere"))


def sent(*events):
    recording = Recording()
    reactor.handle(recording, list(events))
    return recording.sent


class ReactorTest(unittest.TestCase):
    def test_a_creation_and_an_archival_each_send_one_message_keyed_by_the_aggregate(self):
        self.assertEqual(
            sent(event("{{Pascal}}CreatedEvent", {"id": ID, "name": "First"}, 7), event("{{Pascal}}ArchivedEvent", {"id": ID}, 9)),
            [
                (CHANNEL, ID, {"id": ID, "event": "{{Pascal}}CreatedEvent", "position": 7, "name": "First"}),
                (CHANNEL, ID, {"id": ID, "event": "{{Pascal}}ArchivedEvent", "position": 9}),
            ],
        )

    def test_it_subscribes_to_what_it_handles_and_sends_to_the_channel_it_declares(self):
        manifest = reactor.manifest()
        self.assertEqual(manifest.channels, [CHANNEL])
        self.assertEqual(manifest.subscriptions, ["{{Pascal}}CreatedEvent", "{{Pascal}}ArchivedEvent"])
        self.assertEqual(manifest.start, wit.StartAt.NOW)

    def test_data_that_is_not_an_object_is_refused_naming_the_event(self):
        with self.assertRaises(Err) as refusal:
            sent(event("{{Pascal}}CreatedEvent", "[1, 2]", 3))
        self.assertIn("CreatedEvent at 3 is not a JSON object", refusal.exception.value)
        with self.assertRaises(Err) as refusal:
            sent(event("{{Pascal}}CreatedEvent", "{", 4))
        self.assertIn("at 4 is not JSON", refusal.exception.value)

    def test_a_send_the_host_refuses_fails_the_batch_with_its_reason(self):
        with self.assertRaises(Err) as refusal:
            reactor.handle(Refusing(), [event("{{Pascal}}ArchivedEvent", {"id": ID}, 5)])
        self.assertIn("at 5: SendError_UndeclaredChannel elsewhere", refusal.exception.value)


if __name__ == "__main__":
    unittest.main()
