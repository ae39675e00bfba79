// How a pipeline's changes are captured, as status shows it: by trigger, or from the WAL through the
// database's slot with how far behind it is (decision 29). A slot that is gone or lost is named as
// the error it is, with the fix: the changes since were not captured.
import type { AnyPipelineConfig } from '../config/pipeline.js';
import { captureMode } from '../config/pipeline.js';
import type { CaptureSlotState } from '../db/capture-slot.js';

export type CaptureStatus =
  | { mode: 'trigger' }
  | {
      mode: 'logical';
      slot: string | null;
      /** WAL written since the slot's confirmed position (what it keeps); null when there is none. */
      lagBytes: number | null;
      walStatus: string | null;
      error?: string;
    };

export function captureStatus(
  config: AnyPipelineConfig,
  slot: CaptureSlotState | undefined,
  expectedSlot: string,
): CaptureStatus {
  if (captureMode(config) === 'trigger') return { mode: 'trigger' };
  if (!slot)
    return {
      mode: 'logical',
      slot: null,
      lagBytes: null,
      walStatus: null,
      error:
        `the replication slot ${expectedSlot} does not exist: changes since it went were not captured; ` +
        'run `npx embedsync apply` (it creates it again), then a backfill',
    };
  const lost = slot.walStatus === 'lost';
  return {
    mode: 'logical',
    slot: slot.slot,
    lagBytes: slot.lagBytes,
    walStatus: slot.walStatus,
    ...(lost
      ? {
          error:
            `the replication slot ${slot.slot} was invalidated (it fell more than max_slot_wal_keep_size behind): ` +
            `changes since were not captured; run select pg_drop_replication_slot('${slot.slot}'), then \`npx embedsync apply\` and a backfill`,
        }
      : {}),
  };
}
