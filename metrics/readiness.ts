/**
 * Whether a process is ready to take work: ready while none of the conditions it waits for is unmet.
 * A worker waits for its model (and, with --nats, its registration), a coordinator for its gRPC
 * service and its NATS registration; a drain or a stop adds one more, so a draining process stops
 * being ready before it stops serving. The gRPC health service (proto/health-service.ts) and /readyz
 * (http-endpoint.ts) both read this one object, so they never disagree.
 */
export class Readiness {
  /** Each unmet condition, and why it is unmet (what /readyz and the probe command show). */
  private readonly unmet = new Map<string, string>();
  private readonly listeners = new Set<() => void>();

  /** `waitingFor`: the conditions not met yet, each with why ("the model is not loaded yet"). */
  constructor(waitingFor: Readonly<Record<string, string>> = {}) {
    for (const [condition, why] of Object.entries(waitingFor)) this.unmet.set(condition, why);
  }

  get ready(): boolean {
    return this.unmet.size === 0;
  }

  /** "condition: why" for each unmet condition, in the order they became unmet. */
  get reasons(): string[] {
    return [...this.unmet].map(([condition, why]) => `${condition}: ${why}`);
  }

  met(condition: string): void {
    if (this.unmet.delete(condition)) this.changed();
  }

  unmetBecause(condition: string, why: string): void {
    const was = this.unmet.get(condition);
    this.unmet.set(condition, why);
    if (was !== why) this.changed();
  }

  /** `listener` is told after every change; the function returned stops that. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }
}
