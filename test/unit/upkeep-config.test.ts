// The pipeline's `upkeep` config: durations as strings or seconds, validated with the field named;
// operational (no re-embed); and the schedules it asks for, decided from the config alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConfigError,
  embeddingFingerprint,
  parsePipelines,
  type PipelineInput,
} from '../../src/config/pipeline.js';
import { wantedSchedules } from '../../src/temporal/schedules.js';

const base: PipelineInput = {
  name: 'products',
  source: { table: 'products' },
  embed: { columns: ['name'] },
  embedding: { provider: 'offline', dimensions: 64 },
};
const parse = (upkeep: unknown, extra: Partial<PipelineInput> = {}) =>
  parsePipelines({ pipelines: [{ ...base, ...extra, upkeep }] })[0]!;

describe('upkeep config', () => {
  it('takes durations as strings or seconds, and turns them into schedule intervals', () => {
    const p = parse({ verifyEvery: '6h', requeue: true, reindexEvery: 7 * 86_400 });
    assert.deepEqual(
      wantedSchedules(p).map((w) => [w.id, w.everySeconds, w.input]),
      [
        ['verify:products', 21_600, { pipeline: 'products', verify: { requeue: true } }],
        ['reindex:products', 604_800, { pipeline: 'products', reindex: true }],
      ],
    );
    assert.deepEqual(
      wantedSchedules(parse({ verifyEvery: '30m' })).map((w) => w.everySeconds),
      [1800],
    );
  });

  it('asks for no schedule without upkeep', () => {
    assert.deepEqual(wantedSchedules(parsePipelines({ pipelines: [base] })[0]!), []);
  });

  it('is not part of what decides a vector', () => {
    assert.equal(
      embeddingFingerprint(parse({ verifyEvery: '6h' })),
      embeddingFingerprint(parsePipelines({ pipelines: [base] })[0]!),
    );
  });

  it('rejects what is not a duration, too short an interval, and settings that do nothing', () => {
    const rejects = (upkeep: unknown, field: string, message: RegExp, extra = {}) =>
      assert.throws(
        () => parse(upkeep, extra),
        (err: unknown) =>
          err instanceof ConfigError && err.field === field && message.test(err.message),
      );
    rejects({ verifyEvery: '6 hours' }, 'pipelines[0].upkeep.verifyEvery', /duration such as/);
    rejects({ verifyEvery: '10s' }, 'pipelines[0].upkeep.verifyEvery', /at least 60 seconds/);
    rejects({ reindexEvery: 5 }, 'pipelines[0].upkeep.reindexEvery', /at least 60 seconds/);
    rejects({ requeue: true }, 'pipelines[0].upkeep.requeue', /no upkeep.verifyEvery/);
    rejects({ every: '6h' }, 'pipelines[0].upkeep', /every/);
    rejects({ reindexEvery: '7d' }, 'pipelines[0].upkeep.reindexEvery', /destination.index: true/, {
      destination: { column: 'embedding' },
    });
  });
});
