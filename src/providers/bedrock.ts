// Amazon Bedrock's InvokeModel for Titan Text Embeddings and Cohere Embed, and for the rerank models
// search's second stage asks (Cohere Rerank, Amazon Rerank). Credentials come from
// the AWS default chain (environment, shared config, SSO, instance or task role), never from
// config. The SDK's own retries are off (maxAttempts: 1): the embed activity's retry policy owns
// retrying.
import { BedrockRuntimeClient, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime';
import type { ProviderEnv } from '../config/env.js';
import type { BedrockEmbeddingConfig } from '../config/pipeline.js';
import { parseResponse, requestBodies, type MalformedResponseError } from './bedrock-bodies.js';
import { parseRerankResponse, rerankBody, rerankFamily } from './bedrock-rerank.js';
import {
  InvalidInputError,
  ModelUnavailableError,
  ProviderAuthError,
  ProviderRejectedError,
  ProviderUnavailableError,
  RateLimitedError,
  scrub,
} from './errors.js';
import { modelFacts } from './models.js';
import { retryDelayFromHeaders } from './retry-hints.js';
import type {
  EmbeddingProvider,
  EmbedRequest,
  EmbedResponse,
  RerankRequest,
  RerankResponse,
} from './types.js';

const REQUEST_TIMEOUT_MS = 50_000;

export class BedrockProvider implements EmbeddingProvider {
  readonly name = 'bedrock';
  readonly maxInputsPerRequest = 96;
  readonly rateLimit: ProviderEnv['bedrock'];
  private readonly clients = new Map<string, BedrockRuntimeClient>();

  constructor(env: ProviderEnv['bedrock'] = {}) {
    this.rateLimit = env;
  }

  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    const config = this.config(request);
    const facts = modelFacts(config);
    const client = this.client(config);
    const bodies = requestBodies(facts, request.texts, {
      dimensions: request.dimensions,
      inputType: request.inputType,
      normalize: config.normalize,
    });
    const result: EmbedResponse = { vectors: [], tokens: 0 };
    // Titan takes one text per call: the calls of one request go one after another, in order.
    for (const body of bodies) {
      let json: unknown;
      try {
        const response = await client.send(
          new InvokeModelCommand({
            modelId: config.model,
            contentType: 'application/json',
            accept: 'application/json',
            body: JSON.stringify(body),
          }),
          { abortSignal: request.signal },
        );
        json = JSON.parse(new TextDecoder().decode(response.body));
      } catch (err) {
        throw translate(err);
      }
      let parsed;
      try {
        parsed = parseResponse(facts, json);
      } catch (err) {
        throw new ProviderUnavailableError(this.name, (err as MalformedResponseError).message);
      }
      result.vectors.push(...parsed.vectors);
      // Cohere reports no count in its body: estimated like the budget (3 characters a token).
      const texts = Array.isArray(body.texts) ? (body.texts as string[]) : [String(body.inputText)];
      result.tokens +=
        parsed.tokens ?? texts.reduce((sum, t) => sum + Math.ceil(Array.from(t).length / 3), 0);
    }
    return result;
  }

  /**
   * One InvokeModel of a rerank model. Not retried here: search's stage retries a throttled one
   * within its bound (src/search/rerank.ts).
   */
  async rerank(request: RerankRequest): Promise<RerankResponse> {
    const config = request.rerank;
    if (config.provider !== 'bedrock')
      throw new ModelUnavailableError(
        this.name,
        `a ${config.provider} rerank config is not for it`,
      );
    const { model } = config;
    const family = rerankFamily(model);
    if (!family) throw new ModelUnavailableError(this.name, `${model} is not a rerank model`);
    let json: unknown;
    try {
      const response = await this.client(config).send(
        new InvokeModelCommand({
          modelId: model,
          contentType: 'application/json',
          accept: 'application/json',
          body: JSON.stringify(rerankBody(family, request.query, request.documents, request.topN)),
        }),
        { abortSignal: request.signal },
      );
      json = JSON.parse(new TextDecoder().decode(response.body));
    } catch (err) {
      throw translate(err);
    }
    try {
      return { results: parseRerankResponse(model, json, request.documents.length) };
    } catch (err) {
      throw new ProviderUnavailableError(this.name, (err as MalformedResponseError).message);
    }
  }

  private config(request: EmbedRequest): BedrockEmbeddingConfig {
    if (request.embedding?.provider === 'bedrock') return request.embedding;
    return { provider: 'bedrock', model: request.model, dimensions: request.dimensions };
  }

  private client(config: { region?: string; endpoint?: string }): BedrockRuntimeClient {
    const region = config.region ?? this.rateLimit.region;
    const endpoint = config.endpoint ?? this.rateLimit.endpoint;
    const cacheKey = `${region ?? ''}\n${endpoint ?? ''}`;
    let client = this.clients.get(cacheKey);
    if (!client) {
      client = new BedrockRuntimeClient({
        ...(region ? { region } : {}),
        ...(endpoint ? { endpoint } : {}),
        maxAttempts: 1,
        requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS },
      });
      this.clients.set(cacheKey, client);
    }
    return client;
  }
}

const THROTTLED = new Set([
  'ThrottlingException',
  'ServiceQuotaExceededException',
  'ModelNotReadyException',
  'TooManyRequestsException',
]);
const AUTH = new Set([
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'MissingAuthenticationTokenException',
  'CredentialsProviderError',
  'IncompleteSignatureException',
]);
const UNAVAILABLE = new Set([
  'InternalServerException',
  'ServiceUnavailableException',
  'ModelTimeoutException',
  'ModelErrorException',
  'TimeoutError',
  'AbortError',
]);

interface SdkError {
  name?: string;
  message?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string> };
}

function translate(err: unknown): Error {
  const e = (err ?? {}) as SdkError;
  const name = e.name ?? 'Error';
  const message = scrub(`${name}: ${e.message ?? String(err)}`);
  const status = e.$metadata?.httpStatusCode;
  if (THROTTLED.has(name) || status === 429) {
    // Bedrock sends no retry hint today; if a proxy in front of it does, it is honoured.
    const headers = e.$response?.headers ?? {};
    return new RateLimitedError(
      'bedrock',
      message,
      retryDelayFromHeaders((h) => headers[h]),
    );
  }
  if (AUTH.has(name) || status === 401 || status === 403)
    return new ProviderAuthError('bedrock', message);
  if (name === 'ResourceNotFoundException' || status === 404)
    return new ModelUnavailableError('bedrock', message);
  if (name === 'ValidationException') return new InvalidInputError('bedrock', message);
  if (UNAVAILABLE.has(name) || status === undefined || status >= 500 || e.$fault === 'server')
    return new ProviderUnavailableError('bedrock', message);
  return new ProviderRejectedError('bedrock', message);
}
