// Stage 1: read the batch's source rows, decide per key what must happen, and stage the texts.
import { atGeneration, getPipeline } from '../src/db/catalog.js';
import { qualified } from '../src/db/ident.js';
import { withTransaction } from '../src/db/pool.js';
import { readSourceRows } from '../src/db/source.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';
import { followingSchemaChanges } from './schema.js';
import type { FetchInput, FetchResult } from './types.js';

export function createFetchBatch(deps: ActivityDeps) {
  const { pool } = deps;
  return async function fetchBatch({
    pipeline,
    batchId,
    keys,
    generation,
  }: FetchInput): Promise<FetchResult> {
    return classified(() =>
      followingSchemaChanges(deps, pipeline, async () => {
        const live = await getPipeline(pool, pipeline);
        const p = atGeneration(live, generation);
        if (!p) {
          await pool.query('delete from embedsync.staged_rows where batch_id = $1', [batchId]);
          return { generation: generation ?? live.generation, embed: 0, keep: 0, delete: 0 };
        }
        const rows = await readSourceRows(pool, p, keys);
        const current = await pool.query<{ pk: string; content_hash: string; generation: number }>(
          `select pk, content_hash, generation from ${qualified(p.vectorSchema, p.vectorTable)}
          where pk = any($1::text[]) and chunk_index = 0`,
          [rows.map((r) => r.pk)],
        );
        const embedded = new Map(current.rows.map((r) => [r.pk, r]));

        const staged = {
          pk: [] as string[],
          action: [] as string[],
          document: [] as (string | null)[],
          context: [] as (string | null)[],
          hash: [] as (string | null)[],
        };
        const present = new Set<string>();
        for (const row of rows) {
          present.add(row.pk);
          const now = embedded.get(row.pk);
          const unchanged =
            now?.content_hash === row.contentHash && now.generation === p.generation;
          staged.pk.push(row.pk);
          staged.action.push(unchanged ? 'keep' : 'embed');
          staged.document.push(unchanged ? null : row.document);
          staged.context.push(unchanged || row.context === '' ? null : row.context);
          staged.hash.push(row.contentHash);
        }
        for (const key of new Set(keys)) {
          if (present.has(key)) continue;
          staged.pk.push(key);
          staged.action.push('delete');
          staged.document.push(null);
          staged.context.push(null);
          staged.hash.push(null);
        }

        await withTransaction(pool, async (client) => {
          // A retry starts the batch afresh: whatever an earlier attempt staged is replaced.
          await client.query('delete from embedsync.staged_rows where batch_id = $1', [batchId]);
          await client.query(
            `insert into embedsync.staged_rows (batch_id, pk, action, document, context, content_hash, generation)
           select $1, s.pk, s.action, s.document, s.context, s.hash, $2
             from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) as s(pk, action, document, context, hash)`,
            [
              batchId,
              p.generation,
              staged.pk,
              staged.action,
              staged.document,
              staged.context,
              staged.hash,
            ],
          );
        });
        const count = (a: string) => staged.action.filter((x) => x === a).length;
        return {
          generation: p.generation,
          embed: count('embed'),
          keep: count('keep'),
          delete: count('delete'),
        };
      }),
    );
  };
}
