// Routes the Temporal SDK's own logs into our logger, so a worker writes one stream of one format.
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import type { Logger } from '../log.js';

let installed = false;

export function installTemporalRuntime(log: Logger): void {
  if (installed) return;
  installed = true;
  const sdk = log.child({ component: 'temporal' });
  const write = (entry: LogEntry): void => {
    const meta = entry.meta ?? {};
    // Embedding task queues have activities only, by design; the SDK warns about that.
    if (entry.message.startsWith('No workflows registered')) return;
    switch (entry.level) {
      case 'TRACE': sdk.trace(meta, entry.message); break;
      case 'DEBUG': sdk.debug(meta, entry.message); break;
      case 'INFO': sdk.debug(meta, entry.message); break; // worker state changes and the like: detail, not news
      case 'WARN': sdk.warn(meta, entry.message); break;
      case 'ERROR': sdk.error(meta, entry.message); break;
    }
  };
  Runtime.install({ logger: new DefaultLogger('INFO', write) });
}
