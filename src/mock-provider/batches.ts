// OpenAI's Files and Batches APIs as the real service answers them, for batch-mode backfills:
//   POST /v1/files (multipart, purpose=batch), GET /v1/files/{id}, GET /v1/files/{id}/content,
//   DELETE /v1/files/{id}, POST /v1/batches, GET /v1/batches, GET /v1/batches/{id},
//   POST /v1/batches/{id}/cancel.
// A batch moves validating → in_progress → finalizing → completed as it is read, once its
// completion delay has passed on the mock's batch clock (an option, so tests need not wait). Each
// line is answered as POST /v1/embeddings would answer it (handleOpenAI), so a poisoned input fails
// its line into the error file; an account's enqueued-token limit fails a batch created beyond it
// with token_limit_exceeded, as OpenAI does.
import { randomBytes } from 'node:crypto';
import { countTokens } from '../chunking/tokens.js';
import { authorize, error, handleOpenAI } from './openai.js';
import type { MockContext, MockReply } from './types.js';

/** The most inputs OpenAI takes across one /v1/embeddings batch file. */
const MAX_BATCH_INPUTS = 50_000;

interface StoredFile {
  id: string;
  filename: string;
  purpose: string;
  created_at: number;
  content: string;
}

type BatchStatus =
  | 'validating'
  | 'failed'
  | 'in_progress'
  | 'finalizing'
  | 'completed'
  | 'expired'
  | 'cancelling'
  | 'cancelled';

interface BatchLine {
  custom_id: string;
  body: Record<string, unknown>;
}

interface StoredBatch {
  id: string;
  object: 'batch';
  endpoint: string;
  errors: {
    object: 'list';
    data: { code: string; message: string; param: null; line: null }[];
  } | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
  model: string;
}

interface BatchState {
  batch: StoredBatch;
  lines: BatchLine[];
  tokens: number;
  createdMs: number;
  authorization: string | undefined;
}

