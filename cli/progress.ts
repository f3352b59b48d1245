import { SingleBar, Presets } from 'cli-progress';
import type { RoundReport } from '../coordinator/engine/run-search.js';

/** The terminal progress bar: generation, NFEs spent of the planned budget, best reward so far. */
export class ProgressDisplay {
  private readonly bar: SingleBar | null;
  private started = false;

  constructor(enabled: boolean, private readonly plannedNfe: number) {
    this.bar = enabled
      ? new SingleBar(
          { format: 'generation {generation}/{generations} |{bar}| {value}/{total} NFE | best {best}', hideCursor: true, stream: process.stderr, clearOnComplete: false },
          Presets.shades_classic,
        )
      : null;
  }

  update(report: RoundReport): void {
    if (this.bar === null) return;
    const payload = {
      generation: report.progress.generation,
      generations: report.progress.generations,
      best: report.progress.best === null ? '-' : report.progress.best.reward.toFixed(4),
    };
    if (!this.started) {
      this.bar.start(this.plannedNfe, 0, payload);
      this.started = true;
    }
    this.bar.update(report.counters.nfe, payload);
  }

  stop(): void {
    if (this.bar !== null && this.started) this.bar.stop();
    this.started = false;
  }
}
