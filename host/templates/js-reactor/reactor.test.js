// Given these events, then these messages: reactor.js on a recording outbox, natively.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CHANNEL, handle, manifest } from './reactor.js';

const ID = '6f1c1a52-1d0e-4c55-9d7e-3d6c2a1b0c01';

const event = (eventType, data, position = 42n) => ({
  aggregateType: '{{Pascal}}',
  aggregateId: ID,
  version: 1n,
  globalPosition: position,
  eventType,
  schemaVersion: 1,
  data: typeof data === 'string' ? data : JSON.stringify(data),
  recordedAt: '2026-01-01T10:00:00Z',
});

/** What handling `events` sent, as [channel, key, payload] triples. */
function sent(...events) {
  const messages = [];
  handle({ send: (channel, key, payload) => messages.push([channel, key, JSON.parse(payload)]) }, events);
  return messages;
}

test('a creation and an archival each send one message keyed by the aggregate', () => {
  assert.deepEqual(sent(event('{{Pascal}}CreatedEvent', { id: ID, name: 'First' }, 7n), event('{{Pascal}}ArchivedEvent', { id: ID }, 9n)), [
    [CHANNEL, ID, { id: ID, event: '{{Pascal}}CreatedEvent', position: 7, name: 'First' }],
    [CHANNEL, ID, { id: ID, event: '{{Pascal}}ArchivedEvent', position: 9 }],
  ]);
});

test('it subscribes to what it handles and sends to the channel it declares', () => {
  const m = manifest();
  assert.deepEqual(m.channels, [CHANNEL]);
  assert.deepEqual(m.subscriptions, ['{{Pascal}}CreatedEvent', '{{Pascal}}ArchivedEvent']);
  assert.equal(m.start, 'now');
});

test('data that is not an object is refused, naming the event', () => {
  assert.throws(() => sent(event('{{Pascal}}CreatedEvent', '[1, 2]', 3n)), /CreatedEvent at 3 is not a JSON object/);
  assert.throws(() => sent(event('{{Pascal}}CreatedEvent', '{', 4n)), /at 4 is not JSON/);
});

test('a send the host refuses fails the batch with its reason', () => {
  const refusing = {
    send: () => {
      throw { payload: { tag: 'undeclared-channel', val: 'elsewhere' } };
    },
  };
  assert.throws(() => handle(refusing, [event('{{Pascal}}ArchivedEvent', { id: ID }, 5n)]), /at 5: undeclared-channel elsewhere/);
});
