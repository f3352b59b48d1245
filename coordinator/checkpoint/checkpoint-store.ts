/**
 * A run's checkpoint in its folder: `journal.jsonl`, one line per finished round (the workers'
 * answers, tensors as base64, each line with its sha256), and `checkpoint.json`, the manifest: the
 * plan, how many rounds are complete and each line's checksum. A round is appended and synced first,
 * then the manifest is replaced atomically (written aside, synced, renamed), the previous one kept as
 * `checkpoint.prev.json`. A torn or corrupted file is found by checksum, and the previous manifest
 * (one round less) is used with a warning.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { link, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunPlan } from '../../config/resolve-run-config.js';
import type { ComputeCounters, SnapshotFile } from '../../proto/commands.js';
import { liftTensors, lowerTensors } from '../../proto/tensor-frames.js';
import type { JournalEntry } from '../engine/run-search.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

/** Raise when the journal's meaning changes: a checkpoint of another version is refused, not misread. */
export const CHECKPOINT_VERSION = 1;

export const JOURNAL_FILE = 'journal.jsonl';
export const MANIFEST_FILE = 'checkpoint.json';
export const PREVIOUS_MANIFEST_FILE = 'checkpoint.prev.json';

export interface CheckpointManifest {
  readonly version: number;
  readonly runId: string;
  readonly updatedAt: string;
  readonly plan: RunPlan;
  /** Complete rounds in the journal, and the sha256 of each line. */
  readonly rounds: number;
  readonly lineChecksums: readonly string[];
  /** Byte length of the journal up to the last complete round (a torn tail beyond it is ignored). */
  readonly journalBytes: number;
  readonly spent: ComputeCounters;
  readonly best: { readonly candidate: number; readonly reward: number } | null;
  /** The workers' state files written after the last complete round, when snapshots are on and worked. */
  readonly snapshot?: { readonly round: number; readonly files: readonly SnapshotFile[] } | null;
  /** sha256 of this manifest without this field. */
  readonly checksum: string;
}

