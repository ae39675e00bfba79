// The mock provider on the wire: the bodies and headers real clients depend on.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { formatReset, TokenBucket } from '../../src/mock-provider/limits.js';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';

let mock: MockProvider;
before(async () => {
  mock = await startMockProvider({});
});
after(async () => mock.close());
beforeEach(() => {
  mock.reset();
  mock.options = {};
});

const openai = (body: unknown, key = 'sk-any') =>
  fetch(`${mock.openaiBaseURL}/embeddings`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('mock provider: OpenAI', () => {
  it('answers with the list shape, usage and rate-limit headers', async () => {
    mock.options.requestsPerMinute = 60;
    const res = await openai({
      model: 'text-embedding-3-small',
      input: ['hello world'],
      encoding_format: 'float',
      dimensions: 8,
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      object: string;
      data: { index: number; embedding: number[] }[];
      usage: { prompt_tokens: number };
    };
    assert.equal(body.object, 'list');
    assert.equal(body.data[0]?.embedding.length, 8);
    assert.equal(body.usage.prompt_tokens, 2);
    assert.equal(res.headers.get('x-ratelimit-limit-requests'), '60');
    assert.equal(res.headers.get('x-ratelimit-remaining-requests'), '59');
  });

  it('counts tokens as bytes/4 when told, for usage and for its budget alike', async () => {
    mock.options.tokenCounting = 'bytes/4';
    mock.options.tokensPerMinute = 100;
    const res = await openai({
      model: 'text-embedding-3-small',
      input: ['hello world', 'é'], // 11 bytes and 2: 3 + 1
      encoding_format: 'float',
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: { prompt_tokens: number } };
    assert.equal(body.usage.prompt_tokens, 4);
    assert.equal(res.headers.get('x-ratelimit-remaining-tokens'), '96');
  });

  it('answers 429 with the real body and a retry hint when a bucket runs dry', async () => {
    mock.options.tokensPerMinute = 10;
    assert.equal(
      (
        await openai({
          model: 'text-embedding-3-small',
          input: 'one two three four five six seven eight',
          encoding_format: 'float',
        })
      ).status,
      200,
    );
    const res = await openai({
      model: 'text-embedding-3-small',
      input: 'one two three four five six seven eight',
      encoding_format: 'float',
    });
    assert.equal(res.status, 429);
    const body = (await res.json()) as { error: { type: string; code: string; message: string } };
    assert.equal(body.error.code, 'rate_limit_exceeded');
    assert.equal(body.error.type, 'tokens');
    assert.match(
      body.error.message,
      /^Rate limit reached for text-embedding-3-small .* on tokens per min \(TPM\)/,
    );
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal(res.headers.get('x-ratelimit-remaining-tokens'), '2');
  });

  it('refuses what OpenAI refuses', async () => {
    assert.equal(
      (await openai({ model: 'text-embedding-ada-002', input: 'a', dimensions: 8 })).status,
      400,
    );
    assert.equal((await openai({ model: 'text-embedding-3-small', input: '' })).status, 400);
    assert.equal(
      (await openai({ model: 'text-embedding-3-small', input: 'word '.repeat(9000) })).status,
      400,
    );
    assert.equal((await openai({ model: 'no-such-model', input: 'a' })).status, 404);
    const unauthorised = await fetch(`${mock.openaiBaseURL}/embeddings`, {
      method: 'POST',
      body: '{}',
    });
    assert.equal(unauthorised.status, 401);
  });

  it('masks a wrong key the way OpenAI does, unless told to echo it', async () => {
    mock.options.apiKey = 'sk-right-0000000000';
    const masked = (await (
      await openai({ model: 'text-embedding-3-small', input: 'a' }, 'sk-wrong-1234567890')
    ).json()) as { error: { message: string; code: string } };
    assert.equal(masked.error.code, 'invalid_api_key');
    assert.ok(!masked.error.message.includes('sk-wrong-1234567890'));
    mock.options.echoKeyInErrors = true;
    const echoed = (await (
      await openai({ model: 'text-embedding-3-small', input: 'a' }, 'sk-wrong-1234567890')
    ).json()) as { error: { message: string } };
    assert.ok(echoed.error.message.includes('sk-wrong-1234567890'));
  });

  it('serves the extra models a compatible server would', async () => {
    mock.options.models = { 'nomic-embed-text': 768 };
    const body = (await (
      await openai({ model: 'nomic-embed-text', input: 'a', encoding_format: 'float' })
    ).json()) as { data: { embedding: number[] }[] };
    assert.equal(body.data[0]?.embedding.length, 768);
  });
});

describe('mock provider: Bedrock', () => {
  it('requires a SigV4 Authorization header and names errors in x-amzn-ErrorType', async () => {
    const res = await fetch(
      `${mock.url}/model/${encodeURIComponent('amazon.titan-embed-text-v2:0')}/invoke`,
      { method: 'POST', body: JSON.stringify({ inputText: 'a' }) },
    );
    assert.equal(res.status, 403);
    assert.match(res.headers.get('x-amzn-errortype') ?? '', /^MissingAuthenticationTokenException/);
    const forged = await fetch(`${mock.url}/model/amazon.titan-embed-text-v1/invoke`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope', 'x-amz-date': '20260101T000000Z' },
      body: '{}',
    });
    assert.match(forged.headers.get('x-amzn-errortype') ?? '', /^UnrecognizedClientException/);
  });
});

describe('mock provider: budgets', () => {
  it('refills a bucket continuously over a minute', () => {
    let now = 0;
    const bucket = new TokenBucket(60, () => now);
    bucket.take(60);
    assert.equal(bucket.waitFor(1), 1000);
    now = 500;
    assert.equal(bucket.remaining(), 0);
    now = 30_000;
    assert.equal(bucket.remaining(), 30);
    assert.equal(bucket.untilFull(), 30_000);
  });

  it('formats resets as OpenAI does', () => {
    assert.equal(formatReset(17), '17ms');
    assert.equal(formatReset(1500), '1.5s');
    assert.equal(formatReset(360_000), '6m0s');
  });
});
