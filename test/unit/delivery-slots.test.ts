// The bound on a worker's deliveries to sinks, shared by first attempts and the sinks' task queue.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliverySlots } from '../../src/sinks/slots.js';

describe('delivery slots', () => {
  it('gives a first attempt a slot only while one is free and nobody waits', async () => {
    const slots = new DeliverySlots(2);
    const a = slots.tryTake();
    const b = slots.tryTake();
    assert.ok(a && b);
    assert.equal(slots.tryTake(), undefined, 'all taken');
    assert.equal(slots.inUse, 2);

    // A queued delivery waits; a first attempt may not jump ahead of it when a slot comes free.
    let queuedGotIt = false;
    const queued = slots.take().then((release) => {
      queuedGotIt = true;
      return release;
    });
    assert.equal(slots.tryTake(), undefined, 'one waits');
    a();
    a(); // a second release does nothing
    const release = await queued;
    assert.ok(queuedGotIt);
    assert.equal(slots.inUse, 2, 'handed over, not freed');
    assert.equal(slots.tryTake(), undefined);
    release();
    b();
    assert.equal(slots.inUse, 0);
    assert.ok(slots.tryTake(), 'free again');
  });

  it('serves waiting deliveries in turn, and forgets one whose signal aborts', async () => {
    const slots = new DeliverySlots(1);
    const held = slots.tryTake();
    assert.ok(held);
    const order: string[] = [];
    const abort = new AbortController();
    const first = slots.take().then((r) => (order.push('first'), r));
    const gone = slots.take(abort.signal).then(
      () => order.push('gone'),
      (err: unknown) => (order.push('aborted'), err),
    );
    const third = slots.take().then((r) => (order.push('third'), r));
    abort.abort(new Error('cancelled'));
    assert.match(String(await gone), /cancelled/);
    held();
    (await first)();
    (await third)();
    assert.deepEqual(order, ['aborted', 'first', 'third']);
    assert.equal(slots.inUse, 0);
    // A signal aborted before the call: refused at once while the slot is taken, not queued.
    const taken = slots.tryTake();
    await assert.rejects(slots.take(AbortSignal.abort(new Error('already'))), /already/);
    taken?.();
    assert.equal(slots.inUse, 0);
  });

  it('refuses a bound below one', () => {
    assert.throws(() => new DeliverySlots(0), /at least 1/);
  });
});
