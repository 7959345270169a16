"""The `audit-feed` projection's logic: an audit feed of the post events.

One row per post event, keyed by its position in the event store's log, naming the post, the
event type, who acted (the author of a post, the user of a comment) and when it was recorded.
Because the log position is the key, an event applied twice would break the primary key: the
feed shows every event exactly once or the host's delivery has a bug.

Pure over the `sql` interface it is given (the host's in the component, an in-memory one in the
tests), so `python -m unittest` runs it without the host.
"""

import json

from componentize_py_types import Err
from wit_world.exports import projection as wit
from wit_world.imports import sql as s

FEED = "post_audit"

SUBSCRIPTIONS = [
    "PostCreatedEvent",
    "MessageUpdatedEvent",
    "PostLikedEvent",
    "CommentAddedEvent",
    "CommentUpdatedEvent",
    "CommentRemovedEvent",
    "PostRemovedEvent",
]

COLUMNS = ["position", "post_id", "event_type", "actor", "recorded_at"]

# The field naming who acted, per event type; the others name nobody.
ACTOR_FIELD = {"PostCreatedEvent": "author", "CommentAddedEvent": "username", "CommentUpdatedEvent": "username"}

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def manifest() -> wit.Manifest:
    def column(name: str, column_type: wit.ColumnType, nullable: bool = False) -> wit.Column:
        return wit.Column(name=name, column_type=column_type, nullable=nullable)

    feed = wit.Table(
        name=FEED,
        columns=[
            column("position", wit.ColumnType.INTEGER),
            column("post_id", wit.ColumnType.TEXT),
            column("event_type", wit.ColumnType.TEXT),
            column("actor", wit.ColumnType.TEXT, nullable=True),
            column("recorded_at", wit.ColumnType.TIMESTAMP),
        ],
        primary_key=["position"],
        indexes=[["post_id"]],
    )
    return wit.Manifest(
        name="audit_feed",
        subscriptions=SUBSCRIPTIONS,
        schema_version=1,
        tables=[feed],
        queries=["feed", "byPost"],
        routes=[
            wit.QueryRoute(path="/api/v1/postAudit", query="feed", case_insensitive=False),
            wit.QueryRoute(path="/api/v1/postAudit/{postId}", query="byPost", case_insensitive=False),
        ],
        rebuild_routes=[],
    )


def _sql_error(error: object) -> str:
    value = getattr(error, "value", None)
    return f"{type(error).__name__}: {value}" if value is not None else type(error).__name__


def handle(sql, events) -> None:
    """Append one row per event, in order. A refusal (raised as `Err(str)`) names the event."""
    for event in events:
        try:
            data = json.loads(event.data)
        except ValueError as e:
            raise Err(f"{event.event_type} at {event.global_position}: unreadable data: {e}")
        post_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(post_id, str):
            raise Err(f"{event.event_type} at {event.global_position}: no post id in {event.data}")
        actor = data.get(ACTOR_FIELD.get(event.event_type, ""))
        values = [
            s.Value_Integer(event.global_position),
            s.Value_Text(post_id),
            s.Value_Text(event.event_type),
            s.Value_Text(actor) if isinstance(actor, str) else s.Value_Null(),
            s.Value_Text(event.recorded_at),
        ]
        try:
            sql.insert(FEED, COLUMNS, values)
        except Err as e:
            raise Err(f"{event.event_type} at {event.global_position}: {_sql_error(e.value)}")


def _entry(row) -> dict:
    position, post_id, event_type, actor, recorded_at = (v.value if hasattr(v, "value") else None for v in row)
    return {"position": position, "postId": post_id, "eventType": event_type, "actor": actor, "recordedAt": recorded_at}


def _integer(params: dict, name: str, default: int, lowest: int, highest: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        number = int(raw)
    except ValueError:
        raise Err(wit.QueryError_Invalid(f"{name} must be a whole number, not {raw!r}"))
    if not lowest <= number <= highest:
        raise Err(wit.QueryError_Invalid(f"{name} must be between {lowest} and {highest}, not {number}"))
    return number


def query(sql, name: str, pairs) -> wit.Answer:
    """`feed`: the entries after position `after` (default 0), at most `limit` (default 100);
    `byPost`: every entry of post `postId`. 204 when there is none."""
    params = dict(pairs)
    by_position = [s.Ordering(column="position", descending=False)]
    if name == "feed":
        after = _integer(params, "after", 0, 0, 2**62)
        limit = _integer(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        selection = s.Selection(
            table=FEED,
            columns=COLUMNS,
            filter=[s.Condition(column="position", comparison=s.Comparison.GT, value=s.Value_Integer(after))],
            order_by=by_position,
            limit=limit,
        )
    elif name == "byPost":
        post_id = params.get("postId")
        if not post_id:
            raise Err(wit.QueryError_Invalid("postId is required"))
        selection = s.Selection(
            table=FEED,
            columns=COLUMNS,
            filter=[s.Condition(column="post_id", comparison=s.Comparison.EQ, value=s.Value_Text(post_id))],
            order_by=by_position,
            limit=None,
        )
    else:
        raise Err(wit.QueryError_UnknownQuery(name))
    try:
        rows = sql.select(selection).rows
    except Err as e:
        raise Err(wit.QueryError_Failed(_sql_error(e.value)))
    if not rows:
        return wit.Answer(status=204, body="")
    entries = [_entry(row) for row in rows]
    body = {"message": f"Successfully returned {len(entries)} audit entries!", "entries": entries}
    return wit.Answer(status=200, body=json.dumps(body))
