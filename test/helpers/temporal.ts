// Workflows a test leaves running would retry against a database that is about to be dropped, for
// as long as the dev server keeps them, and load the server for every later test file.
import type { Client } from '@temporalio/client';

/**
 * Terminates the workflows still running on a harness's task queue (best effort: visibility may
 * lag).
 */
export async function terminateRunning(client: Client, taskQueue: string): Promise<void> {
  for await (const wf of client.workflow.list({
    query: `TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running"`,
  })) {
    await client.workflow
      .getHandle(wf.workflowId)
      .terminate('the test finished; its database is dropped')
      .catch(() => undefined);
  }
}
