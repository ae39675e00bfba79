// A steady stream of user writes to `products` — inserts, content updates, deletes — that carries
// on through outages: a statement that fails is counted and the stream goes on, as an application
// would.
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool } from '../../../src/db/pool.js';

export interface WriteStats {
  rounds: number;
  /** Rounds that failed (the database was down); their outcome is whatever the database decided. */
  failed: number;
  inserted: number;
  updated: number;
  deleted: number;
}

export interface WriteLoad {
  readonly stats: WriteStats;
  /** Resolves once `n` more rounds (an insert, sometimes an update or a delete) have succeeded. */
  progressed(n: number): Promise<void>;
  stop(): Promise<WriteStats>;
}

/**
 * Every text is unique (it names the statement that wrote it), so a test can tell each version
 * apart.
 */
export function startWriteLoad(databaseUrl: string, label: string, everyMs = 30): WriteLoad {
  const pool = createPool(databaseUrl, { max: 1, applicationName: `chaos-load-${label}` });
  const stats: WriteStats = { rounds: 0, failed: 0, inserted: 0, updated: 0, deleted: 0 };
  const known: string[] = [];
  let stopped = false;
  let ending: Promise<WriteStats> | undefined;

  async function step(seq: number): Promise<void> {
    const tag = `${label}-${seq}`;
    const { rows } = await pool.query<{ id: string }>(
      `insert into products (name, description, category, price)
       select 'Load ' || $1 || '.' || g, 'Written by statement ' || $1 || ' as row ' || g, 'load', g
         from generate_series(1, $2::int) g returning id::text`,
      [tag, 1 + (seq % 3)],
    );
    known.push(...rows.map((r) => r.id));
    stats.inserted += rows.length;
    if (seq % 3 === 1 && known.length > 10) {
      const ids = [known[(seq * 7) % known.length], known[(seq * 13) % known.length]];
      const updated = await pool.query(
        `update products set description = 'Rewritten by statement ' || $1 || ' for row ' || id where id = any($2::bigint[])`,
        [tag, ids],
      );
      stats.updated += updated.rowCount ?? 0;
    }
    if (seq % 4 === 3 && known.length > 10) {
      const [id] = known.splice((seq * 5) % known.length, 1);
      const deleted = await pool.query('delete from products where id = $1', [id]);
      stats.deleted += deleted.rowCount ?? 0;
    }
  }

  const loop = (async () => {
    for (let seq = 0; !stopped; seq += 1) {
      try {
        await step(seq);
        stats.rounds += 1;
        await sleep(everyMs);
      } catch {
        stats.failed += 1;
        await sleep(200);
      }
    }
  })();

  return {
    stats,
    async progressed(n) {
      const target = stats.rounds + n;
      const deadline = Date.now() + 60_000;
      while (stats.rounds < target) {
        if (Date.now() > deadline)
          throw new Error(`the write load made no progress (${JSON.stringify(stats)})`);
        await sleep(50);
      }
    },
    stop() {
      stopped = true;
      ending ??= loop.then(() => pool.end()).then(() => stats);
      return ending;
    },
  };
}
