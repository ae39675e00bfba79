// Waiting for Ctrl-C (SIGINT) or SIGTERM in a long-running command, and staying alive while it
// stops. A Ctrl-C in a terminal can reach the process twice: from the terminal, and again from npm,
// which passes the signals it gets on to the script it runs. Without a listener the second one
// kills the process on the spot, so `npm run dev` could exit with PostgreSQL and Temporal still
// running. So the listeners stay until the command has stopped: a repeat within a second is taken
// for that echo, a later one is answered with `repeatNote`, and one more after that exits at once.

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** A second signal sooner than this after the first is the same Ctrl-C delivered twice. */
export const ECHO_MS = 1000;

export interface StopSignalsOptions {
  /** Said at the first deliberate repeat while stopping: what a further one would leave behind. */
  repeatNote: string;
  say: (line: string) => void;
  /** Injected in tests: a clock, the exit, and where the signals come from (the process). */
  now?: () => number;
  exit?: (code: number) => void;
  source?: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
}

export interface StopSignals {
  /** Resolves at the first SIGINT or SIGTERM. */
  stopped: Promise<void>;
  /** The command has stopped: the listeners go. */
  done: () => void;
}

export function stopSignals(options: StopSignalsOptions): StopSignals {
  const now = options.now ?? Date.now;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const source = options.source ?? process;
  let firstAt: number | undefined;
  let repeats = 0;
  let resolve: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (resolve = r));
  const onSignal = (): void => {
    if (firstAt === undefined) {
      firstAt = now();
      resolve();
      return;
    }
    if (now() - firstAt < ECHO_MS) return;
    repeats += 1;
    if (repeats === 1) options.say(options.repeatNote);
    // 128 + SIGINT, as a shell reports an interrupted command.
    else exit(130);
  };
  for (const signal of SIGNALS) source.on(signal, onSignal);
  return {
    stopped,
    done: () => {
      for (const signal of SIGNALS) source.off(signal, onSignal);
    },
  };
}
