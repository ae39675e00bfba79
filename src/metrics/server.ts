// The /metrics endpoint of a worker or a poller: one scrape target per process. A worker's scrape
// also carries the Temporal SDK's own metrics, which the SDK serves on a loopback port of its own
// (src/worker/runtime.ts): fetched at each scrape and appended, families with our names left out.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { appendExposition } from './exposition.js';

export interface MetricsListen {
  host: string;
  /** 0: any free port (the server says which in `url`). */
  port: number;
}

export interface MetricsServer {
  /** http://host:port/metrics, with the port the server got. */
  url: string;
  close(): Promise<void>;
}

export interface MetricsSources {
  registry: Registry;
  /** Another process-local exporter's /metrics to append (the Temporal SDK's). */
  appendUrl?: string;
}

// Prometheus' own default scrape timeout is 10 s; the SDK answers from memory in milliseconds.
const APPEND_TIMEOUT_MS = 2000;

export async function serveMetrics(
  listen: MetricsListen,
  sources: MetricsSources,
  log: Logger,
): Promise<MetricsServer> {
  // The process's own (process_*, nodejs_*): CPU, memory, event loop lag. Only once served: they
  // watch the process from then on, which the many workers and pollers a test creates need not do.
  collectDefaultMetrics({ register: sources.registry });
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res
        .writeHead(req.method === 'GET' ? 404 : 405, { 'content-type': 'text/plain' })
        .end('metrics are at GET /metrics\n');
      return;
    }
    scrape(sources, log).then(
      (text) => res.writeHead(200, { 'content-type': sources.registry.contentType }).end(text),
      (err: unknown) => {
        log.warn({ err: (err as Error).message }, 'a /metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection must not hold the shutdown open.
        server.closeAllConnections();
      }),
  };
}

async function scrape(sources: MetricsSources, log: Logger): Promise<string> {
  const ours = await sources.registry.metrics();
  if (!sources.appendUrl) return ours;
  let extra: string;
  try {
    const res = await fetch(sources.appendUrl, { signal: AbortSignal.timeout(APPEND_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    extra = await res.text();
  } catch (err) {
    // Our own metrics are worth serving without the SDK's.
    const why = (err as Error).message;
    log.warn(
      { err: why, url: sources.appendUrl },
      "could not read the Temporal SDK's metrics for /metrics",
    );
    return ours;
  }
  const { text, dropped } = appendExposition(ours, extra);
  if (dropped.length > 0) {
    log.warn(
      { families: dropped },
      "left out Temporal SDK metrics whose names embedsync's own use",
    );
  }
  return text;
}
