// What a test started, stopped in reverse order: every step runs even when an earlier one fails, so
// a failed stop never leaves a worker, a poller or a server keeping the test process alive.

export class Teardown {
  private readonly steps: (() => unknown)[] = [];

  /** Registers a step; the last registered runs first. */
  add(step: () => unknown): void {
    this.steps.push(step);
  }

  /** Runs every step once, in reverse order, then throws the first failure, if any. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  /**
   * Runs setup; if it throws, what it had started is stopped before the error is passed on (a
   * failed before() runs no after() that could).
   */
  async guard<T>(setup: () => Promise<T>): Promise<T> {
    try {
      return await setup();
    } catch (err) {
      await this.run().catch(() => undefined);
      throw err;
    }
  }
}
