/**
 * Waiting with a time limit, and taking turns: the two things the project's asynchronous code kept
 * writing by hand (a Promise.race against a setTimeout; a chain of promises where each piece of work
 * waits for the one before). Layer 0: it imports nothing, so every folder may use it.
 */

/** What `withTimeout` rejects with when the time runs out first. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor(
    /** What was waited for, as the message names it ("joining new workers"). */
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what}: no answer within ${ms} ms`);
  }
}

/**
 * `promise`, unless `ms` milliseconds pass first: then a rejection with a TimeoutError naming `what`
 * and the time, or with the error `what` makes when it is a function (a caller whose error must be
 * its own, e.g. one of the project's error model: this module imports none). The timer is cleared as
 * soon as either side settles. What `promise` settles to after the time ran out is dropped (its
 * rejection is handled, never an unhandled rejection); the work it stands for is not stopped.
 */
export function withTimeout<T>(promise: PromiseLike<T>, ms: number, what: string | (() => Error)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(typeof what === 'string' ? new TimeoutError(what, ms) : what()), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Whether `promise` fulfils within `ms` milliseconds: true if it does; false if it rejects, or if the
 * time runs out first. Never rejects: for work whose failure and whose hanging are handled alike (a
 * flush or a delete on a NATS that may be down, on the way out).
 */
export function succeedsWithin(promise: PromiseLike<unknown>, ms: number): Promise<boolean> {
  return withTimeout(promise, ms, 'succeedsWithin').then(
    () => true,
    () => false,
  );
}

/**
 * Works run one at a time, in the order `run` was called: each starts once the one before it has
 * settled, whether it succeeded or failed (a failure is its caller's, and never blocks the queue).
 */
export class TurnQueue {
  /** The end of the last work queued; never rejects. */
  private last: Promise<unknown> = Promise.resolve();

  /** Runs `work` after every work queued before it; settles as `work` does (a throw rejects). */
  run<T>(work: () => T | PromiseLike<T>): Promise<T> {
    const turn = this.last.then(() => work());
    this.last = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }
}