/** What the server's router hands over: the raw body, to parse as JSON or multipart. */
export interface BatchApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A reply whose body is sent as is (a file's content) rather than as JSON. */
export type BatchApiReply = MockReply & { raw?: string };

const newId = (prefix: string): string => `${prefix}${randomBytes(12).toString('hex')}`;

export class MockBatches {
  private readonly files = new Map<string, StoredFile>();
  private readonly batches = new Map<string, BatchState>();

  /** Every batch created, in order (for tests: how many were, and with what metadata). */
  get created(): StoredBatch[] {
    return [...this.batches.values()].map((b) => b.batch);
  }

  /** Inputs embedded by completed batches: each counts once, as the provider bills it. */
  readonly paidInputs: string[] = [];

  reset(): void {
    this.files.clear();
    this.batches.clear();
    this.paidInputs.length = 0;
  }

  static handles(path: string): boolean {
    return /^\/v1\/(files|batches)(\/|$)/.test(path);
  }

  async handle(ctx: MockContext, req: BatchApiRequest): Promise<BatchApiReply> {
    const authorization = header(req.headers, 'authorization');
    const denied = authorize(ctx, authorization);
    if (denied) return denied;
    const parts = req.path.split('/').slice(2); // ['files' | 'batches', id?, 'content' | 'cancel'?]
    const [kind, id, action] = parts;
    if (kind === 'files') {
      if (req.method === 'POST' && !id) return this.upload(ctx, req);
      const file = id ? this.files.get(id) : undefined;
      if (!file) return notFound(`No such File object: ${id ?? ''}`);
      if (req.method === 'GET' && action === 'content')
        return {
          status: 200,
          headers: { 'content-type': 'application/octet-stream' },
          body: null,
          raw: file.content,
        };
      if (req.method === 'GET' && !action) return { status: 200, body: fileObject(file) };
      if (req.method === 'DELETE' && !action) {
        this.files.delete(file.id);
        return { status: 200, body: { id: file.id, object: 'file', deleted: true } };
      }
    }
    if (kind === 'batches') {
      if (req.method === 'POST' && !id) return this.create(ctx, req, authorization);
      if (req.method === 'GET' && !id) return this.list(ctx, req.query);
      const state = id ? this.batches.get(id) : undefined;
      if (!state) return notFound(`No batch found with id '${id ?? ''}'.`);
      if (req.method === 'GET' && !action) return { status: 200, body: this.advance(ctx, state) };
      if (req.method === 'POST' && action === 'cancel') return this.cancel(ctx, state);
    }
    return notFound(`Invalid URL (${req.method} ${req.path})`);
  }

  private async upload(ctx: MockContext, req: BatchApiRequest): Promise<BatchApiReply> {
    const type = header(req.headers, 'content-type') ?? '';
    if (!type.startsWith('multipart/form-data'))
      return invalid('Expected a multipart/form-data body with a file and a purpose.');
    const form = await new Request('http://mock/v1/files', {
      method: 'POST',
      headers: { 'content-type': type },
      body: new Uint8Array(req.body),
    }).formData();
    const file = form.get('file');
    const purpose = form.get('purpose');
    if (!(file instanceof File)) return invalid("Missing required parameter: 'file'.");
    if (typeof purpose !== 'string') return invalid("Missing required parameter: 'purpose'.");
    const stored: StoredFile = {
      id: newId('file-'),
      filename: file.name,
      purpose,
      created_at: seconds(ctx),
      content: await file.text(),
    };
    this.files.set(stored.id, stored);
    return { status: 200, body: fileObject(stored) };
  }

  private create(
    ctx: MockContext,
    req: BatchApiRequest,
    authorization: string | undefined,
  ): BatchApiReply {
    const body = JSON.parse(req.body.toString('utf8') || '{}') as Record<string, unknown>;
    const { input_file_id: fileId, endpoint, completion_window: window, metadata } = body;
    if (endpoint !== '/v1/embeddings' && endpoint !== '/v1/chat/completions')
      return invalid(`Invalid value for 'endpoint': ${JSON.stringify(endpoint)}.`);
    if (window !== '24h') return invalid("Invalid value for 'completion_window': expected '24h'.");
    const file = typeof fileId === 'string' ? this.files.get(fileId) : undefined;
    if (!file) return invalid(`File with id '${String(fileId)}' not found.`);
    if (file.purpose !== 'batch')
      return invalid(`File ${file.id} has purpose '${file.purpose}', expected 'batch'.`);
    let lines: BatchLine[];
    try {
      lines = file.content
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as BatchLine & { url?: string });
    } catch {
      return invalid(`File ${file.id} is not valid JSONL.`);
    }
    const inputs = lines.flatMap((l) => inputsOf(l.body));
    const model = typeof lines[0]?.body.model === 'string' ? lines[0].body.model : '';
    const now = seconds(ctx);
    const batch: StoredBatch = {
      id: newId('batch_'),
      object: 'batch',
      endpoint: endpoint,
      errors: null,
      input_file_id: file.id,
      completion_window: window,
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: now,
      in_progress_at: null,
      expires_at: now + 24 * 3600,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: lines.length, completed: 0, failed: 0 },
      metadata: (metadata as Record<string, string> | undefined) ?? null,
      model,
    };
    const tokens = inputs.reduce((sum, t) => sum + countTokens(t), 0);
    const state: BatchState = {
      batch,
      lines,
      tokens,
      createdMs: clock(ctx),
      authorization,
    };
    // Validation happens at creation; its failures show on the batch, not as an HTTP error.
    const limit = ctx.options.batch?.enqueuedTokenLimit;
    const enqueued = [...this.batches.values()]
      .filter((b) => b.batch.model === model && isEnqueued(b.batch.status))
      .reduce((sum, b) => sum + b.tokens, 0);
    if (inputs.length > MAX_BATCH_INPUTS)
      fail(
        batch,
        now,
        'too_many_inputs',
        `A /v1/embeddings batch takes at most ${MAX_BATCH_INPUTS} inputs; this file has ${inputs.length}.`,
      );
    else if (limit !== undefined && enqueued + tokens > limit)
      fail(
        batch,
        now,
        'token_limit_exceeded',
        `Enqueued token limit reached for ${model} in organization org-mock. Limit: ${limit} enqueued tokens. Please try again once some in_progress batches have been completed.`,
      );
    this.batches.set(batch.id, state);
    const lose = ctx.options.batch?.loseCreateReplies ?? 0;
    if (lose > 0 && ctx.options.batch) {
      ctx.options.batch.loseCreateReplies = lose - 1;
      return error(
        500,
        'The server had an error while processing your request.',
        'server_error',
        null,
      );
    }
    return { status: 200, body: batch };
  }

  private list(ctx: MockContext, query: URLSearchParams): BatchApiReply {
    // Newest first, as OpenAI lists them; `after` is the last id of the previous page.
    const all = [...this.batches.values()].reverse().map((s) => this.advance(ctx, s));
    const after = query.get('after');
    const start = after ? all.findIndex((b) => b.id === after) + 1 : 0;
    const limit = Math.min(100, Number(query.get('limit') ?? 20) || 20);
    const data = all.slice(start, start + limit);
    return {
      status: 200,
      body: {
        object: 'list',
        data,
        first_id: data[0]?.id ?? null,
        last_id: data[data.length - 1]?.id ?? null,
        has_more: start + limit < all.length,
      },
    };
  }

  private cancel(ctx: MockContext, state: BatchState): BatchApiReply {
    const batch = this.advance(ctx, state);
    if (batch.status === 'validating' || batch.status === 'in_progress') {
      batch.status = 'cancelling';
      batch.cancelling_at = seconds(ctx);
    } else if (batch.status !== 'cancelling') {
      return error(
        409,
        `Cannot cancel a batch with status '${batch.status}'.`,
        'invalid_request_error',
        null,
      );
    }
    return { status: 200, body: batch };
  }

  /** One step of the batch's life per read, once its time has come. */
  private advance(ctx: MockContext, state: BatchState): StoredBatch {
    const { batch } = state;
    const now = seconds(ctx);
    const due = clock(ctx) - state.createdMs >= (ctx.options.batch?.completionMs ?? 0);
    if (batch.status === 'validating') {
      batch.status = 'in_progress';
      batch.in_progress_at = now;
    } else if (batch.status === 'in_progress' && due) {
      batch.status = 'finalizing';
      batch.finalizing_at = now;
    } else if (batch.status === 'finalizing') {
      const expired = this.complete(ctx, state);
      batch.status = expired ? 'expired' : 'completed';
      if (expired) batch.expired_at = now;
      else batch.completed_at = now;
    } else if (batch.status === 'cancelling') {
      // Cancelled before any line ran: nothing to bill, no output.
      batch.status = 'cancelled';
      batch.cancelled_at = now;
    }
    return batch;
  }

  /**
   * Runs every line as POST /v1/embeddings would answer it, and writes the output files. Returns
   * whether the batch's window ran out first (expireAfterLines): the lines after it did not run.
   */
  private complete(ctx: MockContext, state: BatchState): boolean {
    const { batch } = state;
    const output: string[] = [];
    const errors: string[] = [];
    const lineCtx: MockContext = {
      options: ctx.options,
      takeFault: () => undefined,
      // Batch requests do not count against the per-minute limits.
      charge: () => ({ ok: true, headers: {} }),
      record: (r) => ctx.record({ ...r, batch: batch.id }),
    };
    const runs = ctx.options.batch?.expireAfterLines ?? Infinity;
    for (const [n, line] of state.lines.entries()) {
      if (n >= runs) {
        errors.push(
          JSON.stringify({
            id: newId('batch_req_'),
            custom_id: line.custom_id,
            response: null,
            error: {
              code: 'batch_expired',
              message: 'This request could not be executed before the completion window expired.',
            },
          }),
        );
        continue;
      }
      const reply = handleOpenAI(lineCtx, state.authorization, line.body);
      const entry = JSON.stringify({
        id: newId('batch_req_'),
        custom_id: line.custom_id,
        response: {
          status_code: reply.status,
          request_id: newId('req_'),
          body: reply.body,
        },
        error: null,
      });
      if (reply.status === 200) {
        output.push(entry);
        this.paidInputs.push(...inputsOf(line.body));
      } else errors.push(entry);
    }
    batch.request_counts = {
      total: state.lines.length,
      completed: output.length,
      failed: errors.length,
    };
    const store = (lines: string[], name: string): string | null => {
      if (lines.length === 0) return null;
      const file: StoredFile = {
        id: newId('file-'),
        filename: name,
        purpose: 'batch_output',
        created_at: seconds(ctx),
        content: `${lines.join('\n')}\n`,
      };
      this.files.set(file.id, file);
      return file.id;
    };
    batch.output_file_id = store(output, `${batch.id}_output.jsonl`);
    batch.error_file_id = store(errors, `${batch.id}_error.jsonl`);
    return state.lines.length > runs;
  }
}

