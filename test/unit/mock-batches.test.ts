// The mock's Files and Batches APIs through the real openai client: a batch's life on the mock's
// clock, OpenAI's output and error lines, the enqueued-token limit, listing and cancelling.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';

let mock: MockProvider;
let client: OpenAI;
let now = 0;

before(async () => {
  mock = await startMockProvider({});
  client = new OpenAI({ apiKey: 'sk-test', baseURL: mock.openaiBaseURL, maxRetries: 0 });
});
after(async () => mock.close());
beforeEach(() => {
  mock.reset();
  now = 0;
  mock.options = { poisonMarker: 'POISON', batch: { completionMs: 1000, clock: () => now } };
});

interface OutputLine {
  custom_id: string;
  response: {
    status_code: number;
    body: { data?: { embedding: number[] }[]; error?: { message: string } };
  };
}

const line = (id: string, input: string[]) =>
  JSON.stringify({
    custom_id: id,
    method: 'POST',
    url: '/v1/embeddings',
    body: { model: 'text-embedding-3-small', input, dimensions: 4, encoding_format: 'float' },
  });

async function submit(lines: string[], metadata: Record<string, string> = {}) {
  const file = await client.files.create({
    file: await toFile(Buffer.from(`${lines.join('\n')}\n`), 'in.jsonl'),
    purpose: 'batch',
  });
  return client.batches.create({
    input_file_id: file.id,
    endpoint: '/v1/embeddings',
    completion_window: '24h',
    metadata,
  });
}

describe('mock provider: OpenAI Batch API', () => {
  it('moves a batch through its statuses once its delay has passed, and writes both files', async () => {
    const batch = await submit([line('a', ['one two', 'three']), line('b', ['has POISON'])]);
    assert.equal(batch.status, 'validating');
    assert.equal((await client.batches.retrieve(batch.id)).status, 'in_progress');
    assert.equal((await client.batches.retrieve(batch.id)).status, 'in_progress', 'not due yet');
    assert.deepEqual(mock.batches.paidInputs, [], 'nothing billed before it completes');
    now += 1000;
    assert.equal((await client.batches.retrieve(batch.id)).status, 'finalizing');
    const done = await client.batches.retrieve(batch.id);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 2, completed: 1, failed: 1 });
    const output = await (await client.files.content(done.output_file_id ?? '')).text();
    const [ok] = output
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as OutputLine);
    assert.equal(ok?.custom_id, 'a');
    assert.equal(ok?.response.status_code, 200);
    assert.equal(ok?.response.body.data?.length, 2);
    assert.equal(ok?.response.body.data?.[0]?.embedding.length, 4);
    const errors = await (await client.files.content(done.error_file_id ?? '')).text();
    const [bad] = errors
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as OutputLine);
    assert.equal(bad?.custom_id, 'b');
    assert.equal(bad?.response.status_code, 400);
    assert.deepEqual(mock.batches.paidInputs, ['one two', 'three']);
    assert.equal(mock.requests.filter((r) => r.batch === batch.id).length, 2);
    await client.files.delete(done.output_file_id ?? '');
    await assert.rejects(client.files.retrieve(done.output_file_id ?? ''), /404/);
  });

  it('fails a batch past the enqueued-token limit with token_limit_exceeded', async () => {
    mock.options.batch = { ...mock.options.batch, enqueuedTokenLimit: 5 };
    const first = await submit([line('a', ['one two three'])]);
    assert.equal(first.status, 'validating');
    const second = await submit([line('b', ['four five six'])]);
    assert.equal(second.status, 'failed');
    assert.equal(second.errors?.data?.[0]?.code, 'token_limit_exceeded');
  });

  it('lists batches newest first, page by page, with their metadata', async () => {
    for (let i = 0; i < 3; i += 1) await submit([line('a', [`text ${i}`])], { part: String(i) });
    const page = await client.batches.list({ limit: 2 });
    assert.deepEqual(
      page.data.map((b) => b.metadata?.part),
      ['2', '1'],
    );
    const all: string[] = [];
    for await (const b of client.batches.list({ limit: 2 })) all.push(b.metadata?.part ?? '');
    assert.deepEqual(all, ['2', '1', '0']);
  });

  it('cancels a batch in flight: cancelling, then cancelled, nothing billed', async () => {
    const batch = await submit([line('a', ['one'])]);
    const cancelling = await client.batches.cancel(batch.id);
    assert.equal(cancelling.status, 'cancelling');
    now += 5000;
    assert.equal((await client.batches.retrieve(batch.id)).status, 'cancelled');
    assert.deepEqual(mock.batches.paidInputs, []);
  });
});
