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

/** The ids of the changes waiting in the outbox now. */
export async function queuedChanges(pool: Pool): Promise<number[]> {
  const { rows } = await pool.query<{ id: number }>('select id from embedsync.outbox');
  return rows.map((r) => r.id);
}

/** Of the given outbox ids, those no longer in the outbox. */
export async function leftOutbox(pool: Pool, ids: readonly number[]): Promise<number[]> {
  const { rows } = await pool.query<{ id: number }>(
    'select q.id from unnest($1::bigint[]) as q(id) where not exists (select 1 from embedsync.outbox o where o.id = q.id)',
    [ids],
  );
  return rows.map((r) => r.id);
}
