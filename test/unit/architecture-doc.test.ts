// docs/architecture.md names files, functions and numbered decisions; code comments cite the
// decisions. Both go stale silently when code moves, so they are checked here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../src/stack/paths.js';

const DOC = 'docs/architecture.md';
const doc = readFileSync(path.join(REPO_ROOT, DOC), 'utf8');
const tracked = execFileSync('git', ['ls-files'], { cwd: REPO_ROOT, encoding: 'utf8' })
  .split('\n')
  .filter(Boolean);
const sources = tracked.filter((f) => /\.(ts|js|sql)$/.test(f) && !f.startsWith('test/fixtures/'));

/** The numbers of the doc's decisions: the "N. **…**" items under "Decisions, and why". */
function decisionNumbers(): Set<number> {
  const section = doc.split('## Decisions, and why')[1]?.split('\n## ')[0] ?? '';
  return new Set([...section.matchAll(/^(\d+)\. \*\*/gm)].map((m) => Number(m[1])));
}

/** `src/…`, `activities/…`, `workflows/…`, `sql/…`, `test/…` paths in backticks. */
function namedPaths(): string[] {
  const paths = [
    ...doc.matchAll(/`((?:src|activities|workflows|sql|test|bench|docs)\/[^`*\s]+)`/g),
  ];
  return [...new Set(paths.map((m) => m[1] as string))];
}

describe('docs/architecture.md', () => {
  it('names only files that exist', () => {
    const missing = namedPaths().filter((p) => !existsSync(path.join(REPO_ROOT, p)));
    assert.deepEqual(missing, [], `${DOC} names files that are not in the repository`);
  });

  it('names only functions that exist in the files it puts them in', () => {
    // "`name` (`path`)" and "`name`, `path`" pairs: the function must be defined in that file.
    const pairs = [
      ...doc.matchAll(
        /`([a-zA-Z][\w.]*)`(?:\s*\(|,\s*)`((?:src|activities|workflows)\/[^`]+\.ts)`/g,
      ),
    ];
    assert.ok(pairs.length >= 15, `expected the life of one INSERT to name functions by file`);
    const wrong = pairs
      .map((m) => ({ name: (m[1] as string).split('.').pop() as string, file: m[2] as string }))
      .filter(({ name, file }) => {
        const full = path.join(REPO_ROOT, file);
        return existsSync(full) && !new RegExp(`\\b${name}\\b`).test(readFileSync(full, 'utf8'));
      })
      .map(({ name, file }) => `${name} in ${file}`);
    assert.deepEqual(wrong, []);
  });

  it('has every decision the code cites, and the code cites no other design document', () => {
    const numbers = decisionNumbers();
    assert.ok(numbers.size >= 10, `${DOC} lists its decisions`);
    const problems: string[] = [];
    for (const file of sources) {
      const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
      for (const m of text.matchAll(/architecture\.md, decision (\d+)/g)) {
        if (!numbers.has(Number(m[1]))) problems.push(`${file} cites decision ${m[1]}`);
      }
      if (/DESIGN(\.md| decision)/.test(text)) problems.push(`${file} cites DESIGN`);
    }
    assert.deepEqual(problems, []);
  });
});
