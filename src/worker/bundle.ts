// The workflow bundle, built once per version of workflows/ and kept on disk: webpack takes
// seconds, and every worker start (and every test file) would otherwise pay for it again.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';

const WORKFLOWS_DIR = fileURLToPath(new URL('../../workflows/', import.meta.url));

export function workflowsEntry(): string {
  const ts = path.join(WORKFLOWS_DIR, 'index.ts');
  return existsSync(ts) ? ts : path.join(WORKFLOWS_DIR, 'index.js');
}

// Workflows import only each other, @temporalio/workflow and types, so these decide the bundle.
async function sourceDigest(): Promise<string> {
  const hash = createHash('sha256');
  hash.update(
    await readFile(fileURLToPath(import.meta.resolve('@temporalio/workflow/package.json'))),
  );
  for (const file of (await readdir(WORKFLOWS_DIR)).sort()) {
    hash.update(file).update(await readFile(path.join(WORKFLOWS_DIR, file)));
  }
  return hash.digest('hex').slice(0, 16);
}

export async function workflowBundle(cacheDir: string): Promise<{ code: string }> {
  const file = path.join(cacheDir, `workflow-bundle-${await sourceDigest()}.js`);
  if (existsSync(file)) return { code: await readFile(file, 'utf8') };
  const { code } = await bundleWorkflowCode({
    workflowsPath: workflowsEntry(),
    logger: quietLogger,
  });
  await mkdir(cacheDir, { recursive: true });
  // Written aside and renamed, so a concurrent worker never reads half a bundle.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, code);
  await rename(tmp, file);
  return { code };
}

const noop = (): void => undefined;
const quietLogger = {
  log: noop,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: (m: string) => console.error(m),
};
