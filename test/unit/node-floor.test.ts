// The launcher and the test runner refuse a Node older than package.json's engines.node, before
// anything else loads; both ask bin/node-floor.js.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { belowNodeFloor, NODE_FLOOR } from '../../bin/node-floor.js';

describe('the Node.js floor', () => {
  it("is package.json's engines.node", () => {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      engines: { node: string };
    };
    assert.equal(`>=${NODE_FLOOR}`, pkg.engines.node.replace(/\s/g, ''));
  });

  it('refuses older majors and minors, and takes the floor itself and anything later', () => {
    const [major = 0, minor = 0] = NODE_FLOOR.split('.').map(Number);
    assert.equal(belowNodeFloor(`${major - 2}.20.2`), true);
    assert.equal(belowNodeFloor(`${major}.${minor - 1}.9`), true);
    assert.equal(belowNodeFloor(`${major}.${minor}.0`), false);
    assert.equal(belowNodeFloor(`${major + 2}.0.0`), false);
    assert.equal(
      belowNodeFloor(),
      false,
      'the tests themselves run on a Node at or above the floor',
    );
  });
});
