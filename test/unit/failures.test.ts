// Recording a failed attempt is best effort: when the database cannot take the record (it may be
// the very failure), the attempt still fails with its own error, and the lost record is logged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { recordingFailures } from '../../activities/failures.js';
import type { Pool } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { OfflineProvider } from '../../src/providers/offline.js';

describe('recording failed attempts', () => {
  it("a database that is down is logged, and the attempt's own error goes on", async () => {
    const lines: string[] = [];
    const log = createLogger({ logLevel: 'warn', logFormat: 'json' }, 'test-failures', {
      write: (l: string) => void lines.push(l),
    });
    const pool = {
      query: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')),
    } as unknown as Pool;
    const providers = new Map([['offline', new OfflineProvider()]]);
    const { writeBatch } = recordingFailures(
      { pool, log, providers },
      {
        writeBatch: (input: { pipeline: string; batchId: string }) =>
          Promise.reject(new Error(`the write of ${input.batchId} failed`)),
      },
    );
    const env = new MockActivityEnvironment({ attempt: 3 });
    await assert.rejects(
      env.run(writeBatch, { pipeline: 'products', batchId: 'sync:products:1-ab' }),
      /the write of sync:products:1-ab failed/,
    );
    const logged = lines.map(
      (l) => JSON.parse(l) as { msg: string; stage?: string; err?: { message?: string } },
    );
    const lost = logged.find((l) => l.msg === 'could not record a failed attempt of a stage');
    assert.equal(lost?.stage, 'write');
    assert.match(lost?.err?.message ?? '', /ECONNREFUSED/);
  });
});
