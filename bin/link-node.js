// Run by npm after `npm ci` or `npm install` (postinstall): links node_modules/.bin/node to the
// Node 24 that optionalDependencies brought for this platform, so every npm script, `npx embedsync`
// and what they start run on it, whatever the system Node. npm 11 links it itself; npm 10 links it,
// then deletes it again while skipping the builds for the other platforms, whose bin has the same
// name.
import { existsSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const modules = fileURLToPath(new URL('../node_modules/', import.meta.url));
const build = `node-${process.platform}-${process.arch}/bin/node`;
const link = `${modules}.bin/node`;

const linked = (() => {
  try {
    return readlinkSync(link) === `../${build}`;
  } catch {
    return false; // missing, or not a link
  }
})();
// Without a build for this platform (Apple Silicon, Windows) the system Node must do, and
// bin/embedsync.js says so if it is too old.
if (!linked && process.platform !== 'win32' && existsSync(`${modules}${build}`)) {
  mkdirSync(`${modules}.bin`, { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(`../${build}`, link);
}
