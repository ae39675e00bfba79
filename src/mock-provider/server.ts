// A local server that speaks the embedding providers' wire protocols, for tests and benchmarks that
// drive the real SDK clients without keys, costs or a network:
//   OpenAI:  POST /v1/embeddings              (baseURL http://127.0.0.1:<port>/v1)
//   Bedrock: POST /model/{modelId}/invoke     (endpoint http://127.0.0.1:<port>), rerank models too
//   Gemini:  POST /v1/models/{model}:batchEmbedContents, :embedContent (v1beta too)
//                                             (baseURL http://127.0.0.1:<port>)
//   Voyage:  POST /voyage/v1/embeddings       (baseURL http://127.0.0.1:<port>/voyage/v1)
// Vectors are the offline provider's, so equal texts get equal vectors on every run. One port
// serves HTTP/1.1 (the OpenAI SDK) and cleartext HTTP/2 (the AWS SDK's default for Bedrock
// runtime).
import {
  createServer as createHttp1Server,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { awsError, handleBedrock } from './bedrock.js';
import { geminiRoute, googleError, handleGemini } from './gemini.js';
import { formatReset, TokenBucket } from './limits.js';
import { MockBatches } from './batches.js';
import { handleOpenAI } from './openai.js';
import { handleVoyage, VOYAGE_PATH } from './voyage.js';
import type {
  MockContext,
  MockFault,
  MockProviderOptions,
  MockReply,
  RecordedRequest,
} from './types.js';

export { mockTokenCount } from './limits.js';
export type { MockFault, MockProviderOptions, RecordedRequest, TokenCounting } from './types.js';

export interface MockProvider {
  /** http://127.0.0.1:<port> — the Bedrock endpoint, and the Gemini API's baseURL. */
  url: string;
  /** http://127.0.0.1:<port>/v1 — the OpenAI baseURL. */
  openaiBaseURL: string;
  /** http://127.0.0.1:<port>/voyage/v1 — the Voyage AI baseURL. */
  voyageBaseURL: string;
  port: number;
  /**
   * Every request answered, in order; a batch's lines (with `batch` set) once it has completed.
   */
  requests: RecordedRequest[];
  /** OpenAI's Files and Batches: what was created, and the inputs completed batches billed. */
  batches: MockBatches;
  /** Knobs; changes apply to the next request. */
  options: MockProviderOptions;
  /**
   * Answer the next `times` requests (that pass validation) with this fault; Infinity for every
   * one.
   */
  inject(fault: MockFault, times?: number): void;
  /** Forget recorded requests, pending faults and spent budgets. */
  reset(): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

async function readBody(req: Request): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req) {
    size += (part as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    parts.push(part as Buffer);
  }
  return Buffer.concat(parts);
}

async function readJson(req: Request): Promise<unknown> {
  const text = (await readBody(req)).toString('utf8');
  return text === '' ? {} : (JSON.parse(text) as unknown);
}

function send(res: Response, reply: MockReply & { raw?: string }): void {
  // Set one by one: writeHead's HTTP/1 and HTTP/2 overloads do not unite into one callable type.
  res.statusCode = reply.status;
  const headers = { 'content-type': 'application/json', ...reply.headers };
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(reply.raw ?? JSON.stringify(reply.body));
}

export async function startMockProvider(
  options: MockProviderOptions = {},
  port = 0,
): Promise<MockProvider> {
  const faults: { fault: MockFault; times: number }[] = [];
  const buckets = new Map<string, { requests?: TokenBucket; tokens?: TokenBucket }>();
  const requests: RecordedRequest[] = [];
  const batches = new MockBatches();
  const mock = { options, requests, batches } as MockProvider;

  const context: Omit<MockContext, 'options' | 'record'> = {
    takeFault() {
      const next = faults[0];
      if (!next) return undefined;
      next.times -= 1;
      if (next.times <= 0) faults.shift();
      return next.fault;
    },
    charge(model, tokens) {
      const { requestsPerMinute: rpm, tokensPerMinute: tpm } = mock.options;
      let b = buckets.get(model);
      if (!b) {
        b = {
          requests: rpm ? new TokenBucket(rpm) : undefined,
          tokens: tpm ? new TokenBucket(tpm) : undefined,
        };
        buckets.set(model, b);
      }
      const waitRequests = b.requests?.waitFor(1) ?? 0;
      const waitTokens = b.tokens?.waitFor(tokens) ?? 0;
      const ok = waitRequests === 0 && waitTokens === 0;
      if (ok) {
        b.requests?.take(1);
        b.tokens?.take(tokens);
      }
      const headers: Record<string, string> = {};
      if (b.requests) Object.assign(headers, limitHeaders('requests', b.requests));
      if (b.tokens) Object.assign(headers, limitHeaders('tokens', b.tokens));
      if (ok) return { ok, headers };
      return {
        ok,
        headers,
        waitMs: Math.max(waitRequests, waitTokens),
        budget: waitRequests >= waitTokens ? 'requests' : 'tokens',
      };
    },
  };

  const handle = (req: Request, res: Response): void => {
    void (async () => {
      try {
        if (mock.options.latencyMs) await new Promise((r) => setTimeout(r, mock.options.latencyMs));
        const url = new URL(req.url ?? '/', 'http://localhost');
        if (req.method === 'GET' && url.pathname === '/health')
          return send(res, { status: 200, body: { ok: true } });
        if (MockBatches.handles(url.pathname)) {
          const batchCtx: MockContext = {
            ...context,
            options: mock.options,
            record: (r) => requests.push({ at: Date.now(), path: '/v1/embeddings', ...r }),
          };
          return send(
            res,
            await batches.handle(batchCtx, {
              method: req.method ?? 'GET',
              path: url.pathname,
              query: url.searchParams,
              headers: req.headers,
              body: await readBody(req),
            }),
          );
        }
        const gemini = req.method === 'POST' ? geminiRoute(url.pathname) : undefined;
        if (gemini) {
          const body = await readJson(req);
          const ctx: MockContext = {
            ...context,
            options: mock.options,
            record: (r) => requests.push({ at: Date.now(), path: url.pathname, ...r }),
          };
          if (mock.options.errorRate && Math.random() < mock.options.errorRate)
            return send(
              res,
              googleError(503, 'UNAVAILABLE', 'The service is currently unavailable.'),
            );
          const header = req.headers['x-goog-api-key'];
          const query = url.searchParams.get('key');
          const key =
            typeof header === 'string' && header !== ''
              ? { value: header, in: 'x-goog-api-key' as const }
              : query
                ? { value: query, in: 'key' as const }
                : { value: undefined, in: 'none' as const };
          return send(res, handleGemini(ctx, gemini, key, body));
        }
        const bedrock = /^\/model\/([^/]+)\/invoke$/.exec(url.pathname);
        const openai = url.pathname === '/v1/embeddings' || url.pathname === '/embeddings';
        const voyage = url.pathname === VOYAGE_PATH;
        if (req.method !== 'POST' || (!bedrock && !openai && !voyage))
          return send(res, {
            status: 404,
            body: { message: `no route for ${req.method ?? ''} ${url.pathname}` },
          });
        const body = await readJson(req);
        const ctx: MockContext = {
          ...context,
          options: mock.options,
          record: (r) => requests.push({ at: Date.now(), path: url.pathname, ...r }),
        };
        if (mock.options.errorRate && Math.random() < mock.options.errorRate) {
          if (voyage) return send(res, { status: 503, body: { detail: 'Service unavailable' } });
          return send(
            res,
            openai
              ? {
                  status: 503,
                  body: {
                    error: {
                      message: 'Service unavailable',
                      type: 'server_error',
                      param: null,
                      code: null,
                    },
                  },
                }
              : awsError(503, 'ServiceUnavailableException', 'Service unavailable'),
          );
        }
        if (openai) return send(res, handleOpenAI(ctx, req.headers.authorization, body));
        if (voyage) return send(res, handleVoyage(ctx, req.headers.authorization, body));
        return send(
          res,
          handleBedrock(ctx, decodeURIComponent(bedrock?.[1] ?? ''), req.headers, body),
        );
      } catch (err) {
        send(res, {
          status: 400,
          body: {
            error: {
              message: `could not read the request: ${(err as Error).message}`,
              type: 'invalid_request_error',
              param: null,
              code: null,
            },
          },
        });
      }
    })();
  };
  const http1 = createHttp1Server(handle);
  const http2 = createHttp2Server(handle);
  const sockets = new Set<Socket>();
  // An HTTP/2 client with prior knowledge opens with this preface; anything else is HTTP/1.1.
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('data', (first) => {
      socket.pause();
      socket.unshift(first);
      if (first.toString('latin1').startsWith('PRI * HTTP/2.0')) {
        // The session reads the unshifted bytes itself; resuming here would hand them to no one.
        http2.emit('connection', socket);
      } else {
        http1.emit('connection', socket);
        socket.resume();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;

  return Object.assign(mock, {
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    openaiBaseURL: `http://127.0.0.1:${address.port}/v1`,
    voyageBaseURL: `http://127.0.0.1:${address.port}/voyage/v1`,
    inject(fault: MockFault, times = 1) {
      faults.push({ fault, times });
    },
    reset() {
      requests.length = 0;
      faults.length = 0;
      buckets.clear();
      batches.reset();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  });
}

function limitHeaders(budget: 'requests' | 'tokens', bucket: TokenBucket): Record<string, string> {
  return {
    [`x-ratelimit-limit-${budget}`]: String(bucket.capacity),
    [`x-ratelimit-remaining-${budget}`]: String(Math.max(0, bucket.remaining())),
    [`x-ratelimit-reset-${budget}`]: formatReset(bucket.untilFull()),
  };
}
