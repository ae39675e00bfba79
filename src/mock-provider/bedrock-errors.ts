// How the Bedrock mock answers what goes wrong, for its embedding and rerank models alike: Bedrock's
// error shape, and the turn a request takes (a fault injected by a test, then the model's budget).
import { randomUUID } from 'node:crypto';
import type { MockContext, MockFault, MockReply } from './types.js';

export function awsError(status: number, type: string, message: string): MockReply {
  return {
    status,
    headers: {
      'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      'x-amzn-requestid': randomUUID(),
    },
    body: { message },
  };
}

/**
 * A valid request's turn: Bedrock's answer to an injected server error or quota, or to a spent
 * budget (a throttle); otherwise the fault it may still carry (e.g. wrong dimensions).
 */
export function takeBedrockTurn(
  ctx: MockContext,
  modelId: string,
  tokens: number,
): { refused: MockReply } | { fault: MockFault | undefined } {
  const fault = ctx.takeFault();
  if (fault?.kind === 'server-error')
    return {
      refused: awsError(
        fault.status ?? 500,
        fault.status === 503 ? 'ServiceUnavailableException' : 'InternalServerException',
        'The server encountered an internal error.',
      ),
    };
  if (fault?.kind === 'quota')
    return {
      refused: awsError(
        400,
        'ServiceQuotaExceededException',
        'Your request exceeds the service quota for your account.',
      ),
    };
  const charge = fault?.kind === 'rate-limit' ? { ok: false } : ctx.charge(modelId, tokens);
  if (!charge.ok)
    return {
      refused: awsError(
        429,
        'ThrottlingException',
        'Too many requests, please wait before trying again.',
      ),
    };
  return { fault };
}
