// The {{Pascal}} aggregate's logic: a named thing that can be created, renamed and archived.
//
// Replace the commands, events and rules with your domain's. Pure: `decide` and `evolve` do no
// I/O and read no clock (what they need arrives in the command), so `node --test` runs them
// without the host; component.js turns the state into the bytes the host keeps. WIT shapes in
// JavaScript: records are objects with camelCase fields, variants `{ tag, val }`, enums strings,
// u64 BigInts; an exported function's error is thrown.

export const AGGREGATE_TYPE = '{{Pascal}}';
export const CREATED = '{{Pascal}}CreatedEvent';
export const RENAMED = '{{Pascal}}RenamedEvent';
export const ARCHIVED = '{{Pascal}}ArchivedEvent';

// Why a command produced no events: the WIT `command-error`, each a 4xx for the caller.
export const invalid = (why) => ({ tag: 'invalid', val: why });
export const rejected = (why) => ({ tag: 'rejected', val: why });
export const notFound = (why) => ({ tag: 'not-found', val: why });

// Per event type, the schema version `decide` writes and the oldest one `upcast` still reads,
// with one step per older version. An example: `{{Pascal}}RenamedEvent` v1 said `newName` where
// v2 says `name`. Stored events are never rewritten: the host asks `upcast` for every event
// whose version is not the current one, so `evolve` and the projections only see current shapes.
const SCHEMAS = {
  [CREATED]: { current: 1, steps: {} },
  [RENAMED]: { current: 2, steps: { 1: ({ newName, ...rest }) => ({ ...rest, name: newName }) } },
  [ARCHIVED]: { current: 1, steps: {} },
};
const oldest = (schema) => Math.min(schema.current, ...Object.keys(schema.steps).map(Number));

const nameSchema = { type: 'string', minLength: 1, maxLength: 100 };
const body = (properties, required) => JSON.stringify({ type: 'object', properties, required });

export function manifest() {
  const route = (method, path, command, id, successStatus, successMessage) => ({
    method,
    path,
    command,
    id,
    successStatus,
    successMessage,
    caseInsensitive: false,
  });
  return {
    aggregateType: AGGREGATE_TYPE,
    commands: [
      { name: 'Create{{Pascal}}', creates: true, bodySchema: body({ name: nameSchema }, ['name']) },
      { name: 'Rename{{Pascal}}', creates: false, bodySchema: body({ name: nameSchema }, ['name']) },
      { name: 'Archive{{Pascal}}', creates: false, bodySchema: body({}, []) },
    ],
    events: Object.keys(SCHEMAS),
    routes: [
      route('post', '/api/v1/{{camel}}', 'Create{{Pascal}}', { tag: 'new-uuid' }, 201, 'Created!'),
      route('put', '/api/v1/{{camel}}/{id}/name', 'Rename{{Pascal}}', { tag: 'path-param', val: 'id' }, 200, 'Renamed!'),
      route('delete', '/api/v1/{{camel}}/{id}', 'Archive{{Pascal}}', { tag: 'path-param', val: 'id' }, 200, 'Archived!'),
    ],
    topic: '{{snake}}-events',
    eventSchemas: Object.entries(SCHEMAS).map(([eventType, schema]) => ({
      eventType,
      current: schema.current,
      oldest: oldest(schema),
    })),
  };
}

/** The state after `events` (current shapes), from `state` (`null`: a stream not started). An
 * event that does not fit the state is a plugin or data fault: a thrown string. */
export function evolve(state, events) {
  let next = state;
  for (const event of events) {
    const what = `event ${event.eventType} v${event.version}`;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      throw `${what} is not JSON: ${e.message}`;
    }
    if (data === null || typeof data !== 'object') throw `${what} is not a JSON object`;
    if (event.eventType !== CREATED && !next) throw `${what} comes before the ${CREATED}`;
    switch (event.eventType) {
      case CREATED:
        next = { name: data.name, archived: false };
        break;
      case RENAMED:
        next = { ...next, name: data.name };
        break;
      case ARCHIVED:
        next = { ...next, archived: true };
        break;
      default:
        throw `${what} is not an event of ${AGGREGATE_TYPE}`;
    }
  }
  return next;
}

function validName(data) {
  const name = typeof data.name === 'string' ? data.name.trim() : '';
  if (name.length === 0 || name.length > 100) throw invalid('name must have 1 to 100 characters');
  return name;
}

/** The events `command` causes on `state` (`null`: a stream not started); a refusal is thrown. */
export function decide(state, command) {
  let data;
  try {
    data = JSON.parse(command.data);
  } catch (e) {
    throw invalid(`the body is not JSON: ${e.message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw invalid('the body must be a JSON object');
  const id = command.aggregateId;
  const event = (eventType, payload) => ({ eventType, schemaVersion: SCHEMAS[eventType].current, data: JSON.stringify(payload) });

  if (command.commandType === 'Create{{Pascal}}') {
    if (state) throw rejected('it exists already');
    return [event(CREATED, { id, name: validName(data) })];
  }
  if (!state) throw notFound(`${AGGREGATE_TYPE} ${id} does not exist`);
  if (state.archived) throw rejected('it is archived');
  switch (command.commandType) {
    case 'Rename{{Pascal}}': {
      const name = validName(data);
      return name === state.name ? [] : [event(RENAMED, { id, name })];
    }
    case 'Archive{{Pascal}}':
      return [event(ARCHIVED, { id })];
    default:
      throw invalid(`unknown command ${command.commandType}`);
  }
}

/** Bring stored events to their type's current schema version, in order, one for one. */
export function upcast(events) {
  return events.map((event) => {
    const schema = SCHEMAS[event.eventType];
    const what = `event ${event.eventType} v${event.version} (schema ${event.schemaVersion})`;
    if (!schema) throw `${what}: not an event of ${AGGREGATE_TYPE}`;
    if (event.schemaVersion < oldest(schema) || event.schemaVersion > schema.current) {
      throw `${what}: this plugin reads schema versions ${oldest(schema)} to ${schema.current}`;
    }
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      throw `${what} is not JSON: ${e.message}`;
    }
    for (let version = event.schemaVersion; version < schema.current; version++) data = schema.steps[version](data);
    return { eventType: event.eventType, schemaVersion: schema.current, data: JSON.stringify(data) };
  });
}
