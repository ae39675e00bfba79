// The workflow that scheduled the running activity. Temporal also runs activities on their own
// (standalone activities), where there is none; embedsync's are always scheduled by a workflow.
import { Context } from '@temporalio/activity';

export function callingWorkflow(): { workflowId: string; runId: string } {
  const { workflowExecution, activityType } = Context.current().info;
  if (!workflowExecution) throw new Error(`${activityType} must be scheduled by a workflow`);
  return workflowExecution;
}
