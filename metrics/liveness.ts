/**
 * Whether a process's event loop responds: a timer ticks every `everyMs`, and the lag of a tick (how
 * much later than asked it ran) is how long the loop was kept from running. A loop that was held up
 * past `limitMs` within the last `windowMs` is not live. A loop that is stuck now answers no probe at
 * all (the probe times out, which a prober counts as a failure too); this catches the loop that runs
 * but only in long stalls (a synchronous piece of work that keeps coming back), which would otherwise
 * answer every probe late but within its timeout.
 */
export const DEFAULT_LAG_LIMIT_MS = 5000;
const DEFAULT_EVERY_MS = 500;
const DEFAULT_WINDOW_MS = 10_000;

export interface LivenessOptions {
  /** A lag past this is not live (default 5 s). */
  readonly limitMs?: number;
  readonly everyMs?: number;
  /** How long a lag past the limit keeps the process not live (default 10 s). */
  readonly windowMs?: number;
}

export class EventLoopLiveness {
  readonly limitMs: number;
  private readonly everyMs: number;
  private readonly windowMs: number;
  private lastTick = performance.now();
  /** Ticks whose lag passed the limit, by when they ran: at most windowMs / everyMs of them. */
  private stalls: { readonly at: number; readonly lagMs: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private wasLive = true;
  private readonly listeners = new Set<() => void>();

  constructor(options: LivenessOptions = {}) {
    this.limitMs = options.limitMs ?? DEFAULT_LAG_LIMIT_MS;
    this.everyMs = options.everyMs ?? DEFAULT_EVERY_MS;
    this.windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    this.timer = setInterval(() => this.tick(), this.everyMs);
    // Watching the loop must never be what keeps a process from ending.
    this.timer.unref();
  }

  /** The worst lag within the window, and the one building up now (a tick that is late as we speak). */
  get lagMs(): number {
    const now = performance.now();
    const recent = this.stalls.filter((s) => now - s.at <= this.windowMs).reduce((worst, s) => Math.max(worst, s.lagMs), 0);
    return Math.max(recent, now - this.lastTick - this.everyMs);
  }

  get live(): boolean {
    return this.lagMs <= this.limitMs;
  }

  /** Why it is not live, or null. */
  get reason(): string | null {
    const lag = this.lagMs;
    return lag <= this.limitMs ? null : `the event loop was held up for ${(lag / 1000).toFixed(1)} s (more than ${(this.limitMs / 1000).toFixed(1)} s) within the last ${(this.windowMs / 1000).toFixed(0)} s`;
  }

  /** `listener` is told when liveness flips (seen at a tick); the function returned stops that. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = performance.now();
    const lag = now - this.lastTick - this.everyMs;
    this.lastTick = now;
    this.stalls = this.stalls.filter((s) => now - s.at <= this.windowMs);
    if (lag > this.limitMs) this.stalls.push({ at: now, lagMs: lag });
    const live = this.live;
    if (live !== this.wasLive) {
      this.wasLive = live;
      for (const listener of [...this.listeners]) listener();
    }
  }
}
