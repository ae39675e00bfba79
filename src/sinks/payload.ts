// What a sink receives and how a webhook's answer is read: pure, so the shape, the signature and
// the retry decision are tested without a network (docs/architecture.md, decision 23).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SinkConfig } from '../config/pipeline.js';
import type { Change } from '../db/deliveries.js';

/** One change as delivered: the key, its operation and, if the sink names columns, their values. */
export interface DeliveredChange extends Change {
  columns?: Record<string, unknown>;
}

/** The JSON body every sink gets: keys and operations, never a secret. */
export interface ChangeEvent {
  deliveryId: string;
  pipeline: string;
  generation: number;
  /** Present on a TRUNCATE's event: every row the sink knew of before it is gone. */
  truncated?: true;
  changes: DeliveredChange[];
}

export const SIGNATURE_HEADER = 'X-Embedsync-Signature';
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/** `sha256=<hex HMAC-SHA256 of the exact body bytes>`, as a receiver recomputes it. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A receiver's check, in constant time; exported for receivers written in TypeScript and tests. */
export function verifySignature(body: string, secret: string, header: string | undefined): boolean {
  const expected = Buffer.from(signBody(body, secret));
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** What a webhook's status means: sent, worth another try later (Temporal's backoff), or refused. */
export function webhookVerdict(status: number): 'delivered' | 'retry' | 'refused' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'refused';
}

// pg_notify takes payloads under 8000 bytes; a batch that does not fit is sent in parts, each a
// ChangeEvent of its own with `/<part>` on the delivery id.
export const NOTIFY_LIMIT = 7900;

/** The notify payloads of an event: one if it fits, else parts that each do. */
export function notifyPayloads(event: ChangeEvent): string[] {
  const whole = JSON.stringify(event);
  if (Buffer.byteLength(whole) <= NOTIFY_LIMIT || event.changes.length <= 1) return [whole];
  const parts: DeliveredChange[][] = [];
  let current: DeliveredChange[] = [];
  let size = 0;
  const overhead = Buffer.byteLength(JSON.stringify({ ...event, changes: [] })) + 16;
  for (const change of event.changes) {
    const n = Buffer.byteLength(JSON.stringify(change)) + 1;
    if (current.length > 0 && overhead + size + n > NOTIFY_LIMIT) {
      parts.push(current);
      current = [];
      size = 0;
    }
    current.push(change);
    size += n;
  }
  parts.push(current);
  return parts.map((changes, i) =>
    JSON.stringify({ ...event, deliveryId: `${event.deliveryId}/${i}`, changes }),
  );
}

/** The columns a sink asks for (notify carries none: its payload is small by design). */
export function sinkColumns(sink: SinkConfig): string[] {
  if ('webhook' in sink) return sink.webhook.columns ?? [];
  if ('workflow' in sink) return sink.workflow.columns ?? [];
  return [];
}

/** How status and logs name a sink: never its secret, never a URL's credentials or query. */
export function describeSink(sink: SinkConfig): string {
  if ('notify' in sink) return `notify ${sink.notify}`;
  if ('workflow' in sink) return `workflow ${sink.workflow.type} on ${sink.workflow.taskQueue}`;
  const url = new URL(sink.webhook.url);
  return `webhook ${url.origin}${url.pathname}`;
}
