// The `{{snake}}` projection's logic: one row per item, kept from the `ItemCreatedEvent`,
// `ItemRenamedEvent` and `ItemArchivedEvent` events, with a query by id and a list.
//
// Replace the subscriptions, tables and queries with your read model's. Pure over the `sql`
// interface it is given: the host's in the component (component.js), an in-memory one in the
// tests (memory-sql.js), so `node --test` runs it without the host. WIT shapes in JavaScript:
// records are objects with camelCase fields, variants `{ tag, val }`, enums strings, u64/s64
// BigInts; an exported function's error is thrown, an imported one's error arrives thrown.

const ITEMS = '{{snake}}_items';

const text = (val) => ({ tag: 'text', val });
const eq = (column, value) => ({ column, comparison: 'eq', value });
const column = (name, columnType) => ({ name, columnType, nullable: false });

export function manifest() {
  return {
    name: '{{snake}}',
    subscriptions: ['ItemCreatedEvent', 'ItemRenamedEvent', 'ItemArchivedEvent'],
    schemaVersion: 1,
    tables: [
      {
        name: ITEMS,
        columns: [column('id', 'text'), column('name', 'text'), column('renames', 'integer'), column('created_at', 'timestamp')],
        primaryKey: ['id'],
        indexes: [['name']],
      },
    ],
    queries: ['all', 'byId'],
    routes: [
      { path: '/api/v1/{{camel}}Lookup', query: 'all', caseInsensitive: false },
      { path: '/api/v1/{{camel}}Lookup/{id}', query: 'byId', caseInsensitive: false },
    ],
    rebuildRoutes: [],
  };
}

/** Apply a batch of events in order; a thrown string rolls the batch back and names the event. */
export function handle(sql, events) {
  for (const event of events) {
    const refuse = (why) => {
      throw `${event.eventType} at ${event.globalPosition}: ${why}`;
    };
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      refuse(`unreadable data: ${e.message}`);
    }
    if (typeof data?.id !== 'string') refuse('no id');
    try {
      switch (event.eventType) {
        case 'ItemCreatedEvent':
          if (typeof data.name !== 'string') refuse('no name');
          sql.insert(ITEMS, ['id', 'name', 'renames', 'created_at'], [text(data.id), text(data.name), { tag: 'integer', val: 0n }, text(event.recordedAt)]);
          break;
        case 'ItemRenamedEvent':
          if (typeof data.name !== 'string') refuse('no name');
          sql.update(
            ITEMS,
            [
              { column: 'name', change: { tag: 'set', val: text(data.name) } },
              { column: 'renames', change: { tag: 'add', val: { tag: 'integer', val: 1n } } },
            ],
            [eq('id', text(data.id))],
          );
          break;
        case 'ItemArchivedEvent':
          sql.delete(ITEMS, [eq('id', text(data.id))]);
          break;
        default:
        // Only subscribed types arrive.
      }
    } catch (e) {
      if (typeof e === 'string') throw e;
      const error = e?.payload ?? e;
      refuse(`${error?.tag ?? ''} ${error?.val ?? error}`.trim());
    }
  }
}

/** Answer query `name`; `params` is a list of [key, value] pairs. Errors are thrown as the WIT `query-error`. */
export function query(sql, name, params) {
  const filter = [];
  if (name === 'byId') {
    const id = params.find(([k]) => k === 'id')?.[1];
    if (!id) throw { tag: 'invalid', val: 'id is required' };
    filter.push(eq('id', text(id)));
  } else if (name !== 'all') {
    throw { tag: 'unknown-query', val: name };
  }
  let rows;
  try {
    rows = sql.select({
      table: ITEMS,
      columns: ['id', 'name', 'renames'],
      filter,
      orderBy: [{ column: 'created_at', descending: false }, { column: 'id', descending: false }],
      limit: undefined,
    }).rows;
  } catch (e) {
    const error = e?.payload ?? e;
    throw { tag: 'failed', val: `${error?.tag ?? ''} ${error?.val ?? error}`.trim() };
  }
  if (rows.length === 0) return { status: 204, body: '' };
  const items = rows.map(([id, itemName, renames]) => ({ id: id.val, name: itemName.val, renames: Number(renames.val) }));
  return { status: 200, body: JSON.stringify({ message: `Successfully returned ${items.length} item(s)!`, items }) };
}
