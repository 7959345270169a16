"""The `{{snake}}` reactor's logic: when a {{Pascal}} is created or archived (the events of
`sluice new aggregate {{name}}`), it sends a message to channel `{{snake}}`, keyed by the
aggregate id, so one aggregate's messages arrive in order.

What it sends is recorded in the host's outbox in the same transaction as the reactor's position,
so it is sent exactly once per event; the host then delivers it at least once, with a stable
`Idempotency-Key`. Which channel `{{snake}}` is (a webhook, a Kafka topic) is the operator's
choice: the host refuses the reactor until `[channels.{{snake}}]` is configured. A reactor has no
files, sockets, clock or environment: it only sends through the outbox.

Replace the subscriptions and the message with yours. Pure over the `outbox` it is given: the
host's in the component (app.py), a recording one in the tests, so `python -m unittest` runs it
without the host. WIT shapes in Python: records are dataclasses, variants one class per case,
enums `Enum`s; an error result is raised as `Err(value)`, both ways.
"""

import json

from componentize_py_types import Err
from wit_world.exports import reactor as wit

# The channel its messages go to.
CHANNEL = "{{snake}}"


def manifest() -> wit.Manifest:
    return wit.Manifest(
        name="{{snake}}",
        # The event types it reacts to: replace with your aggregates' events.
        subscriptions=["{{Pascal}}CreatedEvent", "{{Pascal}}ArchivedEvent"],
        channels=[CHANNEL],
        # A new reactor starts at the log's head: history is not sent. BEGINNING sends it all.
        start=wit.StartAt.NOW,
    )


def message(event) -> dict:
    """The message one event causes; `Err(str)` refuses the event (it is retried, then parked)."""
    where = f"{event.event_type} at {event.global_position}"
    try:
        data = json.loads(event.data)
    except ValueError as e:
        raise Err(f"{where} is not JSON: {e}")
    if not isinstance(data, dict):
        raise Err(f"{where} is not a JSON object")
    sent = {"id": event.aggregate_id, "event": event.event_type, "position": event.global_position}
    if isinstance(data.get("name"), str):
        sent["name"] = data["name"]
    return sent


def handle(outbox, events) -> None:
    """React to a batch of events in order, sending through `outbox` (`send(channel, key, payload)`)."""
    for event in events:
        payload = json.dumps(message(event))
        try:
            outbox.send(CHANNEL, event.aggregate_id, payload)
        except Err as e:
            raise Err(f"{event.event_type} at {event.global_position}: {type(e.value).__name__} {getattr(e.value, 'value', '')}".strip())
