// What a failed workflow says to the person who started it: the activity's own error, not the
// wrappers Temporal puts around it ("Workflow execution failed" → "Activity task failed" → …).

/**
 * The innermost message of an error's cause chain: "openai/e5 returned 512-dimension vectors, but
 * the pipeline stores 384 …" rather than "Activity task failed".
 */
export function failureMessage(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err);
  let cause: unknown = err instanceof Error ? err.cause : undefined;
  for (let depth = 0; cause instanceof Error && depth < 10; depth += 1) {
    if (cause.message) message = cause.message;
    cause = cause.cause;
  }
  return message;
}
