"""The `{{snake}}` projection's logic: one row per item, kept from the `ItemCreatedEvent`,
`ItemRenamedEvent` and `ItemArchivedEvent` events, with a query by id and a list.

Replace the subscriptions, tables and queries with your read model's. Pure over the `sql`
interface it is given: the host's in the component (app.py), an in-memory one in the tests
(memory_sql.py), so `python -m unittest` runs it without the host. WIT shapes in Python: records
are dataclasses, variants one class per case (`Value_Text(...)`), enums `Enum`s; an error
result is raised as `Err(value)`, both ways.
"""

import json

from componentize_py_types import Err
from wit_world.exports import projection as wit
from wit_world.imports import sql as s

ITEMS = "{{snake}}_items"


def manifest() -> wit.Manifest:
    def column(name, column_type):
        return wit.Column(name=name, column_type=column_type, nullable=False)

    items = wit.Table(
        name=ITEMS,
        columns=[
            column("id", wit.ColumnType.TEXT),
            column("name", wit.ColumnType.TEXT),
            column("renames", wit.ColumnType.INTEGER),
            column("created_at", wit.ColumnType.TIMESTAMP),
        ],
        primary_key=["id"],
        indexes=[["name"]],
    )
    return wit.Manifest(
        name="{{snake}}",
        subscriptions=["ItemCreatedEvent", "ItemRenamedEvent", "ItemArchivedEvent"],
        schema_version=1,
        tables=[items],
        queries=["all", "byId"],
        routes=[
            wit.QueryRoute(path="/api/v1/{{camel}}Lookup", query="all", case_insensitive=False),
            wit.QueryRoute(path="/api/v1/{{camel}}Lookup/{id}", query="byId", case_insensitive=False),
        ],
        rebuild_routes=[],
    )


def handle(sql, events) -> None:
    """Apply a batch of events in order; `Err(str)` rolls the batch back and names the event."""
    for event in events:
        where = f"{event.event_type} at {event.global_position}"
        try:
            data = json.loads(event.data)
        except ValueError as e:
            raise Err(f"{where}: unreadable data: {e}")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise Err(f"{where}: no id")
        by_id = [s.Condition(column="id", comparison=s.Comparison.EQ, value=s.Value_Text(data["id"]))]
        if event.event_type in ("ItemCreatedEvent", "ItemRenamedEvent") and not isinstance(data.get("name"), str):
            raise Err(f"{where}: no name")
        try:
            if event.event_type == "ItemCreatedEvent":
                values = [s.Value_Text(data["id"]), s.Value_Text(data["name"]), s.Value_Integer(0), s.Value_Text(event.recorded_at)]
                sql.insert(ITEMS, ["id", "name", "renames", "created_at"], values)
            elif event.event_type == "ItemRenamedEvent":
                changes = [
                    s.Assignment(column="name", change=s.Change_Set(s.Value_Text(data["name"]))),
                    s.Assignment(column="renames", change=s.Change_Add(s.Value_Integer(1))),
                ]
                sql.update(ITEMS, changes, by_id)
            elif event.event_type == "ItemArchivedEvent":
                sql.delete(ITEMS, by_id)
        except Err as e:
            raise Err(f"{where}: {type(e.value).__name__} {getattr(e.value, 'value', '')}".strip())


def query(sql, name: str, pairs) -> wit.Answer:
    params = dict(pairs)
    conditions = []
    if name == "byId":
        if not params.get("id"):
            raise Err(wit.QueryError_Invalid("id is required"))
        conditions.append(s.Condition(column="id", comparison=s.Comparison.EQ, value=s.Value_Text(params["id"])))
    elif name != "all":
        raise Err(wit.QueryError_UnknownQuery(name))
    selection = s.Selection(
        table=ITEMS,
        columns=["id", "name", "renames"],
        filter=conditions,
        order_by=[s.Ordering(column="created_at", descending=False), s.Ordering(column="id", descending=False)],
        limit=None,
    )
    try:
        rows = sql.select(selection).rows
    except Err as e:
        raise Err(wit.QueryError_Failed(f"{type(e.value).__name__} {getattr(e.value, 'value', '')}".strip()))
    if not rows:
        return wit.Answer(status=204, body="")
    items = [{"id": i.value, "name": n.value, "renames": r.value} for i, n, r in rows]
    return wit.Answer(status=200, body=json.dumps({"message": f"Successfully returned {len(items)} item(s)!", "items": items}))
