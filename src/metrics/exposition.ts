// Joining two Prometheus text expositions into one scrape: ours, then the Temporal SDK's.
// Pure, so it is tested without a server.

const familyOf = (line: string): string | undefined => {
  const comment = /^#\s+(?:HELP|TYPE)\s+(\S+)/.exec(line);
  if (comment) return comment[1];
  if (line.startsWith('#') || line.trim() === '') return undefined;
  return /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)?.[0];
};

/** Metric family names declared by an exposition's # TYPE lines. */
export function familyNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^#\s+TYPE\s+(\S+)/.exec(line);
    if (m?.[1]) names.add(m[1]);
  }
  return names;
}

/**
 * `extra` appended to `ours`. The text format allows each family once, so any family of `extra`
 * that `ours` already has is left out (with its samples), as is an OpenMetrics `# EOF`.
 */
export function appendExposition(ours: string, extra: string): { text: string; dropped: string[] } {
  const taken = familyNames(ours);
  const dropped = new Set<string>();
  const kept: string[] = [];
  let family: string | undefined;
  for (const line of extra.split('\n')) {
    if (line.startsWith('# EOF')) continue;
    const name = familyOf(line);
    // Samples of a histogram or summary (x_bucket, x_sum, x_count) follow their family's comments.
    if (line.startsWith('#') || family === undefined || !name?.startsWith(family))
      family = name ?? family;
    if (family !== undefined && taken.has(family)) {
      dropped.add(family);
      continue;
    }
    if (line.trim() !== '') kept.push(line);
  }
  const head = ours.endsWith('\n') || ours === '' ? ours : `${ours}\n`;
  return { text: kept.length === 0 ? head : `${head}${kept.join('\n')}\n`, dropped: [...dropped] };
}
