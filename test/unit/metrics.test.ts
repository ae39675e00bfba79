// The pure parts of the metrics: joining expositions, classifying request outcomes, and the
// /metrics server itself (no database: a registry of its own and a stand-in for the Temporal SDK's
// exporter).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { requestOutcome } from '../../activities/errors.js';
import { METRICS_DEFAULTS, readEnv } from '../../src/config/env.js';
import { createLogger } from '../../src/log.js';
import { appendExposition, familyNames } from '../../src/metrics/exposition.js';
import { serveMetrics } from '../../src/metrics/server.js';
import {
  InvalidInputError,
  ProviderAuthError,
  ProviderUnavailableError,
  QuotaExhaustedError,
  RateLimitedError,
} from '../../src/providers/errors.js';

const log = createLogger({ logLevel: 'silent', logFormat: 'json' });

const OURS = `# HELP embedsync_x_total x
# TYPE embedsync_x_total counter
embedsync_x_total{pipeline="a"} 1
`;

const SDK = `# HELP temporal_request Requests
# TYPE temporal_request counter
temporal_request{operation="Poll"} 3
# HELP embedsync_x_total a clash
# TYPE embedsync_x_total counter
embedsync_x_total 9
# HELP temporal_latency Latency
# TYPE temporal_latency histogram
temporal_latency_bucket{le="1"} 1
temporal_latency_bucket{le="+Inf"} 2
temporal_latency_sum 1.5
temporal_latency_count 2
# EOF
`;

describe('joining expositions', () => {
  it("appends the other exposition's families after ours", () => {
    const { text, dropped } = appendExposition(OURS, SDK);
    assert.deepEqual(dropped, ['embedsync_x_total']);
    assert.deepEqual(
      [...familyNames(text)],
      ['embedsync_x_total', 'temporal_request', 'temporal_latency'],
    );
    assert.match(text, /^temporal_latency_count 2$/m);
    assert.match(text, /^temporal_request\{operation="Poll"\} 3$/m);
  });

  it('leaves out a family ours already has, with its samples, and an OpenMetrics end marker', () => {
    const { text } = appendExposition(OURS, SDK);
    assert.doesNotMatch(text, /embedsync_x_total 9/);
    assert.doesNotMatch(text, /a clash/);
    assert.doesNotMatch(text, /# EOF/);
    assert.ok(text.endsWith('\n'));
  });

  it('is ours unchanged when the other is empty', () => {
    assert.equal(appendExposition(OURS, '').text, OURS);
  });
});

describe('provider request outcomes', () => {
  it('follow how the failure is retried', () => {
    assert.equal(requestOutcome(new RateLimitedError('openai', '429', 1000)), 'rate_limited');
    assert.equal(requestOutcome(new ProviderUnavailableError('openai', '503')), 'retryable');
    assert.equal(requestOutcome(new Error('socket hang up')), 'retryable');
    assert.equal(requestOutcome(new InvalidInputError('openai', 'bad input')), 'refused');
    assert.equal(requestOutcome(new ProviderAuthError('openai', '401')), 'refused');
    assert.equal(requestOutcome(new QuotaExhaustedError('openai', 'no quota')), 'refused');
  });
});

async function fakeExporter(body: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'text/plain' }).end(body),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return { url: `http://127.0.0.1:${port}/metrics`, close };
}

function registryWithCounter(): Registry {
  const registry = new Registry();
  const counter = new Counter({
    name: 'embedsync_x_total',
    help: 'x',
    labelNames: ['pipeline'],
    registers: [registry],
  });
  counter.inc({ pipeline: 'a' });
  return registry;
}

describe('the /metrics server', () => {
  it('listens on any free port when asked for port 0, and says which', async () => {
    const one = await serveMetrics(
      { host: '127.0.0.1', port: 0 },
      { registry: registryWithCounter() },
      log,
    );
    const two = await serveMetrics(
      { host: '127.0.0.1', port: 0 },
      { registry: registryWithCounter() },
      log,
    );
    try {
      assert.match(one.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      assert.notEqual(one.url, two.url);
      const text = await (await fetch(one.url)).text();
      assert.match(text, /^embedsync_x_total\{pipeline="a"\} 1$/m);
      assert.match(text, /^process_cpu_user_seconds_total /m);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it("appends the Temporal SDK's metrics, and serves its own when the SDK does not answer", async () => {
    const sdk = await fakeExporter(SDK);
    const sources = { registry: registryWithCounter(), appendUrl: sdk.url };
    const server = await serveMetrics({ host: '127.0.0.1', port: 0 }, sources, log);
    try {
      const text = await (await fetch(server.url)).text();
      assert.match(text, /^temporal_request\{operation="Poll"\} 3$/m);
      assert.doesNotMatch(text, /embedsync_x_total 9/);
      await sdk.close();
      const res = await fetch(server.url);
      assert.equal(res.status, 200);
      const alone = await res.text();
      assert.match(alone, /^embedsync_x_total\{pipeline="a"\} 1$/m);
      assert.doesNotMatch(alone, /temporal_request/);
    } finally {
      await server.close();
      await sdk.close().catch(() => undefined);
    }
  });

  it('refuses a port that is taken, with the error code the commands turn into one line', async () => {
    const first = await serveMetrics(
      { host: '127.0.0.1', port: 0 },
      { registry: new Registry() },
      log,
    );
    try {
      const port = Number(new URL(first.url).port);
      const second = serveMetrics({ host: '127.0.0.1', port }, { registry: new Registry() }, log);
      await assert.rejects(second, { code: 'EADDRINUSE' });
    } finally {
      await first.close();
    }
  });
});

describe('the metrics environment', () => {
  it('serves the worker on 9464 and the poller on 9465, on every interface, unless told otherwise', () => {
    assert.deepEqual(readEnv({}).metrics, { host: '0.0.0.0', workerPort: 9464, pollerPort: 9465 });
    assert.deepEqual(readEnv({}).metrics, { ...METRICS_DEFAULTS });
  });

  it('takes other ports and a host, and 0 for off', () => {
    const env = readEnv({
      EMBEDSYNC_WORKER_METRICS_PORT: '9470',
      EMBEDSYNC_POLLER_METRICS_PORT: '0',
      EMBEDSYNC_METRICS_HOST: '127.0.0.1',
    });
    assert.deepEqual(env.metrics, { host: '127.0.0.1', workerPort: 9470, pollerPort: 0 });
    assert.equal(
      readEnv({ EMBEDSYNC_WORKER_METRICS_PORT: '' }).metrics.workerPort,
      9464,
      'empty is unset, not off',
    );
  });

  it('names the variable of a port that is no port', () => {
    assert.throws(
      () => readEnv({ EMBEDSYNC_WORKER_METRICS_PORT: '70000' }),
      /EMBEDSYNC_WORKER_METRICS_PORT/,
    );
    assert.throws(
      () => readEnv({ EMBEDSYNC_POLLER_METRICS_PORT: 'nine' }),
      /EMBEDSYNC_POLLER_METRICS_PORT/,
    );
  });
});
