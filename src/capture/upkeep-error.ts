// An upkeep task (reindex, a scheduled check) that cannot do what was asked, named so the commands
// print its one line without a stack.
export class UpkeepError extends Error {
  override name = 'UpkeepError';
}
