// Routes the Temporal SDK's own logs into our logger, so a worker writes one stream of one format,
// and (when the worker serves /metrics) has the SDK export its worker metrics on a loopback port,
// which the worker's /metrics appends (src/metrics/server.ts): operators scrape one target per
// process.
import net from 'node:net';
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import type { Logger } from '../log.js';

let installed = false;
let sdkMetricsUrl: string | undefined;

export interface TemporalRuntimeOptions {
  /** Have the SDK export its metrics (temporal_*), for the worker's /metrics to append. */
  metrics?: boolean;
}

/** Installs the SDK's process-wide runtime once; later calls change nothing. */
export async function installTemporalRuntime(
  log: Logger,
  options: TemporalRuntimeOptions = {},
): Promise<void> {
  if (installed) {
    if (options.metrics && !sdkMetricsUrl) {
      log.warn('the Temporal SDK runtime was installed without metrics; /metrics will lack them');
    }
    return;
  }
  installed = true;
  const sdk = log.child({ component: 'temporal' });
  const write = (entry: LogEntry): void => {
    const meta = entry.meta ?? {};
    // Embedding task queues have activities only, by design; the SDK warns about that.
    if (entry.message.startsWith('No workflows registered')) return;
    switch (entry.level) {
      case 'TRACE':
        sdk.trace(meta, entry.message);
        break;
      case 'DEBUG':
        sdk.debug(meta, entry.message);
        break;
      case 'INFO':
        sdk.debug(meta, entry.message);
        break; // worker state changes and the like: detail, not news
      case 'WARN':
        sdk.warn(meta, entry.message);
        break;
      case 'ERROR':
        sdk.error(meta, entry.message);
        break;
    }
  };
  // The SDK cannot say which port it bound, so it is given one that was free a moment ago; loopback
  // only, as nothing but this process's /metrics reads it.
  const port = options.metrics ? await freeLoopbackPort() : undefined;
  Runtime.install({
    logger: new DefaultLogger('INFO', write),
    ...(port === undefined
      ? {}
      : {
          telemetryOptions: {
            metrics: {
              prometheus: { bindAddress: `127.0.0.1:${port}`, useSecondsForDurations: true },
            },
          },
        }),
  });
  if (port !== undefined) sdkMetricsUrl = `http://127.0.0.1:${port}/metrics`;
}

/** Where the SDK serves its metrics in this process, if it was asked to. */
export const temporalSdkMetricsUrl = (): string | undefined => sdkMetricsUrl;

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
