/**
 * One run folder as the live view's source (`evosearch view <folder | run id>`): an embedded run that
 * another process is writing, a finished one, or a folder a coordinator serves. It reads only what the
 * folder holds:
 *
 *  - events.jsonl, the run's events (written by `evosearch run`/`resume`, run-event-log.ts, or by a
 *    coordinator for the runs it serves), followed as it grows (looked at twice a second while a page
 *    follows the run);
 *  - whether a process still writes the folder (its lock, .evosearch.lock, names a live process): a
 *    folder no one writes whose log has no last event was cut off (killed, crashed), and is shown
 *    interrupted, with the resume command;
 *  - a finished run without an event log (a release before it, or a folder downloaded from a
 *    coordinator, whose log stays there): its events are made from record.json, and its populations
 *    from the journal;
 *  - the journal for thumbnails (coordinator/checkpoint/journal-thumbnails.ts).
 *
 * The run is another process's, so it cannot be cancelled from here (the page says why).
 */
import { existsSync, readFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { FailureError } from '../../errors/evosearch-error.js';
import { isDurableTemporary } from '../../files/durable-write.js';
import { processAlive, readLockOwner } from '../../files/owner-lock.js';
import { LAST_EVENT_KINDS, runEventFromJson, runEventOf, type LineageNode, type RoundDetail, type TypedRunEvent } from '../../proto/coordinator-messages.js';
import type { RunPlan } from '../../config/run-plan.js';
import type { ScoredId } from '../../proto/commands.js';
import type { Cancellable, Following, RunListing, RunSource, ViewableRun } from '../../view/run-source.js';
import { MANIFEST_FILE } from '../checkpoint/checkpoint-store.js';
import { JournalThumbnails } from '../checkpoint/journal-thumbnails.js';
import { EVENTS_FILE, SERVED_FILE } from '../service/run-index.js';
import { servableRunFiles } from '../service/run-files.js';
import { DETAIL_LINEAGE, DETAIL_POPULATION } from './round-detail.js';
import { LOCK_FILE } from './run-folder-lock.js';
import type { RunRecord } from './run-record.js';

const RECORD_FILE = 'record.json';
/** How often a followed folder is looked at, milliseconds. */
const POLL_MS = 500;

export class FolderRunSource implements RunSource {
  readonly title: string;
  private events: TypedRunEvent[] = [];
  /** Bytes of events.jsonl read, and a line not yet complete. */
  private offset = 0;
  private partial = '';
  private readonly listeners = new Set<(event: TypedRunEvent) => void>();
  private timer: NodeJS.Timeout | null = null;
  private ended = false;
  private readonly journal: JournalThumbnails;

  private constructor(readonly folder: string, readonly runId: string) {
    this.title = `run folder ${folder}`;
    this.journal = new JournalThumbnails(folder);
  }

  /** The folder's run, read as far as it is written now; a folder that holds no run is an error naming it. */
  static async open(folder: string): Promise<FolderRunSource> {
    const has = (name: string) => existsSync(join(folder, name));
    if (![RECORD_FILE, MANIFEST_FILE, EVENTS_FILE, SERVED_FILE, LOCK_FILE].some(has)) throw new FailureError('run-folder', `${folder}: not a run folder (no record.json, checkpoint, events.jsonl or lock)`);
    const source = new FolderRunSource(folder, runIdOf(folder));
    await source.readEvents();
    await source.settle();
    return source;
  }

  isRunId(runId: string): boolean {
    return runId === this.runId;
  }

  list(): RunListing[] {
    // Looked at again in the background, so the next list says how the run stands now.
    if (!this.ended) void this.poll();
    return [this.listing()];
  }

  find(runId: string): ViewableRun | undefined {
    if (runId !== this.runId) return undefined;
    return {
      listing: () => this.listing(),
      cancellable: () => this.cancellable(),
      follow: (onEvent) => this.follow(onEvent),
      cancel: () => Promise.reject(new Error('not cancellable from here')),
      files: () => (existsSync(join(this.folder, RECORD_FILE)) && this.ended ? { files: servableRunFiles(this.folder, (name) => name === LOCK_FILE || name === SERVED_FILE || name === EVENTS_FILE || isDurableTemporary(name)) } : { refused: `run ${this.runId} has not finished; its folder is ${this.folder}` }),
      thumbnail: (round, candidate) => this.journal.get(round, candidate, this.ended ? 0 : 5000),
    };
  }

  /** Stops following the folder. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  private listing(): RunListing {
    const plan = planOf(this.folder);
    const started = this.events.find((e) => e.event === 'started');
    const last = this.events.at(-1);
    const state = this.ended ? (last !== undefined && LAST_EVENT_KINDS.has(last.event) ? last.event : 'interrupted') : 'running';
    const bests = this.events.flatMap((e) => (e.event === 'round' && e.payload.best !== undefined ? [e.payload.best] : e.event === 'finished' && e.payload.best !== undefined ? [e.payload.best.reward] : []));
    return {
      runId: this.runId,
      state,
      model: plan?.model ?? (started?.event === 'started' ? started.payload.model : '?'),
      method: plan?.method ?? (started?.event === 'started' ? started.payload.method : '?'),
      prompt: plan?.prompt ?? (started?.event === 'started' ? started.payload.prompt ?? null : null),
      submittedAt: this.events[0]?.at ?? null,
      best: bests.at(-1) ?? null,
    };
  }

  private cancellable(): Cancellable {
    if (this.ended) return { possible: false, why: `run ${this.runId} is ${this.listing().state}` };
    const owner = readLockOwner(join(this.folder, LOCK_FILE));
    const who = owner === null ? 'another process' : `process ${owner.pid} on ${owner.host}`;
    return { possible: false, why: `this run is written by ${who}, not by this view: stop it there (Ctrl-C or SIGTERM, after the round in flight), and \`evosearch resume ${this.folder}\` continues it` };
  }

  private follow(onEvent: (event: TypedRunEvent) => void): Following {
    const past = [...this.events];
    if (this.ended) return { past, ended: true, stop: () => undefined };
    const listener = (event: TypedRunEvent) => onEvent(event);
    this.listeners.add(listener);
    this.timer ??= setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
    return {
      past,
      ended: false,
      stop: () => {
        this.listeners.delete(listener);
        if (this.listeners.size === 0 && this.timer !== null) {
          clearInterval(this.timer);
          this.timer = null;
        }
      },
    };
  }

  private polling = false;

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const before = this.events.length;
      await this.readEvents();
      await this.settle();
      const fresh = this.events.slice(before);
      for (const event of fresh) for (const listener of [...this.listeners]) listener(event);
      if (this.ended) this.close();
    } finally {
      this.polling = false;
    }
  }

  /** Reads what events.jsonl gained (complete lines only; a line that is not an event is skipped). */
  private async readEvents(): Promise<void> {
    const file = join(this.folder, EVENTS_FILE);
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      return;
    }
    if (size <= this.offset) return;
    const handle = await open(file, 'r');
    let text: string;
    try {
      const bytes = Buffer.alloc(size - this.offset);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, this.offset);
      this.offset += bytesRead;
      text = this.partial + bytes.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        this.events.push(runEventFromJson(JSON.parse(line)));
      } catch {
        // A line of another release's kind, or damaged: not shown.
      }
    }
  }

  /**
   * Whether the run has ended: its last event says so, or nothing writes the folder any more (then a
   * finished run without a log gets its events from record.json, and a run cut off an interrupted one).
   */
  private async settle(): Promise<void> {
    if (this.ended) return;
    const last = this.events.at(-1);
    if (last !== undefined && LAST_EVENT_KINDS.has(last.event)) {
      this.ended = true;
      return;
    }
    if (writerAlive(this.folder)) return;
    // Read once more: the writer may have appended its last event and let go of the folder since.
    await this.readEvents();
    const now = this.events.at(-1);
    if (now !== undefined && LAST_EVENT_KINDS.has(now.event)) {
      this.ended = true;
      return;
    }
    const record = readJson<RunRecord>(join(this.folder, RECORD_FILE));
    if (record !== null) {
      if (!this.events.some((e) => e.event === 'round')) this.events = await eventsOfRecord(record, this.journal);
      else this.events.push(runEventOf('finished', finishedOf(record), record.runId, record.finishedAt));
    } else {
      const at = new Date().toISOString();
      this.events.push(runEventOf('interrupted', { error: 'no process writes this run folder any more and its run did not finish (its process was killed or crashed)', folder: this.folder, resume: `evosearch resume ${this.folder}` }, this.runId, at));
    }
    this.ended = true;
  }
}

