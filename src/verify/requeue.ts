// Puts the keys verify reported back into the outbox, so the ordinary sync path repairs them: the
// safety net for changes made while the triggers were off (a restore, a bulk load with triggers
// disabled, a write made behind embedsync's back).
import { NOTIFY_CHANNEL } from '../capture/triggers.js';
import { getPipeline } from '../db/catalog.js';
import { qualified } from '../db/ident.js';
import { withTransaction, type Pool } from '../db/pool.js';
import type { VerifyReport } from './verify.js';

/**
 * Queues 'U' for missing and stale keys and 'D' for orphaned ones (the sync workflow decides by the
 * row's existence either way) and wakes the pollers. Returns how many changes were queued.
 */
export async function requeueReport(pool: Pool, report: VerifyReport): Promise<number> {
  const keys = [...report.missing, ...report.stale, ...report.orphaned];
  if (keys.length === 0) return 0;
  const ops = [
    ...report.missing.map(() => 'U'),
    ...report.stale.map(() => 'U'),
    ...report.orphaned.map(() => 'D'),
  ];
  const p = await getPipeline(pool, report.pipeline);
  return withTransaction(pool, async (client) => {
    // The sync re-embeds a row only when chunk 0's content hash differs from the row's: a row whose
    // later chunks were damaged behind embedsync's back would be found "unchanged". Clearing that
    // hash makes it embed the row again; search keeps the old vectors until the new ones replace
    // them.
    if (report.staleContent.length > 0) {
      await client.query(
        `update ${qualified(p.vectorSchema, p.vectorTable)} set content_hash = '' where pk = any($1::text[]) and chunk_index = 0`,
        [report.staleContent],
      );
    }
    const { rowCount } = await client.query(
      `insert into embedsync.outbox (pipeline, pk, op)
       select $1, k.pk, k.op::"char" from unnest($2::text[], $3::text[]) with ordinality as k(pk, op, n) order by k.n`,
      [report.pipeline, keys, ops],
    );
    // Delivered at commit, like the triggers' own notifications.
    await client.query('select pg_notify($1, $2)', [NOTIFY_CHANNEL, report.pipeline]);
    return rowCount ?? 0;
  });
}
