/**
 * A process's health as its probes read it: live (the event loop responds: liveness.ts) and ready
 * (nothing it waits for is unmet: readiness.ts). One object per server, shared by its gRPC health
 * service and its HTTP endpoint.
 */
import { EventLoopLiveness, type LivenessOptions } from './liveness.js';
import { Readiness } from './readiness.js';

export interface HealthStatus {
  readonly live: boolean;
  /** Ready and live: a process whose loop stalls takes no work either. */
  readonly ready: boolean;
  /** Why it is not ready or not live, one line each; empty when it is both. */
  readonly reasons: readonly string[];
}

export class ProcessHealth {
  readonly readiness: Readiness;
  readonly liveness: EventLoopLiveness;

  constructor(waitingFor: Readonly<Record<string, string>>, liveness: LivenessOptions = {}) {
    this.readiness = new Readiness(waitingFor);
    this.liveness = new EventLoopLiveness(liveness);
  }

  status(): HealthStatus {
    const stalled = this.liveness.reason;
    const reasons = [...(stalled !== null ? [`liveness: ${stalled}`] : []), ...this.readiness.reasons];
    return { live: stalled === null, ready: stalled === null && this.readiness.ready, reasons };
  }

  /** Told after any change of either; the function returned stops that. */
  onChange(listener: () => void): () => void {
    const offReady = this.readiness.onChange(listener);
    const offLive = this.liveness.onChange(listener);
    return () => {
      offReady();
      offLive();
    };
  }

  /** Stops watching the event loop (the process is ending). */
  close(): void {
    this.liveness.stop();
  }
}