/** Whether a process still holds the folder's lock: a live one of this host, or any of another (which cannot be checked). */
function writerAlive(folder: string): boolean {
  const owner = readLockOwner(join(folder, LOCK_FILE));
  if (owner === null) return false;
  return owner.host !== hostname() || processAlive(owner.pid);
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** The run's id: its record's, its checkpoint's, its index entry's, or its first event's; else the folder's name. */
function runIdOf(folder: string): string {
  for (const file of [RECORD_FILE, MANIFEST_FILE, SERVED_FILE]) {
    const id = readJson<{ runId?: unknown }>(join(folder, file))?.runId;
    if (typeof id === 'string' && id !== '') return id;
  }
  const events = join(folder, EVENTS_FILE);
  const first = existsSync(events) ? readFileSync(events, 'utf8').split('\n')[0] : undefined;
  const id = first ? (readJsonText<{ runId?: unknown }>(first)?.runId ?? null) : null;
  return typeof id === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(id) ? id : basename(folder).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128) || 'run';
}

function readJsonText<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

function planOf(folder: string): RunPlan | null {
  return readJson<{ plan?: RunPlan }>(join(folder, RECORD_FILE))?.plan ?? readJson<{ plan?: RunPlan }>(join(folder, MANIFEST_FILE))?.plan ?? readJson<{ plan?: RunPlan }>(join(folder, SERVED_FILE))?.plan ?? null;
}

