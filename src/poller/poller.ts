// The poller: outbox → Temporal. Claim and stamp the planned batches in one transaction, start them,
// delete them (docs/architecture.md, decision 4). A crash before the stamps commit leaves the rows
// for the next claim, a crash after it the same batches; several pollers may run at once.
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import pg from 'pg';
import {
  instanceId,
  isEventsPipeline,
  listAnyPipelines,
  type AnyPipeline,
  type EventsPipeline,
  type Pipeline,
} from '../db/catalog.js';
import {
  DEFAULT_DEAD_LETTER_RETRY,
  requeueFailedBatches,
  type DeadLetterRetry,
} from '../db/dead-letters.js';
import { pruneTexts } from '../db/embedded-texts.js';
import {
  claimOutboxBatch,
  deleteClaimed,
  deleteStarted,
  NOTIFY_CHANNEL,
  restamp,
  stampBatches,
} from '../db/outbox.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { checkSourceSchemas } from '../capture/schema-check.js';
import { EMBED_KIND, EMBED_PIPELINE, embedTaskQueue } from '../temporal/names.js';
import type { SyncInput, SyncTarget, syncChanges } from '../../workflows/index.js';
import { DEFAULT_TEXT_RETENTION, durationMs } from '../config/env.js';
import type { PipelineConfig } from '../config/pipeline.js';
import { createCatalogMetrics, type CatalogMetrics } from '../metrics/catalog.js';
import { serveMetrics, type MetricsListen, type MetricsServer } from '../metrics/server.js';
import { nextPollDelay } from './pace.js';
import { planBatches, planStamped, type PlannedBatch } from './plan.js';
import { redeliver } from '../sinks/redeliver.js';
import { WalReader, type WalReaderOptions } from './wal-reader.js';

export interface PollerOptions {
  /** Most keys one claim takes (a statement's row of many keys may be taken in parts). */
  claimLimit: number;
  /**
   * How often to look for changes while none are flowing (the longest wait between looks); a NOTIFY
   * on embedsync_outbox wakes it sooner.
   */
  fallbackIntervalMs: number;
  /**
   * How soon to look again after a look that found changes; past the busy hold, each look that finds
   * none doubles the wait, up to fallbackIntervalMs (src/poller/pace.ts).
   */
  busyIntervalMs: number;
  /**
   * How long (counted in busy waits, not on the clock) the poller keeps to the busy interval after
   * the last look that found changes, before it backs off (src/poller/pace.ts).
   */
  busyHoldMs: number;
  /**
   * How often to look for failed batches' dead letters whose wait is over
   * (src/db/dead-letters.ts).
   */
  deadLetterCheckMs: number;
  deadLetterRetry: DeadLetterRetry;
  /**
   * How often to compare the source tables with what the pipelines read
   * (src/capture/schema-check.ts).
   */
  schemaCheckMs: number;
  /**
   * How long an embedded text's vector stays on record for reuse (EMBEDSYNC_TEXT_RETENTION); the
   * poller prunes older entries of embedsync.embedded_texts every textPruneMs.
   */
  textRetentionMs: number;
  textPruneMs: number;
  /**
   * How long the batches a claim stamped are left to the poller that stamped them (it is starting
   * them) before another claim may start them: longer than a start takes.
   */
  stampGraceMs: number;
  /**
   * Ask the server to hand each sync's first workflow task straight back to a worker of this
   * process (eager workflow start), skipping the task queue's round trip. Needs a client on that
   * worker's NativeConnection (`embedsync worker --poller`); when the worker has no free slot, the
   * server queues the task as usual.
   */
  eagerStart: boolean;
  /** Logical capture's reader (decision 29), run before each claim while a pipeline uses it. */
  walReader: WalReaderOptions;
}

export const DEFAULT_POLLER_OPTIONS: PollerOptions = {
  claimLimit: 2000,
  fallbackIntervalMs: 100,
  busyIntervalMs: 10,
  busyHoldMs: 250,
  deadLetterCheckMs: 30_000,
  deadLetterRetry: DEFAULT_DEAD_LETTER_RETRY,
  schemaCheckMs: 3000,
  textRetentionMs: durationMs(DEFAULT_TEXT_RETENTION),
  textPruneMs: 60_000,
  stampGraceMs: 10_000,
  eagerStart: false,
  walReader: {},
};

