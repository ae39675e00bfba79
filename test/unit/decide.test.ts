import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  countActions,
  decideFetch,
  decideWrite,
  type CurrentRow,
  type EmbeddedHead,
  type FetchedRow,
  type StagedForWrite,
} from '../../src/batch/decide.js';

const fetched = (pk: string, hash: string, context = ''): FetchedRow => ({
  pk,
  document: `document of ${pk}`,
  context,
  contentHash: hash,
});
const heads = (entries: [string, string, number][]): Map<string, EmbeddedHead> =>
  new Map(entries.map(([pk, contentHash, generation]) => [pk, { contentHash, generation }]));

describe('what fetch stages for each key of a batch', () => {
  it('keeps a row whose content hash and generation match its vectors, without its texts', () => {
    const [row] = decideFetch(['1'], [fetched('1', 'h', 'ctx')], heads([['1', 'h', 3]]), 3);
    assert.deepEqual(row, {
      pk: '1',
      action: 'keep',
      document: null,
      context: null,
      contentHash: 'h',
    });
  });

  it('embeds a row whose content hash differs from its vectors', () => {
    const [row] = decideFetch(['1'], [fetched('1', 'new', 'ctx')], heads([['1', 'old', 3]]), 3);
    assert.deepEqual(row, {
      pk: '1',
      action: 'embed',
      document: 'document of 1',
      context: 'ctx',
      contentHash: 'new',
    });
  });

  it('embeds a row again when its vectors are of another generation, though its hash is the same', () => {
    const [row] = decideFetch(['1'], [fetched('1', 'h')], heads([['1', 'h', 2]]), 3);
    assert.equal(row?.action, 'embed');
  });

  it('embeds a row that has no vectors yet', () => {
    const [row] = decideFetch(['1'], [fetched('1', 'h')], heads([]), 3);
    assert.equal(row?.action, 'embed');
  });

  it('stages no context for a row with no repeated columns', () => {
    const [row] = decideFetch(['1'], [fetched('1', 'h', '')], heads([]), 3);
    assert.equal(row?.context, null);
  });

  it('deletes a key whose source row is gone, once however often it was asked for', () => {
    const staged = decideFetch(['1', '2', '2'], [fetched('1', 'h')], heads([['1', 'h', 3]]), 3);
    assert.deepEqual(staged[1], {
      pk: '2',
      action: 'delete',
      document: null,
      context: null,
      contentHash: null,
    });
    assert.equal(staged.length, 2);
  });

  it('counts the staged rows by action', () => {
    const staged = decideFetch(
      ['1', '2', '3', '4'],
      [fetched('1', 'h'), fetched('2', 'new'), fetched('3', 'h')],
      heads([
        ['1', 'h', 3],
        ['2', 'old', 3],
      ]),
      3,
    );
    assert.deepEqual(countActions(staged), { embed: 2, keep: 1, delete: 1 });
  });
});

const staged = (
  pk: string,
  action: StagedForWrite['action'],
  contentHash: string | null,
  generation = 3,
): StagedForWrite => ({ pk, action, contentHash, generation });
const current = (entries: [string, string, string?][]): Map<string, CurrentRow> =>
  new Map(entries.map(([pk, contentHash, metadata = '{}']) => [pk, { contentHash, metadata }]));

describe('what write does with each staged key (compare-and-set)', () => {
  it('replaces the vectors of an embedded row whose content is still what fetch saw', () => {
    const plan = decideWrite([staged('1', 'embed', 'h')], current([['1', 'h', '{"a":1}']]), 3);
    assert.deepEqual(plan.replace, [{ pk: '1', contentHash: 'h', metadata: '{"a":1}' }]);
    assert.deepEqual(plan.deleteVectors, ['1']);
    assert.equal(plan.stale, 0);
  });

  it('brings the metadata of a kept row up to date and leaves its vectors', () => {
    const plan = decideWrite([staged('1', 'keep', 'h')], current([['1', 'h', '{"a":2}']]), 3);
    assert.deepEqual(plan.keep, [{ pk: '1', metadata: '{"a":2}' }]);
    assert.deepEqual(plan.deleteVectors, []);
  });

  it('deletes the vectors of a key whose row is still gone', () => {
    const plan = decideWrite([staged('1', 'delete', null)], current([]), 3);
    assert.deepEqual(plan.remove, ['1']);
    assert.deepEqual(plan.deleteVectors, ['1']);
  });

  it('drops a row whose content changed since fetch', () => {
    const plan = decideWrite(
      [staged('1', 'embed', 'h'), staged('2', 'keep', 'h')],
      current([
        ['1', 'newer'],
        ['2', 'newer'],
      ]),
      3,
    );
    assert.equal(plan.stale, 2);
    assert.deepEqual([plan.replace, plan.keep, plan.deleteVectors], [[], [], []]);
  });

  it('drops a row that was deleted since fetch', () => {
    const plan = decideWrite([staged('1', 'embed', 'h')], current([]), 3);
    assert.equal(plan.stale, 1);
    assert.deepEqual(plan.deleteVectors, []);
  });

  it('drops a delete whose row has come back since fetch', () => {
    const plan = decideWrite([staged('1', 'delete', null)], current([['1', 'h']]), 3);
    assert.equal(plan.stale, 1);
    assert.deepEqual(plan.remove, []);
  });

  it('drops every key staged for a generation the pipeline has moved on from', () => {
    const plan = decideWrite(
      [staged('1', 'embed', 'h', 2), staged('2', 'keep', 'h', 2), staged('3', 'delete', null, 2)],
      current([
        ['1', 'h'],
        ['2', 'h'],
      ]),
      3,
    );
    assert.equal(plan.stale, 3);
    assert.deepEqual([plan.replace, plan.keep, plan.remove], [[], [], []]);
  });

  it('clears every letter of keys embedded or gone, and only batch failures of kept keys', () => {
    const plan = decideWrite(
      [staged('1', 'embed', 'h'), staged('2', 'delete', null), staged('3', 'keep', 'h')],
      current([
        ['1', 'h'],
        ['3', 'h'],
      ]),
      3,
    );
    assert.deepEqual(plan.clearLetters, { allOf: ['1', '2'], batchFailuresOf: ['3'] });
  });

  it('clears no letter of a key it dropped', () => {
    const plan = decideWrite([staged('1', 'embed', 'h')], current([['1', 'newer']]), 3);
    assert.deepEqual(plan.clearLetters, { allOf: [], batchFailuresOf: [] });
  });
});
