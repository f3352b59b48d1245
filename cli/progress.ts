import { SingleBar } from 'cli-progress';
import type { RoundReport } from '../coordinator/engine/run-search.js';
import { subscribeProgress, type SearchProgressEvent } from '../coordinator/engine/search-progress.js';

/** What one progress line shows. */
export interface ProgressLine {
  /** Where the run is: 'gen 2/4', 'round 3', or a phase ('opening models…'). */
  readonly where: string;
  /** NFEs spent so far (counted as the workers' answers come back) and planned for the run. */
  readonly nfe: number;
  readonly plannedNfe: number;
  /** Best guidance reward so far (null: nothing scored yet). */
  readonly best: number | null;
  /** Since the command started. */
  readonly elapsedMs: number;
  /** Time left (null: not known yet). */
  readonly etaMs: number | null;
}

/** The bar's width: never wider than this, and dropped before it would be narrower than the minimum. */
const MAX_BAR = 30;
const MIN_BAR = 8;

/**
 * Time left, by proportion: the work done so far took `elapsedMs`, and is `fraction` of all of it. Null
 * while nothing is done (or the fraction is not a number); 0 once all is.
 */
export function etaMs(elapsedMs: number, fraction: number): number | null {
  if (!Number.isFinite(elapsedMs) || !Number.isFinite(fraction) || fraction <= 0) return null;
  if (fraction >= 1) return 0;
  return (elapsedMs * (1 - fraction)) / fraction;
}

/** A duration, short: 0.4s, 12s, 3m05s, 1h02m. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s - 60 * m)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m - 60 * h).padStart(2, '0')}m`;
}

function formatReward(best: number | null): string {
  return best === null || !Number.isFinite(best) ? 'best -' : `best ${best.toFixed(4)}`;
}

/**
 * One progress line that fits `width` columns. What goes first as the width shrinks: the bar narrows
 * (to MIN_BAR; the separators around the text give it room before it goes), then goes; then the
 * separators; then the elapsed time, the position (generation) and the ETA. The NFE count and the
 * best reward always stay: when even they do not fit, the line is returned longer than `width` (the
 * terminal cuts it). Without `bar`, no bar is drawn at any width.
 */
export function formatProgressLine(line: ProgressLine, width: number, options: { readonly bar?: boolean } = {}): string {
  const grouped = (n: number) => Math.round(n).toLocaleString('en-US');
  const nfe = `${grouped(line.nfe)}/${grouped(line.plannedNfe)} NFE`;
  const nfeCompact = `${Math.round(line.nfe)}/${Math.round(line.plannedNfe)} NFE`;
  const best = formatReward(line.best);
  const elapsed = formatDuration(line.elapsedMs);
  const eta = `ETA ${line.etaMs === null ? '-' : formatDuration(line.etaMs)}`;
  const fits = (text: string) => text.length <= width;
  if (options.bar !== false) {
    const fraction = line.nfe / line.plannedNfe;
    const full = (bar: string) => `${line.where} |${bar}| ${nfe} | ${best} | ${elapsed} | ${eta}`;
    const barWidth = Math.min(MAX_BAR, width - full('').length);
    if (barWidth >= MIN_BAR) return full(drawBar(fraction, barWidth));
    // The narrowest bar keeps its place a little longer without the separators (it never widens again).
    const compact = `${line.where} ${drawBar(fraction, MIN_BAR)} ${nfe} ${best} ${elapsed} ${eta}`;
    if (fits(compact)) return compact;
  }
  const variants = [
    `${line.where} | ${nfe} | ${best} | ${elapsed} | ${eta}`,
    `${line.where} ${nfeCompact} ${best} ${elapsed} ${eta}`,
    `${line.where} ${nfeCompact} ${best} ${eta}`,
    `${nfeCompact} ${best} ${eta}`,
  ];
  return variants.find(fits) ?? `${nfeCompact} ${best}`;
}

function drawBar(fraction: number, width: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * width);
  return '\u2588'.repeat(full) + '\u2591'.repeat(width - full);
}

export interface ProgressDisplayOptions {
  /** Where the display goes (default process.stderr). A TTY gets a bar redrawn in place, anything else plain lines. */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Plain lines (not a TTY): at most one this often, milliseconds (default 5000). */
  readonly lineIntervalMs?: number;
}

/**
 * The run's progress on stderr: where it is (a phase such as 'opening models…', then the generation),
 * NFEs spent of those planned, the best reward, the elapsed time and an ETA. On a TTY it is a bar,
 * redrawn a few times a second to fit the terminal's width at that moment; on anything else a plain
 * line at start, at most one every few seconds, and one at the end. Between rounds it follows the
 * search's progress events (search-progress.ts): the NFE count moves as each worker's share of a
 * round comes back, not only once per round.
 *
 * Drawing is cli-progress's (cursor, line clearing, redraw timer, TTY or not); the line is ours
 * (formatProgressLine) so that it fits the width, and so is the ETA: cli-progress's averages the
 * rate over its last updates, which come a few per round here, and counts the time the models took
 * to open; ours is proportional over the search alone (etaMs).
 */
