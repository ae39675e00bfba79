// Waiting for Ctrl-C while a command stops (src/cli/stop-signals.ts): the same Ctrl-C delivered
// twice (by the terminal and by npm) does not end the process before it has stopped what it
// started; a deliberate repeat is answered, one more exits; done() lets the signals go.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { ECHO_MS, stopSignals } from '../../src/cli/stop-signals.js';

function harness() {
  const source = new EventEmitter();
  let clock = 0;
  const said: string[] = [];
  const exits: number[] = [];
  const signals = stopSignals({
    repeatNote: 'still stopping',
    say: (line) => said.push(line),
    now: () => clock,
    exit: (code) => void exits.push(code),
    source,
  });
  let resolved = 0;
  void signals.stopped.then(() => (resolved += 1));
  const tick = () => new Promise((r) => setImmediate(r));
  return {
    source,
    signals,
    said,
    exits,
    resolved: () => resolved,
    tick,
    advance: (ms: number) => (clock += ms),
  };
}

describe('stop signals', () => {
  it('resolves at the first SIGINT and takes the same Ctrl-C echoed by npm for nothing', async () => {
    const h = harness();
    await h.tick();
    assert.equal(h.resolved(), 0);
    h.source.emit('SIGINT');
    h.advance(ECHO_MS - 1);
    h.source.emit('SIGINT');
    await h.tick();
    assert.equal(h.resolved(), 1);
    assert.deepEqual(h.said, []);
    assert.deepEqual(h.exits, []);
    h.signals.done();
  });

  it('answers a deliberate repeat while stopping, and exits 130 at the next', async () => {
    const h = harness();
    h.source.emit('SIGTERM');
    h.advance(ECHO_MS);
    h.source.emit('SIGINT');
    assert.deepEqual(h.said, ['still stopping']);
    assert.deepEqual(h.exits, []);
    h.advance(10);
    h.source.emit('SIGINT');
    assert.deepEqual(h.exits, [130]);
    await h.tick();
    assert.equal(h.resolved(), 1);
    h.signals.done();
  });

  it('lets the signals go once stopped', () => {
    const h = harness();
    assert.equal(h.source.listenerCount('SIGINT'), 1);
    assert.equal(h.source.listenerCount('SIGTERM'), 1);
    h.signals.done();
    assert.equal(h.source.listenerCount('SIGINT'), 0);
    assert.equal(h.source.listenerCount('SIGTERM'), 0);
  });
});
