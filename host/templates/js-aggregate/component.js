// The `{{snake}}` component: exports aggregate.js as the `aggregate` interface of the
// `sluice:plugin@0.2.0` `upcasting-aggregate-plugin` world. The host keeps the state as opaque
// bytes: here, the state object as JSON text.
import { log } from 'sluice:plugin/log@0.2.0';
import { decide, evolve, manifest, upcast } from './aggregate.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const load = (bytes) => (bytes === undefined ? null : JSON.parse(decoder.decode(bytes)));
const save = (state) => encoder.encode(JSON.stringify(state));

export const aggregate = {
  describe: () => manifest(),
  evolve: (state, events) => save(evolve(load(state), events)),
  decide: (state, command) => {
    const events = decide(load(state), command);
    log('debug', `${command.commandType} on ${command.aggregateId}: ${events.length} event(s)`);
    return events;
  },
  upcast: (events) => upcast(events),
  render: (state) => JSON.stringify(load(state)),
};
