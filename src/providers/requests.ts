// Sizing requests: as many inputs as the model takes in one call, and no more tokens than the model
// takes per request or the rate plan allows (src/rate-limit/plan.ts). An input alone always
// fits.

export interface RequestLimits {
  maxInputs: number;
  maxTokens: number;
}

export interface SizedInput {
  tokens: number;
}

/** The inputs of the next request, in order, taken from the front of `queue`. */
export function nextRequest<T extends SizedInput>(queue: readonly T[], limits: RequestLimits): T[] {
  const group: T[] = [];
  let tokens = 0;
  for (const input of queue) {
    if (group.length >= limits.maxInputs) break;
    if (group.length > 0 && tokens + input.tokens > limits.maxTokens) break;
    group.push(input);
    tokens += input.tokens;
  }
  return group;
}
