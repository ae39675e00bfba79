// Errors in log lines: the SDK's `error` field and our `err` both carry class, message and cause,
// and neither lets a secret or a driver's copy of the failing row through.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createLogger } from '../../src/log.js';

function logged(fields: Record<string, unknown>): Record<string, unknown> {
  const lines: string[] = [];
  const destination = { write: (l: string) => void lines.push(l) };
  const log = createLogger({ logLevel: 'info', logFormat: 'json' }, 'test-log', destination);
  log.warn(fields, 'Activity failed');
  assert.equal(lines.length, 1);
  return JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
}

describe('error log fields', () => {
  it("the SDK's error field carries class, message, failure type and cause", () => {
    const message = 'the provider returned 63-dimension vectors';
    const failure = ApplicationFailure.nonRetryable(message, 'DimensionMismatchError');
    const line = logged({ error: new Error('the batch failed', { cause: failure }) });
    const error = line.error as {
      type: string;
      message: string;
      stack?: string;
      cause: Record<string, unknown>;
    };
    assert.equal(error.type, 'Error');
    assert.equal(error.message, 'the batch failed');
    assert.match(error.stack ?? '', /the batch failed/);
    const { stack, ...cause } = error.cause;
    assert.match(String(stack), /^ApplicationFailure/);
    assert.deepEqual(cause, {
      type: 'ApplicationFailure',
      message,
      failureType: 'DimensionMismatchError',
      nonRetryable: true,
    });
  });

  it('err is serialised the same way, with the SQLSTATE of a database error', () => {
    const err = Object.assign(new Error('violates check constraint "c"'), {
      name: 'error',
      code: '23514',
    });
    const line = logged({ err });
    assert.equal((line.err as { message?: string }).message, 'violates check constraint "c"');
    assert.equal((line.err as { code?: string }).code, '23514');
  });

  it('secrets and the failing row stay out: fields of the error are not copied, redacted keys are censored', () => {
    const secret = 'sk-live-secret';
    const err = Object.assign(new Error('request refused'), {
      apiKey: secret,
      detail: 'Failing row contains (a text)',
    });
    const text = JSON.stringify(
      logged({ error: err, plain: { apiKey: secret }, authorization: `Bearer ${secret}` }),
    );
    assert.doesNotMatch(text, /sk-live-secret|Failing row/);
    assert.match(text, /request refused/);
    assert.match(text, /\[redacted\]/);
  });
});
