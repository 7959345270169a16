"""The {{Pascal}} aggregate's logic: a named thing that can be created, renamed and archived.

Replace the commands, events and rules with your domain's. Pure: `decide` and `evolve` do no I/O
and read no clock (what they need arrives in the command), so `python -m unittest` runs them
without the host; app.py turns the state into the bytes the host keeps. WIT shapes in Python:
records are dataclasses, variants one class per case (`CommandError_Rejected(...)`), enums
`Enum`s; an error result is raised as `Err(value)`.
"""

import json

from componentize_py_types import Err
from wit_world.exports import aggregate as wit
from wit_world.imports.types import HttpMethod, NewEvent

AGGREGATE_TYPE = "{{Pascal}}"
CREATED = "{{Pascal}}CreatedEvent"
RENAMED = "{{Pascal}}RenamedEvent"
ARCHIVED = "{{Pascal}}ArchivedEvent"


def _rename_v1(data):
    """`{{Pascal}}RenamedEvent` v1 said `newName` where v2 says `name`."""
    data = dict(data)
    data["name"] = data.pop("newName", None)
    return data


# Per event type, the schema version `decide` writes, and one step per older version `upcast`
# still reads (an example: the rename above). Stored events are never rewritten: the host asks
# `upcast` for every event whose version is not the current one, so `evolve` and the projections
# only see current shapes.
SCHEMAS = {
    CREATED: (1, {}),
    RENAMED: (2, {1: _rename_v1}),
    ARCHIVED: (1, {}),
}


def _oldest(event_type):
    current, steps = SCHEMAS[event_type]
    return min([current, *steps])


def _body(properties, required):
    return json.dumps({"type": "object", "properties": properties, "required": required})


def manifest() -> wit.Manifest:
    name = {"name": {"type": "string", "minLength": 1, "maxLength": 100}}
    by_id = wit.IdSource_PathParam("id")

    def route(method, path, command, id_source, status, message):
        return wit.CommandRoute(
            method=method, path=path, command=command, id=id_source,
            success_status=status, success_message=message, case_insensitive=False,
        )

    return wit.Manifest(
        aggregate_type=AGGREGATE_TYPE,
        commands=[
            wit.CommandSpec(name="Create{{Pascal}}", creates=True, body_schema=_body(name, ["name"])),
            wit.CommandSpec(name="Rename{{Pascal}}", creates=False, body_schema=_body(name, ["name"])),
            wit.CommandSpec(name="Archive{{Pascal}}", creates=False, body_schema=_body({}, [])),
        ],
        events=list(SCHEMAS),
        routes=[
            route(HttpMethod.POST, "/api/v1/{{camel}}", "Create{{Pascal}}", wit.IdSource_NewUuid(), 201, "Created!"),
            route(HttpMethod.PUT, "/api/v1/{{camel}}/{id}/name", "Rename{{Pascal}}", by_id, 200, "Renamed!"),
            route(HttpMethod.DELETE, "/api/v1/{{camel}}/{id}", "Archive{{Pascal}}", by_id, 200, "Archived!"),
        ],
        topic="{{snake}}-events",
        event_schemas=[
            wit.EventSchema(event_type=t, current=current, oldest=_oldest(t)) for t, (current, _) in SCHEMAS.items()
        ],
    )


def evolve(state, events):
    """The state (a dict) after `events` (current shapes), from `state` (`None`: a stream not
    started). An event that does not fit the state is a plugin or data fault: `Err(str)`."""
    for event in events:
        what = f"event {event.event_type} v{event.version}"
        try:
            data = json.loads(event.data)
        except ValueError as e:
            raise Err(f"{what} is not JSON: {e}")
        if not isinstance(data, dict):
            raise Err(f"{what} is not a JSON object")
        if event.event_type != CREATED and state is None:
            raise Err(f"{what} comes before the {CREATED}")
        if event.event_type == CREATED:
            state = {"name": data.get("name"), "archived": False}
        elif event.event_type == RENAMED:
            state = {**state, "name": data.get("name")}
        elif event.event_type == ARCHIVED:
            state = {**state, "archived": True}
        else:
            raise Err(f"{what} is not an event of {AGGREGATE_TYPE}")
    return state


def _valid_name(data):
    name = data.get("name")
    name = name.strip() if isinstance(name, str) else ""
    if not 1 <= len(name) <= 100:
        raise Err(wit.CommandError_Invalid("name must have 1 to 100 characters"))
    return name


def _event(event_type, payload):
    return NewEvent(event_type=event_type, schema_version=SCHEMAS[event_type][0], data=json.dumps(payload))


def decide(state, command: wit.Command):
    """The events `command` causes on `state` (`None`: a stream not started); a refusal is raised
    as `Err(CommandError_…)`."""
    try:
        data = json.loads(command.data)
    except ValueError as e:
        raise Err(wit.CommandError_Invalid(f"the body is not JSON: {e}"))
    if not isinstance(data, dict):
        raise Err(wit.CommandError_Invalid("the body must be a JSON object"))
    aggregate_id = command.aggregate_id

    if command.command_type == "Create{{Pascal}}":
        if state is not None:
            raise Err(wit.CommandError_Rejected("it exists already"))
        return [_event(CREATED, {"id": aggregate_id, "name": _valid_name(data)})]
    if state is None:
        raise Err(wit.CommandError_NotFound(f"{AGGREGATE_TYPE} {aggregate_id} does not exist"))
    if state["archived"]:
        raise Err(wit.CommandError_Rejected("it is archived"))
    if command.command_type == "Rename{{Pascal}}":
        name = _valid_name(data)
        return [] if name == state["name"] else [_event(RENAMED, {"id": aggregate_id, "name": name})]
    if command.command_type == "Archive{{Pascal}}":
        return [_event(ARCHIVED, {"id": aggregate_id})]
    raise Err(wit.CommandError_Invalid(f"unknown command {command.command_type}"))


def upcast(events):
    """Bring stored events to their type's current schema version, in order, one for one."""
    upcast_events = []
    for event in events:
        what = f"event {event.event_type} v{event.version} (schema {event.schema_version})"
        if event.event_type not in SCHEMAS:
            raise Err(f"{what}: not an event of {AGGREGATE_TYPE}")
        current, steps = SCHEMAS[event.event_type]
        oldest = _oldest(event.event_type)
        if not oldest <= event.schema_version <= current:
            raise Err(f"{what}: this plugin reads schema versions {oldest} to {current}")
        try:
            data = json.loads(event.data)
        except ValueError as e:
            raise Err(f"{what} is not JSON: {e}")
        for version in range(event.schema_version, current):
            data = steps[version](data)
        upcast_events.append(NewEvent(event_type=event.event_type, schema_version=current, data=json.dumps(data)))
    return upcast_events
