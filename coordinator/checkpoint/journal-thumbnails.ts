/**
 * The thumbnails a run's journal holds, for the live view: line r of journal.jsonl is round r's
 * answers, and each scoring answer's samples (when the engine asked for thumbnails, as every run
 * folder's run does) follow its scores one for one, so the thumbnail of candidate c as round r scored
 * it is found without any state of the run. Lines are located once (an index of where each complete
 * line starts, extended as the journal grows, rebuilt if a resume cut it back) and a round's
 * thumbnails decoded on first use and kept for the few latest rounds asked for.
 *
 * For display only: a line is not checked against the manifest's checksum or MAC (a resume does that),
 * and nothing of it reaches a decision. A line past 64 MiB (a vector model's samples are their own
 * "thumbnails") is not decoded.
 */
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CandidateId, CommandResult, FetchedSample } from '../../proto/commands.js';
import { JOURNAL_FILE } from './checkpoint-store.js';
import { lowerTensors } from './journal-tensors.js';
import { TurnQueue } from '../../async/timeouts-and-turns.js';

const MAX_LINE_BYTES = 64 * 2 ** 20;
/** Decoded rounds kept, at most this many and this many bytes of samples (the newest one always). */
const ROUNDS_KEPT = 8;
const BYTES_KEPT = 64 * 2 ** 20;
const SCAN_CHUNK = 1 << 20;

export class JournalThumbnails {
  /** Byte offset where each complete line starts, and where the scanned part ends. */
  private starts: number[] = [];
  private scanned = 0;
  private readonly rounds = new Map<number, { readonly samples: Map<CandidateId, FetchedSample>; readonly bytes: number }>();
  private bytes = 0;
  private readonly file: string;
  /** One scan of the file at a time (two would index its lines twice). */
  private readonly scans = new TurnQueue();

  constructor(folder: string) {
    this.file = join(folder, JOURNAL_FILE);
  }

  /**
   * The thumbnail of `candidate` as round `round` scored it; null when the journal has none. A round
   * whose line is not written yet (it is written while the next round runs) is waited for up to
   * `waitMs`.
   */
  async get(round: number, candidate: CandidateId, waitMs = 0): Promise<FetchedSample | null> {
    let samples = this.rounds.get(round)?.samples;
    if (samples === undefined) {
      const until = performance.now() + waitMs;
      let decoded = await this.decode(round);
      while (decoded === null && round + 1 >= this.starts.length && performance.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        decoded = await this.decode(round);
      }
      if (decoded === null) return null;
      samples = decoded;
      let bytes = 0;
      for (const sample of decoded.values()) bytes += sample.data.byteLength;
      this.rounds.set(round, { samples, bytes });
      this.bytes += bytes;
      while (this.rounds.size > 1 && (this.rounds.size > ROUNDS_KEPT || this.bytes > BYTES_KEPT)) {
        const oldest = this.rounds.keys().next().value!;
        this.bytes -= this.rounds.get(oldest)!.bytes;
        this.rounds.delete(oldest);
      }
    }
    return samples.get(candidate) ?? null;
  }

  /** Every round's scored candidates, by round (a finished run's view without an event log). */
  async scoresByRound(): Promise<{ readonly round: number; readonly scores: CommandResult['scores'] }[]> {
    await this.index();
    const out: { round: number; scores: CommandResult['scores'] }[] = [];
    for (let round = 0; round + 1 < this.starts.length; round++) {
      const entry = await this.entry(round);
      if (entry !== null) out.push({ round, scores: entry.results.flatMap((r) => r.scores) });
    }
    return out;
  }

  private async decode(round: number): Promise<Map<CandidateId, FetchedSample> | null> {
    const entry = await this.entry(round);
    if (entry === null) return null;
    const samples = new Map<CandidateId, FetchedSample>();
    for (const result of entry.results) {
      if (result.samples.length !== result.scores.length) continue;
      result.scores.forEach((score, k) => samples.set(score.id, result.samples[k]!));
    }
    return samples;
  }

  /** Round `round`'s journal entry, or null when its line is not (completely) there. */
  private async entry(round: number): Promise<{ readonly results: readonly CommandResult[] } | null> {
    if (round + 1 >= this.starts.length) await this.index();
    if (round + 1 >= this.starts.length) return null;
    const from = this.starts[round]!;
    const length = this.starts[round + 1]! - from;
    if (length > MAX_LINE_BYTES) return null;
    const handle = await open(this.file, 'r');
    let text: string;
    try {
      const bytes = Buffer.alloc(length);
      await handle.read(bytes, 0, length, from);
      text = bytes.toString('utf8');
    } finally {
      await handle.close();
    }
    try {
      const line = JSON.parse(text) as { round?: unknown; body: string; tensors: string[] };
      if (line.round !== round) return null;
      const tensors = line.tensors.map((b64) => {
        const bytes = Buffer.from(b64, 'base64');
        const out = new Float32Array(bytes.length / 4);
        new Uint8Array(out.buffer).set(bytes);
        return out;
      });
      return lowerTensors(line.body, tensors) as { results: CommandResult[] };
    } catch {
      return null;
    }
  }

  /** Extends the line index to the journal's complete lines (starts again if the file got shorter). */
  private index(): Promise<void> {
    return this.scans.run(() => this.scan());
  }

  private async scan(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.file)).size;
    } catch {
      return;
    }
    if (size < this.scanned) {
      this.starts = [];
      this.scanned = 0;
      this.rounds.clear();
      this.bytes = 0;
    }
    if (this.starts.length === 0) this.starts.push(0);
    if (size === this.scanned) return;
    const handle = await open(this.file, 'r');
    try {
      const chunk = Buffer.alloc(SCAN_CHUNK);
      let at = this.scanned;
      while (at < size) {
        const { bytesRead } = await handle.read(chunk, 0, Math.min(SCAN_CHUNK, size - at), at);
        if (bytesRead === 0) break;
        for (let i = chunk.indexOf(10); i >= 0 && i < bytesRead; i = chunk.indexOf(10, i + 1)) this.starts.push(at + i + 1);
        at += bytesRead;
      }
      this.scanned = at;
    } finally {
      await handle.close();
    }
  }
}
