/**
 * Waiting for what a test needs to have happened, instead of sleeping for a guess at how long it
 * takes: the test goes on as soon as it holds, and fails naming it when it never does.
 */

/**
 * Resolves once `condition` holds, looking every `everyMs`; fails after `timeoutMs` with an error
 * naming `what` (phrased as what should happen: "the worker.lost event") and the last error the
 * condition threw, if any. A condition that throws counts as not holding yet (NATS reconnecting).
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 10): Promise<void> {
  const started = performance.now();
  let lastError: unknown = undefined;
  for (;;) {
    try {
      if (await condition()) return;
    } catch (error) {
      lastError = error;
    }
    const waited = performance.now() - started;
    if (waited >= timeoutMs) {
      const because = lastError === undefined ? '' : ` (the last look failed: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${Math.round(waited)} ms waiting for ${what}${because}`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(everyMs, timeoutMs - waited)));
  }
}
