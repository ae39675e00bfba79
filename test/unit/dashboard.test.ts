// docs/grafana/embedsync.json is kept honest against the code: it charts every metric embedsync
// registers, and nothing embedsync does not register.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { Pool } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { createCatalogMetrics } from '../../src/metrics/catalog.js';
import { createWorkerMetrics } from '../../src/metrics/worker.js';

interface Target {
  expr?: string;
  datasource?: { uid?: string };
}
interface Panel {
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  __inputs?: { name: string; pluginId: string }[];
  panels: Panel[];
  templating: { list: { name: string; datasource?: { uid?: string }; definition?: string }[] };
}

const file = new URL('../../docs/grafana/embedsync.json', import.meta.url);
const dashboard = JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
const panels = dashboard.panels
  .flatMap((p) => [p, ...(p.panels ?? [])])
  .filter((p) => p.type !== 'row');
const queries = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')),
  ...dashboard.templating.list.map((v) => v.definition ?? ''),
];

function registeredMetrics(): Map<string, string> {
  const registry = new Registry();
  createWorkerMetrics(registry);
  // The catalog gauges touch the pool only when scraped.
  createCatalogMetrics(
    {} as Pool,
    createLogger({ logLevel: 'silent', logFormat: 'json' }),
    registry,
  );
  return new Map(registry.getMetricsAsArray().map((m) => [m.name, String(m.type)]));
}

/** The metric a series name belongs to: a histogram's _bucket, _sum and _count are its own. */
function metricOf(series: string, registered: Map<string, string>): string {
  const base = series.replace(/_(bucket|sum|count)$/, '');
  return base !== series && registered.get(base) === 'histogram' ? base : series;
}

describe('the Grafana dashboard', () => {
  const registered = registeredMetrics();
  const names = queries.flatMap((q) => [...q.matchAll(/\bembedsync_[a-z0-9_]+/g)].map((m) => m[0]));
  const used = new Set(names.map((name) => metricOf(name, registered)));

  it('queries only embedsync metrics the code registers', () => {
    const unknown = [...used].filter((name) => !registered.has(name));
    assert.deepEqual(unknown, []);
  });

  it('has a panel for every embedsync metric the code registers', () => {
    assert.ok(registered.size >= 10, `registered: ${[...registered.keys()].join(', ')}`);
    const missing = [...registered.keys()].filter((name) => !used.has(name));
    assert.deepEqual(missing, []);
  });

  it('asks for its Prometheus data source on import, and every panel uses it', () => {
    assert.deepEqual(
      dashboard.__inputs?.map((i) => [i.name, i.pluginId]),
      [['DS_PROMETHEUS', 'prometheus']],
    );
    for (const p of panels) {
      assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `panel "${p.title}"`);
      for (const t of p.targets ?? [])
        assert.equal(t.datasource?.uid, '${DS_PROMETHEUS}', `panel "${p.title}"`);
      assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has no query`);
    }
    for (const v of dashboard.templating.list) {
      assert.equal(v.datasource?.uid, '${DS_PROMETHEUS}', `variable ${v.name}`);
    }
  });

  it('takes rates of counters and quantiles of histograms, never their raw totals', () => {
    for (const q of queries) {
      for (const m of q.matchAll(/\b(embedsync_[a-z0-9_]+)/g)) {
        const name = metricOf(m[1] ?? '', registered);
        const type = registered.get(name);
        if (type === 'counter') assert.match(q, new RegExp(`(rate|increase)\\(${name}\\b`), q);
        if (type === 'histogram')
          assert.match(q, new RegExp(`histogram_quantile\\(.*rate\\(${name}_bucket\\b`), q);
      }
    }
  });
});
