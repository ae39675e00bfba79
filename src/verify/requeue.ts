// Puts the keys verify reported back into the outbox, so the ordinary sync path repairs them: the
// safety net for changes made while the triggers were off (a restore, a bulk load with triggers
// disabled, a write made behind embedsync's back).
import { getPipeline } from '../db/catalog.js';
import { qualified } from '../db/ident.js';
import { enqueueKeys, wakePollers } from '../db/outbox.js';
import { withTransaction, type Pool } from '../db/pool.js';
import type { VerifyReport } from './verify.js';

/**
 * Queues 'U' for missing and stale keys and 'D' for orphaned ones (the sync workflow decides by the
 * row's existence either way) and wakes the pollers. Returns how many changes were queued.
 */
export async function requeueReport(pool: Pool, report: VerifyReport): Promise<number> {
  const changes = [
    ...[...report.missing, ...report.stale].map((pk) => ({ pk, op: 'U' as const })),
    ...report.orphaned.map((pk) => ({ pk, op: 'D' as const })),
  ];
  if (changes.length === 0) return 0;
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
    const queued = await enqueueKeys(client, report.pipeline, changes);
    // Delivered at commit, when the queued changes can be claimed.
    await wakePollers(client, report.pipeline);
    return queued;
  });
}
