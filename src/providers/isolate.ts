// Finding the input a provider refuses. A request that fails as invalid input is split in halves,
// and the halves again, until each refused input stands alone; every other input is embedded (and
// paid for) once. A poisoned row costs about 2·log2(n) extra requests, which providers do not
// charge.
//
// A refusal is not always an input's fault: a bad parameter makes every input fail alike. So once
// two inputs have been refused and none accepted, one more input is tried alone; if that is refused
// too, the request is to blame and RequestRefusedError ends the activity instead of dead-lettering
// rows.
import { InvalidInputError, RequestRefusedError } from './errors.js';

export interface IsolatedInput {
  /** The source row the input belongs to: a refused input sets its whole row aside. */
  pk: string;
  /** Unique within the batch. */
  id: string;
}

export class InputIsolator<T extends IsolatedInput> {
  /** Rows refused, with the provider's reason, not yet handed over by takeFailures(). */
  private failures = new Map<string, string>();
  private readonly refusedRows = new Set<string>();
  private readonly done = new Set<string>();
  private refused = 0;

  /**
   * @param send embeds and stores these inputs, or throws (InvalidInputError for a refusal) @param
   * accepted inputs of the batch already embedded (by earlier attempts) @param untried the inputs
   * still to send, where a probe is taken from when a request has none left
   */
  constructor(
    private readonly send: (inputs: T[]) => Promise<void>,
    private accepted = 0,
    private readonly untried: () => readonly T[] = () => [],
  ) {}

  /** Whether an input needs no request: already embedded, or its row is set aside. */
  settled(input: T): boolean {
    return this.done.has(input.id) || this.refusedRows.has(input.pk);
  }

  /** Whether any input has been accepted, so refusals so far are the inputs' own. */
  get anyAccepted(): boolean {
    return this.accepted > 0;
  }

  /** The refused rows found since the last call. */
  takeFailures(): Map<string, string> {
    const out = this.failures;
    this.failures = new Map();
    return out;
  }

  /** Sends one request's worth of inputs, isolating any that the provider refuses. */
  async run(group: T[]): Promise<void> {
    await this.bisect(group, group);
  }

  private async bisect(group: T[], request: T[]): Promise<void> {
    const pending = group.filter((input) => !this.settled(input));
    if (pending.length === 0) return;
    try {
      await this.send(pending);
      this.accept(pending);
      return;
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err;
      const [only] = pending;
      if (only && pending.length === 1) return this.refuse(only, err, request);
    }
    const middle = Math.ceil(pending.length / 2);
    await this.bisect(pending.slice(0, middle), request);
    await this.bisect(pending.slice(middle), request);
  }

  private accept(inputs: T[]): void {
    for (const input of inputs) this.done.add(input.id);
    this.accepted += inputs.length;
  }

  private async refuse(input: T, err: InvalidInputError, request: T[]): Promise<void> {
    this.refused += 1;
    this.refusedRows.add(input.pk);
    this.failures.set(input.pk, err.message);
    if (this.accepted > 0 || this.refused < 2) return;
    // Two refused, none accepted: try one more input, from the other end of the request (or the
    // batch).
    const unsettled = (other: T): boolean => !this.settled(other);
    const probe =
      [...request].reverse().find(unsettled) ?? [...this.untried()].reverse().find(unsettled);
    if (probe) {
      try {
        await this.send([probe]);
        this.accept([probe]);
        return;
      } catch (probeErr) {
        if (!(probeErr instanceof InvalidInputError)) throw probeErr;
      }
    }
    throw new RequestRefusedError(
      err.provider,
      `the provider refused every input tried (${this.refused + (probe ? 1 : 0)}), so the request is at fault, not an input: ${err.message}`,
    );
  }
}
