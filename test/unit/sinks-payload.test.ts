import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  describeSink,
  NOTIFY_LIMIT,
  notifyPayloads,
  signBody,
  verifySignature,
  webhookVerdict,
  type ChangeEvent,
} from '../../src/sinks/payload.js';

const event = (n: number): ChangeEvent => ({
  deliveryId: 'sync:products:7-abc/0',
  pipeline: 'products',
  generation: 3,
  changes: Array.from({ length: n }, (_, i) => ({
    key: String(100_000 + i),
    operation: i % 2 === 0 ? ('upsert' as const) : ('delete' as const),
  })),
});

describe('sink payloads', () => {
  it('signs the exact body with HMAC-SHA256, as a receiver recomputes it', () => {
    const body = JSON.stringify(event(2));
    const hex = createHmac('sha256', 'k').update(body).digest('hex');
    assert.equal(signBody(body, 'k'), `sha256=${hex}`);
    assert.ok(verifySignature(body, 'k', `sha256=${hex}`));
    assert.ok(!verifySignature(`${body} `, 'k', `sha256=${hex}`));
    assert.ok(!verifySignature(body, 'other', `sha256=${hex}`));
    assert.ok(!verifySignature(body, 'k', undefined));
  });

  it('delivered on 2xx, retried on 5xx, 408 and 429, refused on any other 4xx', () => {
    assert.deepEqual(
      [200, 204, 301, 400, 401, 404, 408, 410, 422, 429, 500, 503].map(webhookVerdict),
      [
        'delivered',
        'delivered',
        'refused',
        'refused',
        'refused',
        'refused',
        'retry',
        'refused',
        'refused',
        'retry',
        'retry',
        'retry',
      ],
    );
  });

  it('a notify that fits is one payload; a larger batch is cut into parts that each fit, in order', () => {
    assert.deepEqual(notifyPayloads(event(3)), [JSON.stringify(event(3))]);
    const big = event(2000);
    const parts = notifyPayloads(big).map((p) => JSON.parse(p) as ChangeEvent);
    assert.ok(parts.length > 1);
    for (const p of notifyPayloads(big)) assert.ok(Buffer.byteLength(p) <= NOTIFY_LIMIT);
    assert.deepEqual(
      parts.map((p) => p.deliveryId),
      parts.map((_, i) => `sync:products:7-abc/0/${i}`),
    );
    assert.deepEqual(
      parts.flatMap((p) => p.changes),
      big.changes,
    );
  });

  it('names a webhook by origin and path only: no credentials or query', () => {
    const url = 'https://user:pw@hooks.example.com/in?token=abc';
    assert.equal(
      describeSink({ webhook: { url, secretEnv: 'S' } }),
      'webhook https://hooks.example.com/in',
    );
  });
});
