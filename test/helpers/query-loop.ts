// Reads a column pipeline's table the way an application does, in a loop on a connection of its
// own: nearest neighbours by `order by <column> <=> $1 limit 10`, with a query vector of the model
// the column holds. Counts failures and any answer mixing models. Bounded by iterations, not time.
import type { Pool } from '../../src/db/pool.js';
import { quoteIdent } from '../../src/db/ident.js';

export interface QueryLoopResult {
  queries: number;
  failures: string[];
  /** Answers whose vectors were not all of one model. */
  mixed: string[];
  /** Answers seen per model. */
  models: Map<string, number>;
}

export interface QueryLoop {
  /** Queries answered so far. */
  readonly queries: number;
  stop(): Promise<QueryLoopResult>;
}

/**
 * `modelOf` names the model a returned vector came from (by its dimensions, or a marker in it);
 * `queryVector` makes a query vector of a dimension. The column's dimension is read first in the
 * same transaction, whose lock keeps the column as it is until the query has run: an application
 * that embeds its query with the model the column holds.
 */
export function startQueryLoop(
  pool: Pool,
  table: string,
  column: string,
  options: {
    modelOf: (vector: number[]) => string;
    queryVector: (dimensions: number) => number[];
    maxQueries?: number;
  },
): QueryLoop {
  const col = quoteIdent(column);
  const result: QueryLoopResult = { queries: 0, failures: [], mixed: [], models: new Map() };
  const max = options.maxQueries ?? 100_000;
  let running = true;
  const loop = (async () => {
    const client = await pool.connect();
    try {
      while (running && result.queries < max) {
        try {
          await client.query('begin');
          const dims = await client.query<{ d: number }>(
            `select vector_dims(${col}) as d from ${table} where ${col} is not null limit 1`,
          );
          const d = dims.rows[0]?.d;
          if (d !== undefined) {
            const { rows } = await client.query<{ v: string | null }>(
              `select ${col}::text as v from ${table} order by ${col} <=> $1 limit 10`,
              [JSON.stringify(options.queryVector(d))],
            );
            const models = new Set(
              rows.flatMap((r) =>
                r.v === null ? [] : [options.modelOf(JSON.parse(r.v) as number[])],
              ),
            );
            if (models.size > 1) result.mixed.push([...models].join(' + '));
            for (const m of models) result.models.set(m, (result.models.get(m) ?? 0) + 1);
          }
          await client.query('commit');
          result.queries += 1;
        } catch (err) {
          await client.query('rollback').catch(() => undefined);
          result.failures.push((err as Error).message);
          result.queries += 1;
        }
      }
    } finally {
      client.release();
    }
  })();
  return {
    get queries() {
      return result.queries;
    },
    async stop() {
      running = false;
      await loop;
      return result;
    },
  };
}
