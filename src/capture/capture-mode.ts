// Whether a pipeline may capture logically (decision 29): a pure decision, given the server's
// wal_level, so apply refuses with the fix before it changes anything.
import {
  captureMode,
  ConfigError,
  destinationColumn,
  isEventsOnly,
  type AnyPipelineConfig,
} from '../config/pipeline.js';

/** Why this config cannot capture logically on a server with this wal_level, or undefined. */
export function logicalCaptureRefusal(
  config: AnyPipelineConfig,
  walLevel: string,
): ConfigError | undefined {
  if (captureMode(config) !== 'logical') return undefined;
  if (walLevel !== 'logical')
    return new ConfigError(
      'source.capture',
      `logical capture reads the WAL, but this server runs with wal_level = ${walLevel || 'unknown'}: ` +
        'set wal_level = logical and restart PostgreSQL (on RDS/Aurora: rds.logical_replication = 1), or leave source.capture at trigger',
    );
  if (isEventsOnly(config)) return undefined;
  if (config.onContentChange === 'clear')
    return new ConfigError(
      'source.capture',
      "onContentChange: clear marks a changed row's vectors stale inside the writing transaction, which only a trigger can do: " +
        'use capture: trigger, or onContentChange: keep',
    );
  if (destinationColumn(config) !== undefined)
    return new ConfigError(
      'source.capture',
      "a column pipeline writes its vectors into the source rows, and only a trigger tells those writes from the application's: " +
        'use capture: trigger, or a vector table',
    );
  return undefined;
}
