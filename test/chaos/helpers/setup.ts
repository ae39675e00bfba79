// The common start of every scenario: a products table with its pipeline, and a Temporal client.
import { Client, Connection } from '@temporalio/client';
import { applyPipelines } from '../../../src/capture/apply.js';
import { readEnv } from '../../../src/config/env.js';
import { parsePipelines } from '../../../src/config/pipeline.js';
import type { Pool } from '../../../src/db/pool.js';
import { temporalAddress } from '../../../src/temporal/connect.js';
import { PRODUCTS_TABLE, productsPipeline } from '../../helpers/harness.js';
import type { Scene } from './scene.js';

export async function createProductsPipeline(pool: Pool): Promise<void> {
  await pool.query(PRODUCTS_TABLE);
  await applyPipelines(pool, parsePipelines({ pipelines: [productsPipeline()] }));
}

/** The Temporal the test run was given (TEMPORAL_ADDRESS), unless a scenario brings its own. */
export const sharedTemporalAddress = (): string => temporalAddress(readEnv());

export async function temporalClient(scene: Scene, address: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  scene.onCleanup(() => connection.close());
  return new Client({ connection, namespace: readEnv().temporalNamespace });
}

/**
 * The keys whose changes wait in the outbox now, as `pipeline:key`. Keys, not outbox ids: a claim
 * replaces the rows it takes with its planned batches before it starts them (src/db/outbox.ts).
 */
export async function queuedChanges(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ key: string }>(
    `select distinct pipeline || ':' || pk as key from embedsync.outbox_keys`,
  );
  return rows.map((r) => r.key);
}

/** Of the given queued keys (queuedChanges), those no longer in the outbox. */
export async function leftOutbox(pool: Pool, keys: readonly string[]): Promise<string[]> {
  const { rows } = await pool.query<{ key: string }>(
    `select q.key from unnest($1::text[]) as q(key)
      where not exists (select 1 from embedsync.outbox_keys o where o.pipeline || ':' || o.pk = q.key)`,
    [keys],
  );
  return rows.map((r) => r.key);
}