const isEnqueued = (status: BatchStatus): boolean =>
  status === 'validating' || status === 'in_progress' || status === 'finalizing';

function fail(batch: StoredBatch, now: number, code: string, message: string): void {
  batch.status = 'failed';
  batch.failed_at = now;
  batch.errors = { object: 'list', data: [{ code, message, param: null, line: null }] };
}

function inputsOf(body: Record<string, unknown>): string[] {
  const input = body.input;
  if (typeof input === 'string') return [input];
  return Array.isArray(input) ? input.filter((i): i is string => typeof i === 'string') : [];
}

const clock = (ctx: MockContext): number => ctx.options.batch?.clock?.() ?? Date.now();
// Timestamps are real time, as listing back to a moment compares them with a database's clock; the
// batch clock only decides when a batch is due.
const seconds = (_ctx: MockContext): number => Math.floor(Date.now() / 1000);

function header(headers: BatchApiRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const fileObject = (f: StoredFile) => ({
  id: f.id,
  object: 'file',
  bytes: Buffer.byteLength(f.content),
  created_at: f.created_at,
  filename: f.filename,
  purpose: f.purpose,
  status: 'processed',
});

const invalid = (message: string): MockReply => error(400, message, 'invalid_request_error', null);
const notFound = (message: string): MockReply => error(404, message, 'invalid_request_error', null);
