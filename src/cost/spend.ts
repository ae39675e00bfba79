// The token ledger (src/db/token-ledger.ts) priced for `status`: each line at the price of the model
// that paid it (the pipeline's declared price while that is still its model, the list price
// otherwise), online or in batch mode. Pure: the ledger's lines in, a pipeline's spend out.
import type { PipelineConfig } from '../config/pipeline.js';
import type { LedgerLine, SpendMode } from '../db/token-ledger.js';
import { costOf, listPrice, priceOf, type ModelPrice } from '../providers/prices.js';

export interface ModeSpend {
  tokens: number;
  /** US dollars, for the tokens of a known price. */
  cost: number;
}

export interface PeriodSpend extends ModeSpend {
  requests: number;
  /** Texts sent, and texts whose vector was reused instead of paid for. */
  texts: number;
  reused: number;
  /** Tokens of a model with no known price: not in `cost`. */
  unpricedTokens: number;
  byMode: Partial<Record<SpendMode, ModeSpend>>;
}

export interface PipelineSpend {
  today: PeriodSpend;
  last30Days: PeriodSpend;
  total: PeriodSpend;
}

const emptyPeriod = (): PeriodSpend => ({
  tokens: 0,
  cost: 0,
  requests: 0,
  texts: 0,
  reused: 0,
  unpricedTokens: 0,
  byMode: {},
});

/** The price of a ledger line's model: the pipeline's declared one for its configs' models. */
function priceFor(line: LedgerLine, configs: readonly PipelineConfig[]): ModelPrice | undefined {
  const own = configs.find(
    (c) => c.embedding.provider === line.provider && c.embedding.model === line.model,
  );
  return own ? priceOf(own.embedding) : listPrice(line.provider, line.model);
}

/** One pipeline's ledger lines, priced and summed per period and mode. */
export function priceSpend(
  lines: readonly LedgerLine[],
  configs: readonly PipelineConfig[],
): PipelineSpend {
  const spend: PipelineSpend = {
    today: emptyPeriod(),
    last30Days: emptyPeriod(),
    total: emptyPeriod(),
  };
  for (const line of lines) {
    const period = spend[line.period];
    const cost = costOf(
      line.tokens,
      priceFor(line, configs),
      line.mode === 'batch' ? 'batch' : 'online',
    );
    period.tokens += line.tokens;
    period.requests += line.requests;
    period.texts += line.texts;
    period.reused += line.reused;
    if (cost === undefined) period.unpricedTokens += line.tokens;
    else period.cost += cost;
    const mode = (period.byMode[line.mode] ??= { tokens: 0, cost: 0 });
    mode.tokens += line.tokens;
    mode.cost += cost ?? 0;
  }
  return spend;
}