/** A checkpoint that cannot be used: names the file and what is wrong with it. */
export class CheckpointError extends EvoSearchError {
  readonly code: ErrorCode = 'checkpoint';
  override readonly name: string = 'CheckpointError';
  constructor(readonly file: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${detail}`, options);
  }
}

/** A checkpoint written by another checkpoint version: never read as if it were this one. */
export class CheckpointVersionError extends CheckpointError {
  override readonly name: string = 'CheckpointVersionError';
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function manifestChecksum(manifest: Omit<CheckpointManifest, 'checksum'>): string {
  return sha256(JSON.stringify(manifest));
}

function writeSynced(path: string, text: string, flags: 'w' | 'a'): void {
  const fd = openSync(path, flags);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `to` becomes what `from` is now, atomically; `from` stays. A hard link, or a synced copy where links fail. */
async function keepAside(from: string, to: string): Promise<void> {
  const aside = `${to}.tmp`;
  await rm(aside, { force: true });
  try {
    await link(from, aside);
  } catch {
    await writeSyncedAsync(aside, await readFile(from, 'utf8'), 'w');
  }
  await rename(aside, to);
}

/** writeSynced on libuv's threads: the run's thread stays free to drive the workers meanwhile. */
async function writeSyncedAsync(path: string, text: string, flags: 'w' | 'a'): Promise<void> {
  const file = await open(path, flags);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Appends rounds to a run folder's checkpoint as the run goes. */
export class CheckpointWriter {
  private readonly checksums: string[];
  private journalBytes: number;
  /** The append in flight: appends run one at a time, in the order they were asked for. */
  private tail: Promise<unknown> = Promise.resolve();
  /** A failed append leaves the files in an unknown state: no later round may be appended after it. */
  private failure: Error | null = null;

  /**
   * `resumed`: the manifest a resumed run continues from (its journal is kept and extended).
   * `mirror`: also called with each round's journal line and the manifest naming it (cluster runs).
   */
  constructor(
    private readonly folder: string,
    private readonly runId: string,
    private readonly plan: RunPlan,
    resumed?: CheckpointManifest,
    private readonly mirror?: (round: number, line: string, manifest: string) => void,
  ) {
    this.checksums = [...(resumed?.lineChecksums ?? [])];
    this.journalBytes = resumed?.journalBytes ?? 0;
    if (resumed === undefined) writeSynced(join(folder, JOURNAL_FILE), '', 'w');
    else truncateTo(join(folder, JOURNAL_FILE), resumed.journalBytes);
  }

  /**
   * Appends one round after those asked for before it. Resolves once the round is durable (journal
   * line synced, then the manifest naming it synced and renamed into place) with the bytes written and
   * the milliseconds from the start of the encoding to the rename; rejects, and refuses every later
   * round, if a write fails. The encoding starts on a later turn of the event loop, so a caller that
   * sends the next round's work right after asking gets it to the workers first.
   */
  append(entry: JournalEntry, spent: ComputeCounters, best: CheckpointManifest['best'], snapshot: readonly SnapshotFile[] | null = null): Promise<{ bytes: number; ms: number }> {
    const written = this.tail.then(async () => {
      if (this.failure !== null) throw new Error(`checkpoint: round ${this.checksums.length} not appended, an earlier append failed (${this.failure.message})`, { cause: this.failure });
      await new Promise((resolve) => setImmediate(resolve));
      try {
        return await this.write(entry, spent, best, snapshot);
      } catch (error) {
        this.failure = error as Error;
        throw error;
      }
    });
    this.tail = written.catch(() => undefined);
    return written;
  }

  private async write(entry: JournalEntry, spent: ComputeCounters, best: CheckpointManifest['best'], snapshot: readonly SnapshotFile[] | null): Promise<{ bytes: number; ms: number }> {
    const started = performance.now();
    const { json, tensors } = liftTensors(entry);
    const payload = { body: json, tensors: tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64')) };
    const checksum = sha256(JSON.stringify(payload));
    const line = `${JSON.stringify({ round: this.checksums.length, sha256: checksum, ...payload })}\n`;
    await writeSyncedAsync(join(this.folder, JOURNAL_FILE), line, 'a');
    this.checksums.push(checksum);
    this.journalBytes += Buffer.byteLength(line);
    const fields: Omit<CheckpointManifest, 'checksum'> = {
      version: CHECKPOINT_VERSION,
      runId: this.runId,
      updatedAt: new Date().toISOString(),
      plan: this.plan,
      rounds: this.checksums.length,
      lineChecksums: this.checksums,
      journalBytes: this.journalBytes,
      spent,
      best,
      snapshot: snapshot === null ? null : { round: this.checksums.length - 1, files: snapshot },
    };
    const manifest = JSON.stringify({ ...fields, checksum: manifestChecksum(fields) });
    const current = join(this.folder, MANIFEST_FILE);
    const previous = join(this.folder, PREVIOUS_MANIFEST_FILE);
    await writeSyncedAsync(`${current}.tmp`, manifest, 'w');
    // The previous manifest is linked aside and the new one renamed over the current, so checkpoint.json
    // always exists: moving it aside first left a moment without one, and a kill there left a folder
    // that `resume` refused.
    if (existsSync(current)) await keepAside(current, previous);
    await rename(`${current}.tmp`, current);
    this.mirror?.(this.checksums.length - 1, line, manifest);
    return { bytes: Buffer.byteLength(line) + Buffer.byteLength(manifest), ms: performance.now() - started };
  }
}

function truncateTo(path: string, bytes: number): void {
  const text = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
  writeSynced(path, text.subarray(0, bytes).toString(), 'w');
}

export interface LoadedCheckpoint {
  readonly manifest: CheckpointManifest;
  readonly journal: JournalEntry[];
  /** Set when the newest manifest was unusable and the previous one was used instead. */
  readonly warning: string | null;
}

/** Reads a run folder's last complete checkpoint, falling back to the previous one with a warning. */
export function readCheckpoint(folder: string): LoadedCheckpoint {
  const newest = join(folder, MANIFEST_FILE);
  if (!existsSync(newest)) throw new CheckpointError(newest, 'no checkpoint here (runs write one after every round; is this a run folder?)');
  try {
    return { ...load(folder, newest), warning: null };
  } catch (error) {
    if (!(error instanceof CheckpointError) || error instanceof CheckpointVersionError) throw error;
    const previous = join(folder, PREVIOUS_MANIFEST_FILE);
    if (!existsSync(previous)) throw error;
    try {
      return { ...load(folder, previous), warning: `${error.message}; resuming from the previous checkpoint (${PREVIOUS_MANIFEST_FILE}, one round earlier)` };
    } catch (second) {
      throw new CheckpointError(folder, `both checkpoints are unusable: ${error.message}; ${(second as Error).message}`, { cause: second });
    }
  }
}

function load(folder: string, file: string): { manifest: CheckpointManifest; journal: JournalEntry[] } {
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(readFileSync(file, 'utf8')) as CheckpointManifest;
  } catch (error) {
    throw new CheckpointError(file, `not readable JSON (${(error as Error).message})`, { cause: error });
  }
  if (manifest.version !== CHECKPOINT_VERSION) {
    throw new CheckpointVersionError(file, `checkpoint version ${manifest.version}, this evosearch reads version ${CHECKPOINT_VERSION}: resume it with the release that wrote it`);
  }
  const { checksum, ...fields } = manifest;
  if (manifestChecksum(fields) !== checksum) throw new CheckpointError(file, 'checksum mismatch (the manifest is corrupted)');
  const journalFile = join(folder, JOURNAL_FILE);
  const lines = existsSync(journalFile) ? readFileSync(journalFile).subarray(0, manifest.journalBytes).toString().split('\n').filter((l) => l !== '') : [];
  if (lines.length < manifest.rounds) throw new CheckpointError(journalFile, `holds ${lines.length} complete rounds, the manifest says ${manifest.rounds} (truncated)`);
  const journal = lines.slice(0, manifest.rounds).map((line, round) => {
    let parsed: { sha256: string; body: string; tensors: string[] };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch (error) {
      throw new CheckpointError(journalFile, `round ${round} is not readable JSON`, { cause: error });
    }
    const payload = { body: parsed.body, tensors: parsed.tensors };
    if (sha256(JSON.stringify(payload)) !== manifest.lineChecksums[round]) throw new CheckpointError(journalFile, `round ${round}: checksum mismatch (corrupted)`);
    const tensors = parsed.tensors.map((b64) => {
      const bytes = Buffer.from(b64, 'base64');
      const out = new Float32Array(bytes.length / 4);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    });
    return lowerTensors(parsed.body, tensors) as JournalEntry;
  });
  return { manifest, journal };
}
