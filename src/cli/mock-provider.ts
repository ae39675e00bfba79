// npx embedsync mock-provider: a local server speaking OpenAI's, Bedrock's, the Gemini API's and
// Voyage AI's embedding protocols, for your own tests and for the benchmarks. No keys, no costs;
// vectors are deterministic.
import { Command, InvalidArgumentError } from 'commander';
import { startMockProvider, type MockProviderOptions } from '../mock-provider/server.js';
import { TOKEN_COUNTINGS, type MockModel, type TokenCounting } from '../mock-provider/types.js';

const count = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a non-negative number');
  return n;
};

const program = new Command('embedsync mock-provider')
  .description(
    'Serve OpenAI POST /v1/embeddings (and its Files and Batches APIs), Bedrock POST /model/{modelId}/invoke, the Gemini API POST /v1/models/{model}:batchEmbedContents and Voyage AI POST /voyage/v1/embeddings on 127.0.0.1.',
  )
  .option('--port <n>', 'port to listen on (default: any free port)', count, 0)
  .option('--latency-ms <n>', 'delay before every answer', count)
  .option(
    '--rpm <n>',
    'requests per minute per model before 429 / ThrottlingException / RESOURCE_EXHAUSTED',
    count,
  )
  .option(
    '--tpm <n>',
    'tokens per minute per model before 429 / ThrottlingException / RESOURCE_EXHAUSTED',
    count,
  )
  .option(
    '--token-counting <how>',
    `how OpenAI and Voyage requests' tokens are counted, for --tpm and usage: ${TOKEN_COUNTINGS.join(' | ')} (UTF-8 bytes ÷ 4, as a provider whose tokenizer differs from embedsync's)`,
    'cl100k',
  )
  .option(
    '--retry-hint <kind>',
    'what an OpenAI or Voyage 429 carries: retry-after | retry-after-ms | reset-headers (Voyage: none)',
    'retry-after',
  )
  .option('--error-rate <fraction>', 'fraction of requests answered 503', count)
  .option('--poison <marker>', 'refuse inputs containing this text as invalid')
  .option('--api-key <key>', 'accept only this OpenAI, Gemini or Voyage key (default: any)')
  .option(
    '--model <name=dimensions:limit...>',
    'extra models an OpenAI-compatible server would serve (e.g. multilingual-e5-small=384:512: name=dimensions:maxInputTokens); past the limit an input is refused with a 413',
  )
  .option(
    '--batch-completion-ms <n>',
    'Batch API: how long after its creation a batch may complete (default 0: at the next polls)',
    count,
  )
  .option(
    '--enqueued-token-limit <n>',
    'Batch API: enqueued tokens per model; a batch created beyond it fails with token_limit_exceeded',
    count,
  )
  .addHelpText(
    'after',
    `
Point embedsync at it:
  OpenAI:   embedding.baseURL: http://127.0.0.1:<port>/v1   (or OPENAI_BASE_URL), any OPENAI_API_KEY
  Bedrock:  AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://127.0.0.1:<port> (or embedding.endpoint), any
            AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_REGION=us-east-1; it also serves the
            rerank models cohere.rerank-v3-5:0 and amazon.rerank-v1:0 (rerank.endpoint), scoring
            a document by the share of the query's words it holds
  Gemini:   embedding.baseURL: http://127.0.0.1:<port>   (or GOOGLE_GEMINI_BASE_URL), any GEMINI_API_KEY;
            a 429 carries RetryInfo and a per-minute QuotaFailure, --poison answers INVALID_ARGUMENT
  Voyage:   embedding.baseURL: http://127.0.0.1:<port>/voyage/v1   (or VOYAGE_BASE_URL), any
            VOYAGE_API_KEY

Batch API (npx embedsync backfill --table <pipeline> --batch):
  POST /v1/files, GET /v1/files/{id}[/content], DELETE /v1/files/{id}, POST /v1/batches,
  GET /v1/batches[/{id}], POST /v1/batches/{id}/cancel. A batch goes validating, in_progress,
  finalizing, completed as it is polled; lines with the --poison marker fail into its error file.`,
  )
  .parse();

const opts = program.opts<{
  port: number;
  latencyMs?: number;
  rpm?: number;
  tpm?: number;
  retryHint: string;
  tokenCounting: string;
  errorRate?: number;
  poison?: string;
  apiKey?: string;
  model?: string[];
  batchCompletionMs?: number;
  enqueuedTokenLimit?: number;
}>();

if (!['retry-after', 'retry-after-ms', 'reset-headers'].includes(opts.retryHint))
  program.error('--retry-hint must be retry-after, retry-after-ms or reset-headers');
if (!(TOKEN_COUNTINGS as readonly string[]).includes(opts.tokenCounting))
  program.error(`--token-counting must be ${TOKEN_COUNTINGS.join(' or ')}`);
const models: Record<string, MockModel> = {};
for (const m of opts.model ?? []) {
  const [, name, dims, limit] = /^([^=]+)=(\d+)(?::(\d+))?$/.exec(m) ?? [];
  if (!name || !dims)
    program.error(`--model ${m}: expected name=dimensions or name=dimensions:maxInputTokens`);
  else
    models[name] = {
      dimensions: Number(dims),
      ...(limit === undefined ? {} : { maxInputTokens: Number(limit) }),
    };
}

const options: MockProviderOptions = {
  latencyMs: opts.latencyMs,
  requestsPerMinute: opts.rpm,
  tokensPerMinute: opts.tpm,
  retryHint: opts.retryHint as MockProviderOptions['retryHint'],
  tokenCounting: opts.tokenCounting as TokenCounting,
  errorRate: opts.errorRate,
  poisonMarker: opts.poison,
  apiKey: opts.apiKey,
  models,
  batch: {
    ...(opts.batchCompletionMs === undefined ? {} : { completionMs: opts.batchCompletionMs }),
    ...(opts.enqueuedTokenLimit === undefined
      ? {}
      : { enqueuedTokenLimit: opts.enqueuedTokenLimit }),
  },
};

const mock = await startMockProvider(options, opts.port);
process.stdout.write(`mock provider listening on ${mock.url}
  OpenAI baseURL:    ${mock.openaiBaseURL}
  Bedrock endpoint:  ${mock.url}
  Gemini baseURL:    ${mock.url}
  Voyage baseURL:    ${mock.voyageBaseURL}
Ctrl-C stops it.
`);
const stop = (): void => {
  void mock.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