export interface PollerDeps {
  pool: Pool;
  /** For LISTEN, which needs a connection of its own. */
  databaseUrl: string;
  temporal: Client;
  taskQueue: string;
  log: Logger;
  /** How the loop waits between looks (default: a timer); tests pass their own to see the waits. */
  sleep?: (ms: number) => Promise<void>;
}

export class Poller {
  private readonly options: PollerOptions;
  private stopped = false;
  private wake: (() => void) | undefined;
  private notified = false;
  private listener: pg.Client | undefined;
  private loop: Promise<void> | undefined;
  private instanceId: string | undefined;
  private metricsServer: MetricsServer | undefined;
  /** The pipelines' state, read from Postgres when scraped; a registry of this poller's own. */
  readonly metrics: CatalogMetrics;
  readonly walReader: WalReader;
  private walWarnedAt = 0;

  constructor(
    private readonly deps: PollerDeps,
    options: Partial<PollerOptions> = {},
  ) {
    this.options = { ...DEFAULT_POLLER_OPTIONS, ...options };
    this.metrics = createCatalogMetrics(deps.pool, deps.log);
    this.walReader = new WalReader(
      { pool: deps.pool, databaseUrl: deps.databaseUrl, log: deps.log },
      this.options.walReader,
    );
  }

  /** Serves /metrics until stop(); returns its URL. */
  async serveMetrics(listen: MetricsListen): Promise<string> {
    this.metricsServer ??= await serveMetrics(
      listen,
      { registry: this.metrics.registry },
      this.deps.log,
    );
    return this.metricsServer.url;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.walReader.close();
    await this.listener?.end().catch(() => undefined);
    await this.metricsServer?.close();
  }

