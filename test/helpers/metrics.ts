// Reading a worker's metrics in a test, without a server: the sum of a series over several
// registries.
import type { Registry } from 'prom-client';

/**
 * The sum of `series` (a metric, or a histogram's name_count / name_sum) whose labels include
 * `labels`.
 */
export async function seriesValue(
  registries: Registry[],
  series: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = series.replace(/_(count|sum|bucket)$/, '');
  let total = 0;
  for (const registry of registries) {
    const found = registry.getSingleMetric(series) ?? registry.getSingleMetric(metric);
    if (!found) continue;
    const { name: own, values } = await found.get();
    for (const v of values) {
      const name = (v as { metricName?: string }).metricName ?? own;
      if (name !== series) continue;
      if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
        total += v.value;
    }
  }
  return total;
}
