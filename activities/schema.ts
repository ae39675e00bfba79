// A batch that meets a source table which changed shape under it. A renamed table is followed (the
// schema check updates the catalog) and the batch goes on; anything else fails the batch for good,
// so its keys wait as dead letters until the pipeline is fixed, instead of retrying forever.
import {
  checkSourceSchemas,
  isSchemaError,
  SchemaChangedError,
} from '../src/capture/schema-check.js';
import type { ActivityDeps } from './deps.js';

export async function followingSchemaChanges<T>(
  { pool, log }: ActivityDeps,
  pipeline: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isSchemaError(err)) throw err;
    const [result] = await checkSourceSchemas(pool, { log, pipeline });
    const hold = result?.verdict.hold;
    if (hold) throw new SchemaChangedError(pipeline, `${(err as Error).message}: ${hold.reason}`);
    try {
      return await fn(); // the table is in shape again (renamed and followed, say): once more
    } catch (again) {
      if (isSchemaError(again)) throw new SchemaChangedError(pipeline, (again as Error).message);
      throw again;
    }
  }
}
