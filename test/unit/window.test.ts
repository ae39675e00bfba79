// A walk's window of batches: batches finish in any order, and the cursor it may record never
// passes a batch still in flight, so a walk resumed from it skips no key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchWindow } from '../../workflows/window.js';

describe('the window of a walk', () => {
  it('records no cursor while the first batch is still in flight, whatever finished after it', () => {
    const w = new BatchWindow();
    const a = w.launch(['1', '2']);
    const b = w.launch(['3', '4']);
    w.finish(b);
    assert.deepEqual(w.finishedRun(), { cursor: null, batches: 0 });
    assert.equal(w.finishedRows, 2);
    assert.equal(w.inFlight, 1);
    w.finish(a);
    assert.deepEqual(w.finishedRun(), { cursor: '4', batches: 2 });
  });

  it('slides: a batch launched after one finished joins the run once it and those before it are done', () => {
    const w = new BatchWindow();
    const a = w.launch(['a']);
    const b = w.launch(['b']);
    w.finish(a);
    const c = w.launch(['c']); // the window slid: two in flight again
    assert.equal(w.inFlight, 2);
    assert.deepEqual(w.finishedRun(), { cursor: 'a', batches: 1 });
    w.finish(c);
    assert.deepEqual(w.finishedRun(), { cursor: 'a', batches: 1 });
    w.finish(b);
    assert.deepEqual(w.finishedRun(), { cursor: 'c', batches: 3 });
    assert.equal(w.finishedRows, 3);
  });

  it('counts a batch finished twice once, and refuses an empty batch', () => {
    const w = new BatchWindow();
    const a = w.launch(['x', 'y', 'z']);
    w.finish(a);
    w.finish(a);
    assert.equal(w.finishedRows, 3);
    assert.equal(w.inFlight, 0);
    assert.throws(() => w.launch([]));
  });
});