  /**
   * Claims once and starts the workflows; returns how many keys it handled. The claim records its
   * batches (stamped with their workflow ids) in the outbox and commits before starting them, so a
   * crash after that point leaves the same batches, not their rows, to the next claim.
   */
  async pollOnce(): Promise<number> {
    const client = await this.deps.pool.connect();
    try {
      await client.query('begin');
      const rows = await claimOutboxBatch(
        client,
        this.options.claimLimit,
        this.options.stampGraceMs,
      );
      if (rows.length === 0) {
        await client.query('commit');
        return 0;
      }
      const pipelines = new Map((await listAnyPipelines(client)).map((p) => [p.name, p]));
      const orphans = rows.filter((r) => !pipelines.has(r.pipeline));
      for (const name of new Set(orphans.map((r) => r.pipeline)))
        this.deps.log.warn(
          { pipeline: name },
          'dropping queued changes of a pipeline that no longer exists',
        );
      this.instanceId ??= await instanceId(client);
      const batchSize = (name: string) => pipelines.get(name)?.config.batchSize ?? 200;
      const live = rows.filter((r) => pipelines.has(r.pipeline));
      const planned = planBatches(
        live.filter((r) => r.startedAs === undefined),
        batchSize,
        this.instanceId,
      );
      const resumed = planStamped(live);
      const stamps = [
        ...(await stampBatches(client, planned)),
        ...resumed.flatMap((b) => b.outboxIds),
      ];
      await restamp(client, stamps.slice(planned.length));
      await deleteClaimed(
        client,
        rows.filter((r) => r.startedAs === undefined || !pipelines.has(r.pipeline)),
      );
      await client.query('commit');
      const batches = [...planned, ...resumed];
      try {
        await Promise.all(
          batches.map((b) => this.startBatch(b, pipelines.get(b.pipeline) as AnyPipeline)),
        );
      } catch (err) {
        // Free for the very next claim, which starts them under the same ids.
        await restamp(client, stamps, false).catch(() => undefined);
        throw err;
      }
      await deleteStarted(client, stamps);
      this.deps.log.debug({ rows: rows.length, batches: batches.length }, 'claimed outbox rows');
      return rows.length;
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  private async startBatch(batch: PlannedBatch, pipeline: AnyPipeline): Promise<void> {
    const input = isEventsPipeline(pipeline)
      ? this.eventsInput(batch, pipeline)
      : this.syncInput(batch, pipeline);
    try {
      await this.deps.temporal.workflow.start<typeof syncChanges>('syncChanges', {
        taskQueue: this.deps.taskQueue,
        ...(this.options.eagerStart ? { requestEagerStart: true } : {}),
        workflowId: batch.workflowId,
        args: [input],
        typedSearchAttributes: [
          { key: EMBED_PIPELINE, value: batch.pipeline },
          { key: EMBED_KIND, value: 'sync' },
        ],
        staticSummary: input.events
          ? `Deliver ${batch.sweep ? 'a TRUNCATE and ' : ''}${batch.keys.length} changed ${batch.keys.length === 1 ? 'row' : 'rows'} of ${batch.pipeline}`
          : batch.sweep
            ? `Sync ${batch.pipeline}: remove vectors of truncated rows`
            : `Sync ${batch.pipeline}: ${batch.keys.length} changed ${batch.keys.length === 1 ? 'row' : 'rows'}`,
      });
      this.deps.log.debug(
        { pipeline: batch.pipeline, batch: batch.workflowId, keys: batch.keys.length },
        'started sync',
      );
    } catch (err) {
      // Started by an earlier claim of these very rows that crashed before its commit.
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      throw err;
    }
  }
  private syncInput(batch: PlannedBatch, pipeline: Pipeline): SyncInput {
    const queueOf = (config: PipelineConfig): string =>
      embedTaskQueue(this.deps.taskQueue, config.embedding.provider);
    const targets: SyncTarget[] = [
      { generation: pipeline.generation, embedTaskQueue: queueOf(pipeline.config) },
    ];
    // While a re-embed builds the next generation, every change goes to its table too.
    if (
      pipeline.state === 'reembedding' &&
      pipeline.pendingConfig &&
      pipeline.pendingGeneration !== null
    ) {
      targets.push({
        generation: pipeline.pendingGeneration,
        embedTaskQueue: queueOf(pipeline.pendingConfig),
      });
    }
    return {
      pipeline: batch.pipeline,
      keys: batch.keys,
      sweep: batch.sweep,
      embedTaskQueue: queueOf(pipeline.config),
      targets,
      enqueuedAt: batch.enqueuedAt.toISOString(),
    };
  }

  // An events-only pipeline's batch goes straight to its sinks (decision 23).
  private eventsInput(batch: PlannedBatch, pipeline: EventsPipeline): SyncInput {
    return {
      pipeline: batch.pipeline,
      keys: batch.keys,
      sweep: batch.sweep,
      embedTaskQueue: '',
      events: { sinks: pipeline.config.sinks.length },
    };
  }

  private async run(): Promise<void> {
    let backoff = 0;
    let delay = this.options.fallbackIntervalMs;
    let emptyLooks = Infinity;
    const pace = {
      busyIntervalMs: this.options.busyIntervalMs,
      busyHoldMs: this.options.busyHoldMs,
      idleIntervalMs: this.options.fallbackIntervalMs,
    };
    let deadLettersCheckedAt = 0;
    let schemasCheckedAt = 0;
    let textsPrunedAt = 0;
    while (!this.stopped) {
      if (!this.listener) await this.listen();
      this.notified = false;
      if (Date.now() - schemasCheckedAt >= this.options.schemaCheckMs) {
        schemasCheckedAt = Date.now();
        await this.checkSchemas();
      }
      if (Date.now() - deadLettersCheckedAt >= this.options.deadLetterCheckMs) {
        deadLettersCheckedAt = Date.now();
        await this.retryDeadLetters();
      }
      if (Date.now() - textsPrunedAt >= this.options.textPruneMs) {
        textsPrunedAt = Date.now();
        await this.pruneTexts();
      }
      await this.readWal();
      let claimed: number;
      try {
        claimed = await this.pollOnce();
        backoff = 0;
      } catch (err) {
        backoff = Math.min(Math.max(backoff * 2, 500), 30_000);
        this.deps.log.warn(
          { err: (err as Error).message, retryInMs: backoff },
          'poll failed; the claimed changes stay in the outbox',
        );
        await this.sleep(backoff);
        continue;
      }
      // A full claim leaves more behind, and a NOTIFY says more is there: look again at once.
      emptyLooks = claimed > 0 ? 0 : emptyLooks + 1;
      delay = nextPollDelay(delay, claimed, pace, emptyLooks);
      if (claimed < this.options.claimLimit && !this.notified) await this.sleep(delay);
    }
  }

  /** WAL → outbox, before the claim that takes what it queued. */
  private async readWal(): Promise<void> {
    try {
      await this.walReader.readOnce();
    } catch (err) {
      // Said once a minute: a missing slot stays missing until an apply.
      if (Date.now() - this.walWarnedAt < 60_000) return;
      this.walWarnedAt = Date.now();
      this.deps.log.error(
        { err: (err as Error).message },
        'could not read the changes of logical capture; trying again',
      );
    }
  }

  private async retryDeadLetters(): Promise<void> {
    try {
      // Deliveries a sink refused, whose wait is over (decision 23).
      const sent = await redeliver(
        { pool: this.deps.pool, temporal: this.deps.temporal },
        { due: true },
      );
      if (sent.delivered + sent.failed > 0)
        this.deps.log.info(
          { delivered: sent.delivered, failed: sent.failed },
          'sent refused deliveries again (embedsync.failed_deliveries)',
        );
    } catch (err) {
      this.deps.log.warn(
        { err: (err as Error).message },
        'could not send the refused deliveries again; trying later',
      );
    }
    try {
      const requeued = await requeueFailedBatches(this.deps.pool, this.options.deadLetterRetry);
      for (const [pipeline, keys] of requeued)
        this.deps.log.info(
          { pipeline, keys },
          'sent the keys of failed batches round again (embedsync.dead_letters)',
        );
    } catch (err) {
      this.deps.log.warn(
        { err: (err as Error).message },
        'could not look at the dead letters; trying again later',
      );
    }
  }

  /** Texts past the retention go, a few thousand per statement so no delete holds many locks. */
  async pruneTexts(): Promise<number> {
    const limit = 5000;
    let pruned = 0;
    try {
      for (;;) {
        const n = await pruneTexts(this.deps.pool, this.options.textRetentionMs, limit);
        pruned += n;
        if (n < limit || this.stopped) break;
      }
      if (pruned > 0) this.deps.log.debug({ pruned }, 'pruned embedded texts past the retention');
    } catch (err) {
      this.deps.log.warn(
        { err: (err as Error).message },
        'could not prune the embedded texts; trying again later',
      );
    }
    return pruned;
  }

  private async checkSchemas(): Promise<void> {
    try {
      // Never waits on an apply: the changes of every other pipeline must keep flowing meanwhile.
      await checkSourceSchemas(this.deps.pool, { log: this.deps.log, wait: false });
    } catch (err) {
      const message = 'could not compare the source tables with the pipelines; trying again later';
      this.deps.log.warn({ err: (err as Error).message }, message);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.deps.sleep ? undefined : setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
      void this.deps.sleep?.(ms).then(done);
    });
  }

  private async listen(): Promise<void> {
    const listener = new pg.Client({
      connectionString: this.deps.databaseUrl,
      application_name: 'embedsync-poller-listen',
    });
    listener.on('notification', () => {
      this.notified = true;
      this.wake?.();
    });
    listener.on('error', (err) => {
      this.deps.log.warn(
        { err: err.message },
        'lost the LISTEN connection; polling every interval until it is back',
      );
      if (this.listener === listener) this.listener = undefined;
    });
    try {
      await listener.connect();
      await listener.query(`listen ${NOTIFY_CHANNEL}`);
      this.listener = listener;
    } catch (err) {
      this.deps.log.warn(
        { err: (err as Error).message },
        'cannot LISTEN yet; polling every interval',
      );
      await listener.end().catch(() => undefined);
    }
  }
}
