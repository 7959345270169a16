// Builds a JavaScript plugin into a component: `node build.mjs SOURCE.js OUT.wasm [WORLD]`.
// componentize-js embeds SpiderMonkey (StarlingMonkey) and snapshots the module after it loads;
// the world defaults to `projection-plugin` of the repository's `wit/v0.1`. The WASI features a
// plugin does not need are left out: the host grants no network, and only the empty WASI context.
import { componentize } from '@bytecodealliance/componentize-js';
import { _setPreopens } from '@bytecodealliance/preview2-shim/filesystem';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The WIT: a `wit/` folder beside this script (a `sluice new` project), else the repository's.
const here = dirname(fileURLToPath(import.meta.url));
const defaultWit = existsSync(join(here, 'wit')) ? join(here, 'wit') : join(here, '../../wit/v0.1');
const [source, out, world = 'projection-plugin', wit = defaultWit] = process.argv.slice(2);
if (!source || !out) {
  console.error('usage: node build.mjs SOURCE.js OUT.wasm [WORLD] [WIT_DIR]');
  process.exit(2);
}
// componentize-js reads the WIT through the WASI shim, which since 0.26 opens no directory by
// default: give it the file system root, as older shims did.
_setPreopens({ '/': '/' });
const started = Date.now();
const { component } = await componentize({
  sourcePath: resolve(source),
  witPath: resolve(wit),
  worldName: world,
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
console.error(`built ${out} (${component.length} bytes) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
