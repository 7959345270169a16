// Given these events, when this query, then this answer: projection.js on an in-memory `sql`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemorySql } from './memory-sql.js';
import { handle, manifest, query } from './projection.js';

function given(...events) {
  const sql = new MemorySql(manifest());
  let position = 0n;
  const apply = (...more) =>
    handle(
      sql,
      more.map(([eventType, data]) => ({
        aggregateType: 'Item',
        aggregateId: data.id ?? '',
        version: 1n,
        globalPosition: ++position,
        eventType,
        schemaVersion: 1,
        data: JSON.stringify(data),
        recordedAt: `2026-01-01T10:00:0${position}Z`,
      })),
    );
  apply(...events);
  return { apply, query: (name, params = []) => query(sql, name, params) };
}

const created = (id, name) => ['ItemCreatedEvent', { id, name }];

test('nothing yet is no content', () => {
  assert.equal(given().query('all').status, 204);
});

test('created items are listed in order and found by id', () => {
  const p = given(created('b', 'First'), created('a', 'Second'));
  const all = JSON.parse(p.query('all').body);
  assert.equal(all.message, 'Successfully returned 2 item(s)!');
  assert.deepEqual(all.items.map((i) => i.id), ['b', 'a']);
  assert.deepEqual(JSON.parse(p.query('byId', [['id', 'a']]).body).items, [{ id: 'a', name: 'Second', renames: 0 }]);
});

test('a rename counts and an archive removes', () => {
  const p = given(created('a', 'First'), ['ItemRenamedEvent', { id: 'a', name: 'Renamed' }], created('b', 'x'), ['ItemArchivedEvent', { id: 'b' }]);
  assert.deepEqual(JSON.parse(p.query('all').body).items, [{ id: 'a', name: 'Renamed', renames: 1 }]);
});

test('an event applied twice or unreadable is refused; bad queries are named', () => {
  const p = given(created('a', 'First'));
  assert.throws(() => p.apply(created('a', 'Again')), /ItemCreatedEvent at 2: constraint/);
  assert.throws(() => p.apply(['ItemCreatedEvent', { id: 'c' }]), /no name/);
  assert.throws(() => p.query('byId'), { tag: 'invalid' });
  assert.throws(() => p.query('everything'), { tag: 'unknown-query', val: 'everything' });
});