export class ProgressDisplay {
  private readonly bar: SingleBar | null;
  private readonly stream: NonNullable<ProgressDisplayOptions['stream']>;
  private readonly tty: boolean;
  private started = false;
  private unsubscribe: (() => void) | null = null;
  /** The search whose events this display follows (the first one seen after it was made). */
  private search: number | null = null;
  private startedAt = 0;
  /** When the search loop started, and the NFEs spent by then (a resumed run's replayed rounds). */
  private searchStartedAt: number | null = null;
  private nfeAtSearchStart = 0;
  private searchEnded = false;
  private where = 'starting…';
  private nfe = 0;
  private best: number | null = null;
  private etaAtCount: number | null = null;

  constructor(enabled: boolean, private readonly plannedNfe: number, options: ProgressDisplayOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.bar = enabled
      ? new SingleBar({
          format: (_options, params) => this.render(params.maxWidth),
          stream: this.stream as NodeJS.WritableStream,
          hideCursor: true,
          linewrap: false,
          fps: 5,
          // A TTY keeps its last bar; plain lines need no blank line after the last one.
          clearOnComplete: !this.tty,
          noTTYOutput: true,
          notTTYSchedule: options.lineIntervalMs ?? 5000,
        })
      : null;
    if (this.bar !== null) this.unsubscribe = subscribeProgress((event) => this.onEvent(event));
  }

  /** Shows the display at once, in a phase before the search (e.g. 'opening models…'). */
  begin(phase: string): void {
    this.where = phase;
    this.ensureStarted();
  }

  /** A finished round (the run's onRound). */
  update(report: RoundReport): void {
    // Without the search's events (none seen yet), the clock of the ETA starts at the first round's end.
    if (this.searchStartedAt === null) this.markSearchStart(report.counters.nfe);
    this.countNfe(report.counters.nfe);
    this.best = report.progress.best?.reward ?? this.best;
    this.where = generationText(report.progress.generation, report.progress.generations);
    this.redraw();
  }

  /** Progress from a coordinator's round events (round number instead of generation). */
  showRound(nfe: number, round: number, best: number | null): void {
    if (this.searchStartedAt === null) this.markSearchStart(0);
    this.countNfe(nfe);
    this.best = best ?? this.best;
    this.where = `round ${round + 1}`;
    this.redraw();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.searchEnded) this.where = 'done';
    if (this.bar !== null && this.started) this.bar.stop();
    this.started = false;
  }

  private onEvent(event: SearchProgressEvent): void {
    if (this.search === null) this.search = event.search;
    if (event.search !== this.search) return;
    switch (event.kind) {
      case 'search-start':
        this.markSearchStart(event.nfe);
        this.countNfe(event.nfe);
        this.where = generationText(event.generation + 1, event.generations);
        break;
      case 'round-start':
        if (this.searchStartedAt === null) this.markSearchStart(event.nfe);
        this.countNfe(event.nfe);
        this.where = generationText(event.generation + 1, event.generations);
        break;
      case 'work':
        this.countNfe(event.nfe);
        break;
      case 'round-end':
        this.countNfe(event.nfe);
        this.best = event.best ?? this.best;
        break;
      case 'search-end':
        this.countNfe(event.nfe);
        this.searchEnded = true;
        this.where = 'writing files…';
        break;
    }
    this.redraw();
  }

  private markSearchStart(nfe: number): void {
    this.searchStartedAt = Date.now();
    this.nfeAtSearchStart = nfe;
  }

  private ensureStarted(): void {
    if (this.bar === null || this.started) return;
    this.startedAt = Date.now();
    this.started = true;
    this.bar.start(this.plannedNfe, this.nfe);
  }

  private redraw(): void {
    if (this.bar === null) return;
    this.ensureStarted();
    // The format function reads this object's state; the value only wakes cli-progress's redraw.
    this.bar.update(this.nfe);
  }

  /** The current line for a width (cli-progress's maxWidth: the terminal's columns, read at each draw). */
  private render(maxWidth: number): string {
    const now = Date.now();
    const line: ProgressLine = {
      where: this.where,
      nfe: this.nfe,
      plannedNfe: this.plannedNfe,
      best: this.best,
      elapsedMs: now - this.startedAt,
      etaMs: this.searchEnded ? 0 : this.etaAtCount,
    };
    // One column spare: a line that fills the last column leaves some terminals' cursor on the next line.
    return this.tty ? formatProgressLine(line, Math.max(1, maxWidth - 1)) : formatProgressLine(line, Infinity, { bar: false });
  }

  /**
   * The ETA as of the latest NFE count, kept until the next one: between counts the time left is not
   * known any better (a count comes as each worker's share of a round comes back).
   */
  private countNfe(nfe: number): void {
    if (nfe <= this.nfe) return;
    this.nfe = nfe;
    if (this.searchStartedAt === null) return;
    const searchNfe = this.plannedNfe - this.nfeAtSearchStart;
    this.etaAtCount = searchNfe > 0 ? etaMs(Date.now() - this.searchStartedAt, (this.nfe - this.nfeAtSearchStart) / searchNfe) : null;
  }
}

/** 'gen 2/4' (a count past the last, as some methods' final rounds report, shows as the last). */
function generationText(generation: number, generations: number): string {
  if (!(generations > 0)) return `gen ${Math.max(1, generation)}`;
  return `gen ${Math.min(Math.max(1, generation), generations)}/${generations}`;
}
