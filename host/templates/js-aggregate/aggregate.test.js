// Given these events, when this command, then these events or this refusal: aggregate.js natively.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ARCHIVED, CREATED, RENAMED, decide, evolve, manifest, upcast } from './aggregate.js';

const ID = '6f1c1a52-1d0e-4c55-9d7e-3d6c2a1b0c01';

/** A stream that has seen `events` ([type, data] pairs); `when` runs a command on its state. */
function given(...events) {
  const envelopes = events.map(([eventType, data], i) => ({
    aggregateType: '{{Pascal}}',
    aggregateId: ID,
    version: BigInt(i + 1),
    globalPosition: BigInt(i + 1),
    eventType,
    schemaVersion: eventType === RENAMED ? 2 : 1,
    data: JSON.stringify(data),
    recordedAt: '2026-01-01T10:00:00Z',
  }));
  const state = events.length === 0 ? null : evolve(null, envelopes);
  return {
    state,
    when: (commandType, body) => () =>
      decide(state, {
        commandType,
        aggregateId: ID,
        data: typeof body === 'string' ? body : JSON.stringify(body),
        issuedAt: '2026-01-01T10:00:00Z',
        freshId: '00000000-0000-4000-8000-000000000000',
      }),
  };
}

/** The events a command produced, as [type, data] pairs. */
const then = (run) => run().map((e) => [e.eventType, JSON.parse(e.data)]);
const created = (name) => [CREATED, { id: ID, name }];

test('create names it', () => {
  assert.deepEqual(then(given().when('Create{{Pascal}}', { name: ' First ' })), [created('First')]);
});

test('an empty or missing name, or a body that is not an object, is invalid', () => {
  assert.throws(given().when('Create{{Pascal}}', { name: '  ' }), { tag: 'invalid', val: /name/ });
  assert.throws(given().when('Create{{Pascal}}', {}), { tag: 'invalid' });
  assert.throws(given().when('Create{{Pascal}}', '[1]'), { tag: 'invalid' });
  assert.throws(given().when('Create{{Pascal}}', '{"name":'), { tag: 'invalid', val: /not JSON/ });
});

test('it cannot be created twice', () => {
  assert.throws(given(created('First')).when('Create{{Pascal}}', { name: 'Again' }), { tag: 'rejected', val: /exists/ });
});

test('a rename to the same name changes nothing, to another one renames', () => {
  assert.deepEqual(then(given(created('First')).when('Rename{{Pascal}}', { name: 'First' })), []);
  assert.deepEqual(then(given(created('First')).when('Rename{{Pascal}}', { name: 'Second' })), [
    [RENAMED, { id: ID, name: 'Second' }],
  ]);
  assert.deepEqual(given(created('First'), [RENAMED, { id: ID, name: 'Second' }]).state, { name: 'Second', archived: false });
});

test('an archived one refuses everything; a missing one is not found', () => {
  const archived = given(created('First'), [ARCHIVED, { id: ID }]);
  assert.throws(archived.when('Rename{{Pascal}}', { name: 'x' }), { tag: 'rejected', val: /archived/ });
  assert.throws(archived.when('Archive{{Pascal}}', {}), { tag: 'rejected' });
  assert.throws(given().when('Archive{{Pascal}}', {}), { tag: 'not-found' });
  assert.throws(given(created('First')).when('Paint{{Pascal}}', {}), { tag: 'invalid', val: /unknown command/ });
});

test('an old rename is upcast to the current shape; versions it cannot read are refused', () => {
  const stored = (schemaVersion, data) => ({ eventType: RENAMED, version: 2n, schemaVersion, data: JSON.stringify(data) });
  const [current] = upcast([stored(1, { id: ID, newName: 'Old' })]);
  assert.deepEqual({ ...current, data: JSON.parse(current.data) }, { eventType: RENAMED, schemaVersion: 2, data: { id: ID, name: 'Old' } });
  assert.throws(() => upcast([stored(3, { id: ID, name: 'Future' })]), /schema versions 1 to 2/);
  const declared = manifest().eventSchemas.find((s) => s.eventType === RENAMED);
  assert.deepEqual(declared, { eventType: RENAMED, current: 2, oldest: 1 });
});

test('events that do not fit the state are a fault', () => {
  const stray = { eventType: RENAMED, version: 1n, data: JSON.stringify({ id: ID, name: 'x' }) };
  assert.throws(() => evolve(null, [stray]), /comes before/);
});

test('every route names a declared command', () => {
  const m = manifest();
  const commands = new Set(m.commands.map((c) => c.name));
  for (const route of m.routes) assert.ok(commands.has(route.command), route.path);
  for (const command of m.commands) assert.equal(JSON.parse(command.bodySchema).type, 'object');
});
