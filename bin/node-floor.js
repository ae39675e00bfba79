// The Node.js this project needs: package.json's engines.node (">=22.13"). Plain JavaScript, so
// the launcher and the test runner can check it before tsx or anything else is loaded.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

/** The lowest Node.js version that runs embedsync, e.g. "22.13". */
export const NODE_FLOOR = pkg.engines.node.replace(/^>=\s*/, '');

/** Whether `version` (default: this process's) is older than the floor. */
export function belowNodeFloor(version = process.versions.node) {
  const [a = 0, b = 0] = version.split('.').map(Number);
  const [x = 0, y = 0] = NODE_FLOOR.split('.').map(Number);
  return a < x || (a === x && b < y);
}
