import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePipelines } from '../../src/config/pipeline.js';
import { captureStatus } from '../../src/status/capture.js';

const config = (capture?: 'trigger' | 'logical') =>
  parsePipelines({
    pipelines: [
      {
        name: 't',
        source: { table: 'public.t', ...(capture ? { capture } : {}) },
        embed: { columns: ['a'] },
        embedding: { provider: 'offline', dimensions: 8 },
      },
    ],
  })[0] ?? assert.fail('no config');

describe("status of a pipeline's capture", () => {
  it('is triggers by default', () => {
    assert.deepEqual(captureStatus(config(), undefined, 'embedsync_1'), { mode: 'trigger' });
  });

  it("shows a logical pipeline's slot and how much WAL it keeps", () => {
    const slot = { slot: 'embedsync_1', lagBytes: 4096, walStatus: 'reserved' };
    assert.deepEqual(captureStatus(config('logical'), slot, 'embedsync_1'), {
      mode: 'logical',
      slot: 'embedsync_1',
      lagBytes: 4096,
      walStatus: 'reserved',
    });
  });

  it('names a missing or lost slot as an error with the fix', () => {
    const missing = captureStatus(config('logical'), undefined, 'embedsync_1');
    assert.match(
      (missing as { error?: string }).error ?? '',
      /embedsync_1 does not exist.*apply.*backfill/,
    );
    const lost = captureStatus(
      config('logical'),
      { slot: 'embedsync_1', lagBytes: 9e9, walStatus: 'lost' },
      'embedsync_1',
    );
    assert.match(
      (lost as { error?: string }).error ?? '',
      /invalidated.*max_slot_wal_keep_size.*pg_drop_replication_slot\('embedsync_1'\).*backfill/,
    );
  });
});