function finishedOf(record: RunRecord) {
  return { ...(record.best !== null ? { best: { metrics: {}, ...record.best } } : {}), spent: record.spent, wallMs: record.wallMs, workers: record.workers };
}

/**
 * A finished run's events from its record: started, one round per round summary (the last scoring
 * round with its population from the journal, and the best's ancestry), finished.
 */
async function eventsOfRecord(record: RunRecord, journal: JournalThumbnails): Promise<TypedRunEvent[]> {
  const { plan } = record;
  const planned = plan.planned[plan.method].nfe;
  const events: TypedRunEvent[] = [runEventOf('started', { method: plan.method, model: plan.model, ...(plan.prompt !== undefined ? { prompt: plan.prompt } : {}), budgetNfe: plan.budgetNfe, plannedNfe: planned, workers: record.workers }, record.runId, record.startedAt)];
  const scored = await journal.scoresByRound().catch(() => []);
  const byRound = new Map(scored.map((s) => [s.round, s.scores]));
  const lastScoring = Math.max(-1, ...scored.filter((s) => s.scores.length > 0).map((s) => s.round));
  const generations = Math.max(1, ...record.rounds.map((r) => r.generation));
  const lastScoredIn = new Map<number, number>();
  for (const { round, scores } of scored) for (const s of scores) lastScoredIn.set(s.id, round);
  const best = record.best;
  let bestThumbnail: { round: number; candidate: number } | null = null;
  if (best !== null) for (const { round, scores } of scored) if (scores.some((s) => s.id === best.candidate && s.reward === best.reward)) bestThumbnail = { round, candidate: best.candidate };
  for (const [i, r] of record.rounds.entries()) {
    const scores: readonly ScoredId[] = i === lastScoring ? (byRound.get(i) ?? []) : [];
    const detail: RoundDetail = {
      generation: r.generation,
      generations,
      scored: r.scored,
      ...(r.populationMax !== null ? { populationMax: r.populationMax } : {}),
      ...(r.populationMean !== null ? { populationMean: r.populationMean } : {}),
      population: [...scores].sort((a, b) => b.reward - a.reward || a.id - b.id).slice(0, DETAIL_POPULATION).map((s) => {
        const c = record.candidates[s.id];
        return { id: s.id, reward: s.reward, metrics: s.metrics ?? {}, ...(c?.parents[0] !== undefined ? { parent: c.parents[0] } : {}), origin: c?.origin.op ?? 'init', generation: c?.generation ?? 0 };
      }),
      ...(i === record.rounds.length - 1 && best !== null ? { best: { metrics: {}, ...best } } : {}),
      lineage: i === record.rounds.length - 1 && best !== null ? lineageOf(record, best.candidate, bestThumbnail, lastScoredIn) : [],
      workers: [],
      lostWorkers: record.placement.lostWorkers,
      rebuiltStates: record.placement.rebuiltStates,
    };
    events.push(runEventOf('round', { round: r.round, label: r.label, ...(r.bestReward !== null ? { best: r.bestReward } : {}), nfe: r.counters.nfe, plannedNfe: planned, roundMs: Math.round(r.ms), detail }, record.runId, record.finishedAt));
  }
  events.push(runEventOf('finished', finishedOf(record), record.runId, record.finishedAt));
  return events;
}

function lineageOf(record: RunRecord, from: number, bestThumbnail: { round: number; candidate: number } | null, lastScoredIn: ReadonlyMap<number, number>): LineageNode[] {
  const chain = [];
  for (let id: number | undefined = from; id !== undefined && chain.length < DETAIL_LINEAGE; id = record.candidates[id]?.parents[0]) {
    const node = record.candidates[id];
    if (node === undefined) break;
    chain.push(node);
  }
  return chain.reverse().map((node) => {
    const thumbnail = node.id === from ? bestThumbnail : lastScoredIn.has(node.id) ? { round: lastScoredIn.get(node.id)!, candidate: node.id } : null;
    return { id: node.id, origin: node.origin.op, generation: node.generation, step: node.createdAt, ...(node.reward !== undefined ? { reward: node.reward } : {}), ...(thumbnail !== null ? { thumbnailRound: thumbnail.round, thumbnailCandidate: thumbnail.candidate } : {}) };
  });
}
