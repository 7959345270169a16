// The `holder-stats` component: binds the logic of `stats.js` to the host's `sql` capability and
// exports it as the `projection` interface of the `sluice:plugin@0.1.0` `projection-plugin` world.
import * as sql from 'sluice:plugin/sql@0.1.0';
import { handle, manifest, query } from './stats.js';

export const projection = {
  describe: () => manifest(),
  handle: (events) => handle(sql, events),
  query: (name, params) => query(sql, name, params),
};
