import type { Pool } from '../src/db/pool.js';
import type { Logger } from '../src/log.js';
import type { ProviderRegistry } from '../src/providers/types.js';

export interface ActivityDeps {
  pool: Pool;
  providers: ProviderRegistry;
  log: Logger;
}
