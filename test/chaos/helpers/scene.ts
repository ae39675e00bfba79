// One chaos scenario's processes and resources: whatever it started is stopped and removed at the
// end, pass or fail, and a failure carries the output of every process it ran.
import { inspect } from 'node:util';
import { spawnChild, type Child } from './processes.js';

export class Scene {
  private readonly children: Child[] = [];
  private readonly cleanups: Array<() => Promise<void>> = [];

  spawn(
    name: string,
    command: string,
    args: string[],
    opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ): Child {
    const child = spawnChild(name, command, args, opts);
    this.children.push(child);
    return child;
  }

  /** Runs at the end, after every child is gone, in reverse order of registration. */
  onCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** The kept output of every process the scenario ran, in start order. */
  report(): string {
    return this.children.map((c) => c.output()).join('\n');
  }

  async close(): Promise<void> {
    const errors: unknown[] = [];
    for (const child of this.children)
      await child.kill('SIGKILL').catch((err: unknown) => errors.push(err));
    for (const fn of this.cleanups.reverse()) await fn().catch((err: unknown) => errors.push(err));
    if (errors.length > 0) throw new AggregateError(errors, 'cleaning up the scenario failed');
  }
}

/** Runs a scenario; on failure the error also shows what every process logged. */
export async function inScene(body: (scene: Scene) => Promise<void>): Promise<void> {
  const scene = new Scene();
  let failure: Error | undefined;
  try {
    await body(scene);
  } catch (err) {
    failure = asError(err);
    failure.message += `\n\n--- output of the scenario's processes ---\n${scene.report()}`;
  }
  try {
    await scene.close();
  } catch (err) {
    failure ??= asError(err);
  }
  if (failure) throw failure;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(inspect(err)));
