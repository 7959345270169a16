// The `{{snake}}` component: binds reactor.js to the host's `outbox` and exports the `reactor`
// interface of the `sluice:plugin@0.2.0` `reactor-plugin` world.
import { log } from 'sluice:plugin/log@0.2.0';
import * as outbox from 'sluice:plugin/outbox@0.2.0';
import { handle, manifest } from './reactor.js';

export const reactor = {
  describe: () => manifest(),
  handle: (events) => {
    handle(outbox, events);
    log('debug', `sent ${events.length} message(s)`);
  },
};
