// `src/cli/worker.ts`, entered through this file: first the offline provider is made to append
// every text it is asked to embed to $EMBEDSYNC_TEST_EMBED_LOG (synchronously, before returning
// vectors), so that a test can count what a worker paid for across a SIGKILL. Everything else is
// the real worker.
import { appendFileSync } from 'node:fs';
import { OfflineProvider } from '../../../src/providers/offline.js';
import type { EmbedRequest, EmbedResponse } from '../../../src/providers/types.js';

const log = process.env.EMBEDSYNC_TEST_EMBED_LOG;
if (!log) throw new Error('EMBEDSYNC_TEST_EMBED_LOG is not set');
const { prototype } = OfflineProvider;
const embed = Object.getOwnPropertyDescriptor(prototype, 'embed')?.value as (
  this: OfflineProvider,
  request: EmbedRequest,
) => Promise<EmbedResponse>;
prototype.embed = function countedEmbed(
  this: OfflineProvider,
  request: EmbedRequest,
): Promise<EmbedResponse> {
  appendFileSync(log, request.texts.map((t) => `${JSON.stringify(t)}\n`).join(''));
  return embed.call(this, request);
};
await import('../../../src/cli/worker.js');
