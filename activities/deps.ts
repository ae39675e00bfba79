import type { Pool } from '../src/db/pool.js';
import type { DeliverySlots } from '../src/sinks/slots.js';
import type { Logger } from '../src/log.js';
import type { WorkerMetrics } from '../src/metrics/worker.js';
import type { RateObservations } from '../src/db/rate-observations.js';
import type { RatePlan } from '../src/rate-limit/index.js';
import type { ProviderRegistry } from '../src/providers/types.js';

export interface ActivityDeps {
  pool: Pool;
  providers: ProviderRegistry;
  log: Logger;
  /** The rate plan each provider's requests follow now; none: requests go unpaced. */
  rates?: {
    plan(provider: string): RatePlan | undefined;
    /** The provider's token count ÷ the estimate, learned from its answers (default 1). */
    tokenRatio?(provider: string, model: string): number;
    /** Takes in what an answer taught (src/rate-limit/observe.ts). */
    learn?(observed: RateObservations): void;
  };
  /** Where the activities count what they do (src/metrics/worker.ts); none: nothing is counted. */
  metrics?: Omit<WorkerMetrics, 'registry'>;
  /**
   * The most maintenance_work_mem an HNSW build after a walk may take, in bytes (0: the server's own
   * setting); default DEFAULT_INDEX_BUILD_MEMORY (src/capture/vector-index.ts).
   */
  indexBuildMemory?: number;
  /**
   * How long a batch holds the texts of a request it is embedding (src/db/embedded-texts.ts);
   * default TEXT_LEASE_MS. Tests shorten it.
   */
  textLeaseMs?: number;
  /**
   * The deliveries to sinks this worker runs at once, shared by the syncs' first attempts and the
   * sinks' task queue (src/sinks/slots.ts); none: DEFAULT_SINK_CONCURRENCY of its own.
   */
  deliverySlots?: DeliverySlots;
}
