// Each worker keeps its providers' rate plans (src/rate-limit/plan.ts) in step with the limits
// the environment and the catalog's pipelines declare, re-reading the catalog every few seconds, so
// a changed limit takes effect without restarting anything:
//
// - every request takes its turn from the requests and tokens buckets at the current plan's rates;
// - the requests-per-minute pace is the embedding task queue's rate limit, which the worker sets on
//   the Temporal server (UpdateTaskQueueConfig: `temporal task-queue config get` shows it, with its
//   reason). A server without that API gets the rate as a worker option instead, which is read once
//   at start: there a lowered limit is still kept at once by the requests bucket, and a raised one
//   is reached after the workers restart (the log says so).
//
// - the limits the providers reported in their answers and how their token counts compare with
//   embedsync's estimate (embedsync.rate_observations, src/rate-limit/observe.ts) are read with the
//   catalog, and taken at once from this worker's own answers.
//
// Every worker computes the same plan from the same catalog, observations and (when set)
// environment, so workers setting the queue's rate at once agree.
import proto from '@temporalio/proto';
import { listPipelines } from '../db/catalog.js';
import { readRateObservations, type RateObservations } from '../db/rate-observations.js';
import { providerLearnedLimits } from './observed.js';
import { planProviderQueue, samePlan, type RatePlan } from './plan.js';
import { embedTaskQueue } from '../temporal/names.js';
import type { WorkerDeps } from '../worker/worker.js';

const { TaskQueueType } = proto.temporal.api.enums.v1;

/** How often the catalog is read for changed limits. */
export const RATE_PLAN_REFRESH_MS = 5000;

// gRPC status codes of a server that does not offer UpdateTaskQueueConfig, or not to us.
const API_MISSING = new Set([
  7 /* PERMISSION_DENIED */, 9 /* FAILED_PRECONDITION */, 12 /* UNIMPLEMENTED */,
]);

export type RatePlansDeps = Pick<
  WorkerDeps,
  'connection' | 'namespace' | 'taskQueue' | 'pool' | 'providers' | 'log'
> & {
  /** Defaults to RATE_PLAN_REFRESH_MS. */
  refreshMs?: number | undefined;
};

export class RatePlans {
  private readonly plans = new Map<string, RatePlan>();
  /** The latest observations per provider+model (key `provider\nmodel`). */
  private readonly observations = new Map<string, RateObservations>();
  /** Queue rates as last set on the server, per provider (undefined: no limit). */
  private readonly queueRates = new Map<string, number | undefined>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private stopped = false;
  /** False when the server has no UpdateTaskQueueConfig: the rate is then a worker option. */
  serverPaced = true;

  constructor(private readonly deps: RatePlansDeps) {}

  /** The plan a request of `provider` follows now. */
  plan(provider: string): RatePlan | undefined {
    return this.plans.get(provider);
  }

  /**
   * The provider's token count ÷ embedsync's estimate for a model, as learned so far (1: nothing
   * learned).
   */
  tokenRatio(provider: string, model: string): number {
    return this.observations.get(`${provider}\n${model}`)?.tokenRatio ?? 1;
  }

  /**
   * This worker's latest answer's observations: the ratio applies at once, and limits the plan does
   * not have yet are planned for now rather than at the next refresh.
   */
  learn(row: RateObservations): void {
    const key = `${row.provider}\n${row.model}`;
    const before = this.observations.get(key);
    this.observations.set(key, row);
    if (
      before?.requestsPerMinute !== row.requestsPerMinute ||
      before?.tokensPerMinute !== row.tokensPerMinute
    )
      this.refreshSoon();
  }

  private refreshSoon(): void {
    // An activity finishing during shutdown must not start a refresh on a closing pool.
    if (this.stopped) return;
    this.refreshing ??= this.refresh()
      .catch((err: unknown) =>
        this.deps.log.warn(
          { err },
          'could not refresh the rate limits; the previous ones stay in force',
        ),
      )
      .finally(() => {
        this.refreshing = undefined;
      });
  }

  /** Reads the limits and sets the queue rates; call once before the workers start. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => this.refreshSoon(), this.deps.refreshMs ?? RATE_PLAN_REFRESH_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.refreshing;
  }

  async refresh(): Promise<void> {
    const { pool, providers, log } = this.deps;
    // A pipeline's pending config (during a re-embed) may use another provider: it is paced as
    // well.
    const configs = (await listPipelines(pool)).flatMap((p) =>
      p.pendingConfig ? [p.config, p.pendingConfig] : [p.config],
    );
    const observed = await readRateObservations(pool);
    // Only rows newer than this worker's own: an answer it took meanwhile must not be undone.
    for (const row of observed) {
      const key = `${row.provider}\n${row.model}`;
      const mine = this.observations.get(key);
      if (!mine || mine.updatedAt <= row.updatedAt) this.observations.set(key, row);
    }
    const learned = [...this.observations.values()];
    for (const provider of providers.values()) {
      const plan = planProviderQueue(
        provider,
        configs.filter((c) => c.embedding.provider === provider.name),
        providerLearnedLimits(learned, provider.name, Date.now()),
      );
      const before = this.plans.get(provider.name);
      if (!samePlan(before, plan)) {
        this.plans.set(provider.name, plan);
        if (before || plan.activitiesPerSecond !== undefined || plan.tokens) {
          log.info(
            {
              provider: provider.name,
              ...plan.limit,
              learned: plan.learned,
              activitiesPerSecond: plan.activitiesPerSecond,
              tokensPerRequest: plan.tokensPerRequest,
            },
            before ? 'embedding rate limits changed' : 'embedding queue paced',
          );
        }
      }
      await this.setQueueRate(provider.name, plan.activitiesPerSecond);
    }
  }

  private async setQueueRate(provider: string, perSecond: number | undefined): Promise<void> {
    if (this.queueRates.has(provider) && this.queueRates.get(provider) === perSecond) return;
    if (!this.serverPaced) {
      if (this.queueRates.has(provider))
        this.deps.log.warn(
          { provider, activitiesPerSecond: perSecond },
          "the requests-per-minute limit changed: the requests bucket keeps the new one, but this Temporal server takes a task queue's rate only from its workers, so a raised limit is reached once the workers restart",
        );
      this.queueRates.set(provider, perSecond);
      return;
    }
    const { connection, namespace, taskQueue } = this.deps;
    try {
      await connection.workflowService.updateTaskQueueConfig({
        namespace,
        identity: 'embedsync worker',
        taskQueue: embedTaskQueue(taskQueue, provider),
        taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        // Without rateLimit the limit is removed.
        updateQueueRateLimit:
          perSecond === undefined
            ? { reason: `no requests-per-minute limit for ${provider}` }
            : {
                rateLimit: { requestsPerSecond: perSecond },
                reason: `requests-per-minute limit of ${provider}, from embedsync's pipelines and environment`,
              },
      });
      this.queueRates.set(provider, perSecond);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (this.queueRates.size > 0 || typeof code !== 'number' || !API_MISSING.has(code)) throw err;
      // Learnt on the first call: from now on the rate is the worker option.
      this.serverPaced = false;
      this.deps.log.warn(
        { err },
        'this Temporal server does not set task queue rates by API; the embedding queues are paced by a worker option, so a raised requests-per-minute limit is reached only after the workers restart',
      );
      this.queueRates.set(provider, perSecond);
    }
  }
}
