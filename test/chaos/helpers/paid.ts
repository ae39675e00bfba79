// What a counting worker (counting-worker.ts) sent to the provider, read from its log: each text
// with the number of times it was paid for, and the paid ÷ distinct ratio the chaos tests report.
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeOnExit } from './processes.js';
import type { Scene } from './scene.js';

/** A fresh file for a counting worker's log, removed with the scene. */
export async function embedLogFile(scene: Scene, label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `embedsync-chaos-${label}-`));
  removeOnExit(dir);
  scene.onCleanup(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'embedded.jsonl');
}

/** Each text sent, with how many times. */
export function textsSent(embedLog: string): Map<string, number> {
  const sent = new Map<string, number>();
  for (const line of readFileSync(embedLog, 'utf8').split('\n')) {
    if (!line) continue;
    const text = JSON.parse(line) as string;
    sent.set(text, (sent.get(text) ?? 0) + 1);
  }
  return sent;
}

/** Texts paid for, distinct texts, and the line a test reports them in. */
export function paidPerDistinct(embedLog: string): {
  paid: number;
  distinct: number;
  report: string;
} {
  const sent = textsSent(embedLog);
  const paid = [...sent.values()].reduce((sum, n) => sum + n, 0);
  const distinct = sent.size;
  const ratio = distinct === 0 ? 1 : paid / distinct;
  return {
    paid,
    distinct,
    report: `paid ÷ distinct texts: ${ratio.toFixed(4)} (${paid} paid, ${distinct} distinct)`,
  };
}
