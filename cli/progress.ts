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
    this.show(report.counters.nfe, `${report.progress.generation}/${report.progress.generations}`, report.progress.best?.reward ?? null);
  }

  /** Progress from a coordinator's round events (round number instead of generation). */
  showRound(nfe: number, round: number, best: number | null): void {
    this.show(nfe, `round ${round + 1}`, best);
  }

  private show(nfe: number, where: string, best: number | null): void {
    if (this.bar === null) return;
    const [generation, generations] = where.includes('/') ? where.split('/') : [where, '?'];
    const payload = { generation, generations, best: best === null ? '-' : best.toFixed(4) };
    if (!this.started) {
      this.bar.start(this.plannedNfe, 0, payload);
      this.started = true;
    }
    this.bar.update(nfe, payload);
  }

  stop(): void {
    if (this.bar !== null && this.started) this.bar.stop();
    this.started = false;
  }
}
