// Rate limiting: how embedding requests fill each provider's requests- and tokens-per-minute
// budgets without overrunning them, however many workers share them (for users: README.md,
// "Rate limits").
//
// - plan.ts: from the limits the environment and the pipelines declare, a provider's plan: its
//   embedding task queue's activities per second, the largest request, the buckets' rates. Pure.
// - buckets.ts: every request takes its turn from the provider's requests and tokens buckets in
//   Postgres (sql/000004_rate_buckets.sql, sql/000010_rate_bucket_clock.sql), shared by all
//   workers; a 429 holds them all back until a time (sql/000019_rate_hold_time.sql).
// - observed.ts: what the provider's answers change: the ratio of its token count to the estimate
//   that requests are charged by, buckets lowered to what it says is left, limits learned from its
//   headers. Pure; observe.ts applies them to the shared state (sql/000016_rate_observations.sql).
// - task-queues.ts: each worker keeps the plans in step with the catalog and sets the embedding
//   task queues' rate on the Temporal server, which enforces it across all workers.
export { planProviderQueue, samePlan, type BucketRate, type RatePlan } from './plan.js';
export {
  hasBuckets,
  holdBack,
  MAX_TURN_WAIT_MS,
  takeTurn,
  type Buckets,
  type Turn,
} from './buckets.js';
export { chargedTokens, nextTokenRatio, type TokenRatio } from './observed.js';
export { observe, type Answer } from './observe.js';
export { RATE_PLAN_REFRESH_MS, RatePlans, type RatePlansDeps } from './task-queues.js';
