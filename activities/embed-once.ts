// A text is embedded once (docs/architecture.md, decision 16). Wraps a ProviderCall's send: before a
// request goes out, one statement claims its texts in embedsync.embedded_texts; texts whose vector
// is known are reused (not sent, counted as reused in the token ledger), texts another batch is
// embedding are waited for, and only the texts this batch claimed are sent. Their vectors go into
// the record after the response; on a failure the leases go at once. Used by the batch stage
// (activities/embed.ts) and a walk's batch (activities/walk-batch.ts), so a sync, a backfill, a
// re-embed and a re-claimed sync asking for the same text pay for it once between them.
import { Context } from '@temporalio/activity';
import type { Pipeline } from '../src/db/catalog.js';
import { claimTexts, releaseTexts, storeTexts, TEXT_LEASE_MS } from '../src/db/embedded-texts.js';
import { recordSpend, type SpendMode } from '../src/db/token-ledger.js';
import { vectorSettings } from '../src/config/pipeline.js';
import { decideTexts, nextLook, textKey } from '../src/texts/once.js';
import type { ActivityDeps } from './deps.js';
import type { ProviderCall, RequestInput } from './provider-call.js';

/** Texts another batch held for longer than any live batch holds them: retried later. */
export class TextsHeldError extends Error {
  constructor(readonly texts: number) {
    super(`${texts} texts are still being embedded by another batch; trying again later`);
    this.name = 'TextsHeldError';
  }
}

/** `send` of `call`, paying only for texts no batch has embedded or is embedding. */
export function embedOnce(
  { pool, log, textLeaseMs }: ActivityDeps,
  p: Pipeline,
  mode: SpendMode,
  call: ProviderCall,
  heartbeat: () => void,
): ProviderCall['send'] {
  const ctx = Context.current();
  const settings = vectorSettings(p.config.embedding);
  // The same batch on retry is the same holder: it takes its own leases back at once.
  const holder = `${ctx.info.workflowExecution?.workflowId ?? ''}/${ctx.info.activityId}`;
  const leaseMs = textLeaseMs ?? TEXT_LEASE_MS;
  const warn = (what: string) => (err: unknown) =>
    log.warn({ err, pipeline: p.name }, `could not ${what}`);

  return async (inputs) => {
    const keys = inputs.map((x) => textKey(settings, x.chunk));
    const inputOf = new Map<string, RequestInput>();
    keys.forEach((k, i) => {
      const input = inputs[i];
      if (input && !inputOf.has(k)) inputOf.set(k, input);
    });
    const vectors = new Map<string, number[]>();
    let tokens = 0;
    let sent = 0;
    let pending = [...inputOf.keys()];
    let waitedMs = 0;
    let lastMs = 0;
    for (;;) {
      const decision = decideTexts(pending, await claimTexts(pool, pending, holder, leaseMs));
      // pgvector's text form is a JSON array.
      for (const [k, e] of decision.reuse) vectors.set(k, JSON.parse(e) as number[]);
      if (decision.send.length > 0) {
        const claimed = decision.send;
        const response = await call
          .send(claimed.map((k) => inputOf.get(k) as RequestInput))
          .catch(async (err: unknown) => {
            await releaseTexts(pool, claimed, holder).catch(warn('release the texts'));
            throw err;
          });
        claimed.forEach((k, i) => vectors.set(k, response.vectors[i] ?? []));
        tokens += response.tokens;
        sent += claimed.length;
        // Paid for already: failing here would have a retry pay again. Unstored, the leases
        // expire and a batch waiting for these texts pays for them itself.
        await storeTexts(pool, {
          key: claimed,
          embedding: response.vectors,
        }).catch(warn('record the vectors of the texts'));
      }
      pending = decision.wait;
      if (pending.length === 0) break;
      const delayMs = nextLook(waitedMs, lastMs, leaseMs);
      if (delayMs === undefined) throw new TextsHeldError(pending.length);
      waitedMs += delayMs;
      lastMs = delayMs;
      heartbeat();
      await ctx.sleep(delayMs);
    }
    const reused = inputs.length - sent;
    if (reused > 0) {
      await recordSpend(pool, {
        pipeline: p.name,
        generation: p.generation,
        mode,
        provider: call.provider.name,
        model: p.config.embedding.model,
        tokens: 0,
        requests: 0,
        texts: 0,
        reused,
      }).catch(warn('record the texts reused'));
    }
    return { vectors: keys.map((k) => vectors.get(k) ?? []), tokens };
  };
}
