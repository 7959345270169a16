// The `{{snake}}` reactor's logic: when a {{Pascal}} is created or archived (the events of
// `sluice new aggregate {{name}}`), it sends a message to channel `{{snake}}`, keyed by the
// aggregate id, so one aggregate's messages arrive in order.
//
// What it sends is recorded in the host's outbox in the same transaction as the reactor's
// position, so it is sent exactly once per event; the host then delivers it at least once, with a
// stable `Idempotency-Key`. Which channel `{{snake}}` is (a webhook, a Kafka topic) is the
// operator's choice: the host refuses the reactor until `[channels.{{snake}}]` is configured. A
// reactor has no files, sockets, clock or environment: it only sends through the outbox.
//
// Replace the subscriptions and the message with yours. Pure over the `outbox` it is given: the
// host's in the component (component.js), a recording one in the tests, so `node --test` runs it
// without the host. WIT shapes in JavaScript: records are objects with camelCase fields, enums
// strings, u64 BigInts; an exported function's error is thrown, an imported one's arrives thrown.

/** The channel its messages go to. */
export const CHANNEL = '{{snake}}';

export function manifest() {
  return {
    name: '{{snake}}',
    // The event types it reacts to: replace with your aggregates' events.
    subscriptions: ['{{Pascal}}CreatedEvent', '{{Pascal}}ArchivedEvent'],
    channels: [CHANNEL],
    // A new reactor starts at the log's head: history is not sent. `beginning` sends it all.
    start: 'now',
  };
}

/** The message one event causes; a thrown string refuses the event (it is retried, then parked). */
export function message(event) {
  const where = `${event.eventType} at ${event.globalPosition}`;
  let data;
  try {
    data = JSON.parse(event.data);
  } catch (e) {
    throw `${where} is not JSON: ${e.message}`;
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw `${where} is not a JSON object`;
  return {
    id: event.aggregateId,
    event: event.eventType,
    position: Number(event.globalPosition),
    ...(typeof data.name === 'string' ? { name: data.name } : {}),
  };
}

/** React to a batch of events in order, sending through `outbox` (`send(channel, key, payload)`). */
export function handle(outbox, events) {
  for (const event of events) {
    const payload = JSON.stringify(message(event));
    try {
      outbox.send(CHANNEL, event.aggregateId, payload);
    } catch (e) {
      const error = e?.payload ?? e;
      throw `${event.eventType} at ${event.globalPosition}: ${`${error?.tag ?? ''} ${error?.val ?? error}`.trim()}`;
    }
  }
}
