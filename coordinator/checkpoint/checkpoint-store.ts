/**
 * A run's checkpoint in its folder: `journal.jsonl`, one line per finished round (the workers'
 * answers, tensors as base64, each line with its sha256), and `checkpoint.json`, the manifest: the
 * plan, how many rounds are complete and each line's checksum.
 *
 * With a cluster key (cluster-key.ts) every sha256 is an HMAC-SHA256 under the key instead, and the
 * manifest is of version 2 and names the key's id: a checkpoint edited by anyone without the key (in
 * the NATS object store, say, with its checksums recomputed) no longer verifies, and is refused. A
 * reader with a key refuses unkeyed checkpoints too (anyone can write one); a reader without a key
 * refuses keyed ones, saying to pass the key. Without a key everything is as it was: version 1,
 * sha256, readable by every release. A round is appended and synced first,
 * then the previous manifest is hard-linked aside as `checkpoint.prev.json` and the new one replaces
 * `checkpoint.json` through files/durable-write.ts (a synced file renamed over it, the folder synced),
 * so at every moment both names hold complete manifests.
 *
 * Reading takes the newest usable manifest: `checkpoint.json`, then `checkpoint.prev.json` (one round
 * less). One that is missing, empty, truncated, not JSON, not a manifest (`{}`), fails its checksum or
 * names journal lines that are not there is skipped with a warning naming the file and why; only a
 * manifest that names another checkpoint version stops the read (resume it with its release); when none
 * is usable the error lists every file tried and why each failed.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunPlan } from '../../config/resolve-run-config.js';
import { CLUSTER_KEY_ENV, processClusterKey, type ClusterKey } from './cluster-key.js';
import type { ComputeCounters, SnapshotFile } from '../../proto/commands.js';
import { liftTensors, lowerTensors } from './journal-tensors.js';
import type { JournalEntry } from '../engine/run-search.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';
import { TurnQueue } from '../../async/timeouts-and-turns.js';
import { appendFileDurable, replaceWithLink, writeFileDurable, writeFileDurableSync } from '../../files/durable-write.js';

/**
 * Raise when the journal's meaning changes: a checkpoint of another version is refused, not misread.
 * Version 1 is sealed with sha256s (no cluster key), version 2 with HMAC-SHA256s under a cluster key;
 * this release reads and writes both.
 */
export const UNKEYED_CHECKPOINT_VERSION = 1;
export const KEYED_CHECKPOINT_VERSION = 2;
const CHECKPOINT_VERSIONS: readonly number[] = [UNKEYED_CHECKPOINT_VERSION, KEYED_CHECKPOINT_VERSION];

export const JOURNAL_FILE = 'journal.jsonl';
export const MANIFEST_FILE = 'checkpoint.json';
export const PREVIOUS_MANIFEST_FILE = 'checkpoint.prev.json';
/** The manifests a run folder keeps, newest first: a resume uses the first usable one. */
export const MANIFEST_GENERATIONS: readonly string[] = [MANIFEST_FILE, PREVIOUS_MANIFEST_FILE];

export interface CheckpointManifest {
  readonly version: number;
  /** Version 2: the key whose HMAC-SHA256s seal the manifest and its lines (version 1: absent, sha256s). */
  readonly authentication?: ManifestAuthentication;
  readonly runId: string;
  readonly updatedAt: string;
  readonly plan: RunPlan;
  /** Complete rounds in the journal, and the sha256 (keyed: HMAC-SHA256) of each line. */
  readonly rounds: number;
  readonly lineChecksums: readonly string[];
  /** Byte length of the journal up to the last complete round (a torn tail beyond it is ignored). */
  readonly journalBytes: number;
  readonly spent: ComputeCounters;
  readonly best: { readonly candidate: number; readonly reward: number } | null;
  /** The workers' state files written after the last complete round, when snapshots are on and worked. */
  readonly snapshot?: { readonly round: number; readonly files: readonly SnapshotFile[] } | null;
  /** sha256 (keyed: HMAC-SHA256) of this manifest without this field. */
  readonly checksum: string;
}

export interface ManifestAuthentication {
  readonly algorithm: 'hmac-sha256';
  /** ClusterKey.id of the key that wrote it. */
  readonly keyId: string;
}

/** A checkpoint that cannot be used: names the file and what is wrong with it. */
export class CheckpointError extends EvoSearchError {
  readonly code: ErrorCode = 'checkpoint';
  override readonly name: string = 'CheckpointError';
  constructor(readonly file: string, readonly detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${detail}`, options);
  }
}

/** A checkpoint written by another checkpoint version: never read as if it were this one. */
export class CheckpointVersionError extends CheckpointError {
  override readonly name: string = 'CheckpointVersionError';
}

/** A checkpoint written with a cluster key, read without one: the read stops and says to pass the key. */
export class CheckpointKeyError extends CheckpointError {
  override readonly name: string = 'CheckpointKeyError';
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** What seals a journal line or a manifest: its sha256 without a key, its HMAC-SHA256 under one. */
const seal = (text: string, key: ClusterKey | null) => (key === null ? sha256(text) : key.mac(text));

function manifestChecksum(manifest: Omit<CheckpointManifest, 'checksum'>, key: ClusterKey | null): string {
  return seal(JSON.stringify(manifest), key);
}

/** Appends rounds to a run folder's checkpoint as the run goes. */
export class CheckpointWriter {
  private readonly checksums: string[];
  private journalBytes: number;
  /** Appends run one at a time, in the order they were asked for. */
  private readonly appends = new TurnQueue();
  /** A failed append leaves the files in an unknown state: no later round may be appended after it. */
  private failure: Error | null = null;
  /**
   * What the next write keeps as checkpoint.prev.json: the manifest now in checkpoint.json (linked
   * aside), or, for a resume whose checkpoint.json was not the manifest it continues from (damaged,
   * missing), that manifest itself: linking the damaged one aside would leave no usable manifest at all
   * until the new one is in place.
   */
  private keep: { readonly kind: 'current' } | { readonly kind: 'text'; readonly text: string };

  /**
   * `resumed`: the manifest a resumed run continues from (its journal is kept and extended).
   * `mirror`: also called with each round's journal line and the manifest naming it (cluster runs).
   * `key`: the cluster key that seals the checkpoint (default: the process's; none: sha256s).
   */
  constructor(
    private readonly folder: string,
    private readonly runId: string,
    private readonly plan: RunPlan,
    resumed?: CheckpointManifest,
    private readonly mirror?: (round: number, line: string, manifest: string) => void,
    private readonly key: ClusterKey | null = processClusterKey(),
  ) {
    // A journal sealed two ways would verify under neither: a resume continues with the key it was read with.
    if (resumed !== undefined && (resumed.authentication?.keyId ?? null) !== (key?.id ?? null)) {
      throw new CheckpointError(join(folder, MANIFEST_FILE), `cannot be continued with ${key === null ? 'no cluster key' : `cluster key ${key.id}`}: it was written with ${resumed.authentication === undefined ? 'none' : `key ${resumed.authentication.keyId}`}`);
    }
    this.checksums = [...(resumed?.lineChecksums ?? [])];
    this.journalBytes = resumed?.journalBytes ?? 0;
    if (resumed === undefined) writeFileDurableSync(join(folder, JOURNAL_FILE), '');
    else truncateTo(join(folder, JOURNAL_FILE), resumed.journalBytes);
    this.keep = resumed === undefined || holdsManifest(join(folder, MANIFEST_FILE), resumed.checksum) ? { kind: 'current' } : { kind: 'text', text: JSON.stringify(resumed) };
  }

  /**
   * Appends one round after those asked for before it. Resolves once the round is durable (journal
   * line synced, then the manifest naming it synced and renamed into place) with the bytes written and
   * the milliseconds from the start of the encoding to the rename; rejects, and refuses every later
   * round, if a write fails. The encoding starts on a later turn of the event loop, so a caller that
   * sends the next round's work right after asking gets it to the workers first.
   */
  append(entry: JournalEntry, spent: ComputeCounters, best: CheckpointManifest['best'], snapshot: readonly SnapshotFile[] | null = null): Promise<{ bytes: number; ms: number }> {
    return this.appends.run(async () => {
      if (this.failure !== null) throw new Error(`checkpoint: round ${this.checksums.length} not appended, an earlier append failed (${this.failure.message})`, { cause: this.failure });
      await new Promise((resolve) => setImmediate(resolve));
      try {
        return await this.write(entry, spent, best, snapshot);
      } catch (error) {
        this.failure = error as Error;
        throw error;
      }
    });
  }

  private async write(entry: JournalEntry, spent: ComputeCounters, best: CheckpointManifest['best'], snapshot: readonly SnapshotFile[] | null): Promise<{ bytes: number; ms: number }> {
    const started = performance.now();
    const { json, tensors } = liftTensors(entry);
    const payload = { body: json, tensors: tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength).toString('base64')) };
    const checksum = seal(JSON.stringify(payload), this.key);
    const line = `${JSON.stringify({ round: this.checksums.length, [this.key === null ? 'sha256' : 'hmacSha256']: checksum, ...payload })}\n`;
    await appendFileDurable(join(this.folder, JOURNAL_FILE), line);
    this.checksums.push(checksum);
    this.journalBytes += Buffer.byteLength(line);
    const fields: Omit<CheckpointManifest, 'checksum'> = {
      version: this.key === null ? UNKEYED_CHECKPOINT_VERSION : KEYED_CHECKPOINT_VERSION,
      ...(this.key === null ? {} : { authentication: { algorithm: 'hmac-sha256', keyId: this.key.id } }),
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
    const manifest = JSON.stringify({ ...fields, checksum: manifestChecksum(fields, this.key) });
    const current = join(this.folder, MANIFEST_FILE);
    const previous = join(this.folder, PREVIOUS_MANIFEST_FILE);
    // The previous manifest is linked aside and the new one renamed over the current, so checkpoint.json
    // always exists: moving it aside first left a moment without one, and a kill there left a folder
    // that `resume` refused.
    if (this.keep.kind === 'text') await writeFileDurable(previous, this.keep.text);
    else if (existsSync(current)) await replaceWithLink(current, previous);
    await writeFileDurable(current, manifest);
    this.keep = { kind: 'current' };
    this.mirror?.(this.checksums.length - 1, line, manifest);
    return { bytes: Buffer.byteLength(line) + Buffer.byteLength(manifest), ms: performance.now() - started };
  }
}

/** Cuts the journal back to `bytes` (a resume drops a torn tail and rounds past its manifest), durably. */
function truncateTo(path: string, bytes: number): void {
  const data = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
  if (data.length === bytes) return;
  writeFileDurableSync(path, data.subarray(0, bytes));
}

/** Whether `file` is a manifest with this checksum (the one a resume continues from). */
function holdsManifest(file: string, checksum: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { checksum?: unknown } | null)?.checksum === checksum;
  } catch {
    return false;
  }
}

/** A manifest a read passed over, and why. */
export interface SkippedManifest {
  readonly file: string;
  readonly reason: string;
}

export interface LoadedCheckpoint {
  readonly manifest: CheckpointManifest;
  readonly journal: JournalEntry[];
  /** The manifest file used. */
  readonly file: string;
  /** Newer manifests that were not usable, newest first. */
  readonly skipped: readonly SkippedManifest[];
  /** Set when a newer manifest was unusable and an older one was used instead: names each file and why. */
  readonly warning: string | null;
}

/**
 * Reads a run folder's newest usable checkpoint (MANIFEST_GENERATIONS, newest first), passing over
 * unusable manifests with a warning. A manifest of another checkpoint version is a
 * CheckpointVersionError, a keyed one read without `key` a CheckpointKeyError; no usable manifest at
 * all is a CheckpointError listing each file and why. `key`: the cluster key the checkpoint must be
 * sealed with (default: the process's; none: an unkeyed checkpoint).
 */
export function readCheckpoint(folder: string, key: ClusterKey | null = processClusterKey()): LoadedCheckpoint {
  const skipped: SkippedManifest[] = [];
  for (const name of MANIFEST_GENERATIONS) {
    const file = join(folder, name);
    let manifest: CheckpointManifest;
    let journal: JournalEntry[];
    try {
      manifest = parseManifest(file, key);
      journal = loadJournal(folder, manifest, key);
    } catch (error) {
      if (!(error instanceof CheckpointError) || error instanceof CheckpointVersionError || error instanceof CheckpointKeyError) throw error;
      skipped.push({ file, reason: error.file === file ? error.detail : `names journal rounds that are not intact (${error.message})` });
      continue;
    }
    const warning =
      skipped.length === 0
        ? null
        : `${skipped.map((s) => `${s.file}: ${s.reason}`).join('; ')}; resuming from ${name === PREVIOUS_MANIFEST_FILE ? 'the previous checkpoint ' : ''}(${name}, ${manifest.rounds} round${manifest.rounds === 1 ? '' : 's'} complete)`;
    return { manifest, journal, file, skipped, warning };
  }
  if (skipped.every((s) => s.reason === MISSING)) {
    throw new CheckpointError(join(folder, MANIFEST_FILE), `no checkpoint here (runs write one after every round; is this a run folder?); tried ${MANIFEST_GENERATIONS.join(', ')}`);
  }
  throw new CheckpointError(folder, `no usable checkpoint; tried ${skipped.map((s) => `${s.file}: ${s.reason}`).join('; ')}`);
}

const MISSING = 'missing';

/** The manifest in `file`, checked: a CheckpointError saying why it cannot be used otherwise. */
function parseManifest(file: string, key: ClusterKey | null): CheckpointManifest {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CheckpointError(file, code === 'ENOENT' ? MISSING : `cannot be read (${(error as Error).message})`, { cause: error });
  }
  return checkManifest(bytes, file, key);
}

/**
 * A manifest's bytes, checked as a resume checks them (`file` names the file or object they came
 * from; `key` is the cluster key it must be sealed with, or null): the manifest, or a CheckpointError
 * saying why it cannot be used.
 */
export function checkManifest(bytes: Uint8Array, file: string, key: ClusterKey | null): CheckpointManifest {
  if (bytes.length === 0) throw new CheckpointError(file, 'empty (0 bytes)');
  if (bytes.every((b) => b === 0 || b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09)) {
    throw new CheckpointError(file, `holds no data (${bytes.length} bytes, all zeros or blanks)`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new CheckpointError(file, `not readable JSON (${(error as Error).message}; ${bytes.length} bytes: truncated or overwritten)`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckpointError(file, `not a checkpoint manifest (JSON ${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value}, not an object)`);
  }
  const fields = value as Record<string, unknown>;
  if (!('version' in fields)) {
    throw new CheckpointError(file, `not a checkpoint manifest (${Object.keys(fields).length === 0 ? 'an empty object' : 'no version field'})`);
  }
  const version = fields.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw new CheckpointError(file, `not a checkpoint manifest (version ${JSON.stringify(version)} is not a checkpoint version)`);
  }
  if (!CHECKPOINT_VERSIONS.includes(version)) {
    // Every checkpoint version names its run and carries a checksum: a bare `{"version":2}` is damage, not a newer release's checkpoint.
    if (typeof fields.runId !== 'string' || typeof fields.checksum !== 'string') {
      throw new CheckpointError(file, `not a checkpoint manifest (version ${version}, but no ${typeof fields.runId !== 'string' ? 'runId' : 'checksum'})`);
    }
    throw new CheckpointVersionError(file, `checkpoint version ${version}, this evosearch reads versions ${UNKEYED_CHECKPOINT_VERSION} (unkeyed) and ${KEYED_CHECKPOINT_VERSION} (written with a cluster key): resume it with the release that wrote it`);
  }
  const manifest = value as CheckpointManifest;
  if (typeof manifest.checksum !== 'string') throw new CheckpointError(file, 'no checksum field (not a complete manifest)');
  checkSeal(manifest, file, key);
  const malformed = [
    typeof manifest.runId !== 'string' && 'runId',
    (typeof manifest.plan !== 'object' || manifest.plan === null) && 'plan',
    !(Number.isInteger(manifest.rounds) && manifest.rounds >= 0) && 'rounds',
    !(Array.isArray(manifest.lineChecksums) && manifest.lineChecksums.length === manifest.rounds) && 'lineChecksums',
    !(Number.isInteger(manifest.journalBytes) && manifest.journalBytes >= 0) && 'journalBytes',
  ].filter((f): f is string => f !== false);
  if (malformed.length > 0) throw new CheckpointError(file, `not a complete manifest (${malformed.join(', ')} missing or malformed)`);
  return manifest;
}

/**
 * Whether the manifest is sealed as `key` requires: its checksum recomputed (sha256, or HMAC-SHA256
 * under the key), and the kind of seal the one `key` makes. A CheckpointError naming `file` otherwise.
 */
function checkSeal(manifest: CheckpointManifest, file: string, key: ClusterKey | null): void {
  const { checksum, ...rest } = manifest;
  if (manifest.version === UNKEYED_CHECKPOINT_VERSION) {
    // Anyone can write an unkeyed checkpoint, so one is no proof of anything where a key is expected.
    if (key !== null) throw new CheckpointError(file, `not authenticated (checkpoint version ${UNKEYED_CHECKPOINT_VERSION}: sha256 checksums, no cluster key), and this evosearch has a cluster key (${key.source}): it was not written with this cluster's key; resume it without a cluster key only if you trust where it came from`);
    if (manifestChecksum(rest, null) !== checksum) throw new CheckpointError(file, 'checksum mismatch (the manifest is corrupted)');
    return;
  }
  const authentication = manifest.authentication;
  if (typeof authentication !== 'object' || authentication === null || authentication.algorithm !== 'hmac-sha256' || typeof authentication.keyId !== 'string') {
    throw new CheckpointError(file, `not a complete manifest (version ${manifest.version} names no hmac-sha256 authentication)`);
  }
  if (key === null) throw new CheckpointKeyError(file, `written with a cluster key (key id ${authentication.keyId}): pass that key with --cluster-key FILE or ${CLUSTER_KEY_ENV}`);
  if (manifestChecksum(rest, key) !== checksum) throw new CheckpointError(file, `${notSealedBy(key)}${authentication.keyId === key.id ? '' : ` (it names key id ${authentication.keyId})`}`);
}

/** Why a MAC does not verify under `key`, as every refusal of a keyed checkpoint says it. */
const notSealedBy = (key: ClusterKey) => `MAC does not verify with this cluster's key (${key.source}, key id ${key.id}): it was not written with this cluster's key, or was changed since`;

/** A journal line as the journal holds it. */
interface JournalLine {
  readonly body: string;
  readonly tensors: string[];
}

/**
 * Round `round`'s journal line, checked against the seal `manifest` names for it (`where` names the
 * file or object it came from; `key` as for checkManifest): the line, or a CheckpointError.
 */
export function checkJournalLine(line: string, round: number, manifest: CheckpointManifest, key: ClusterKey | null, where: string): JournalLine {
  let parsed: JournalLine;
  try {
    parsed = JSON.parse(line) as JournalLine;
  } catch (error) {
    throw new CheckpointError(where, `round ${round} is not readable JSON`, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray(parsed.tensors)) throw new CheckpointError(where, `round ${round} is not a journal line`);
  const payload = { body: parsed.body, tensors: parsed.tensors };
  if (seal(JSON.stringify(payload), key) !== manifest.lineChecksums[round]) throw new CheckpointError(where, `round ${round}: ${key === null ? 'checksum mismatch (corrupted)' : notSealedBy(key)}`);
  return payload;
}

/** The journal's rounds that `manifest` names, each checked against its checksum. */
function loadJournal(folder: string, manifest: CheckpointManifest, key: ClusterKey | null): JournalEntry[] {
  const journalFile = join(folder, JOURNAL_FILE);
  const lines = existsSync(journalFile) ? readFileSync(journalFile).subarray(0, manifest.journalBytes).toString().split('\n').filter((l) => l !== '') : [];
  if (lines.length < manifest.rounds) throw new CheckpointError(journalFile, `holds ${lines.length} complete rounds, the manifest says ${manifest.rounds} (truncated)`);
  const journal = lines.slice(0, manifest.rounds).map((line, round) => {
    const parsed = checkJournalLine(line, round, manifest, key, journalFile);
    const tensors = parsed.tensors.map((b64) => {
      const bytes = Buffer.from(b64, 'base64');
      const out = new Float32Array(bytes.length / 4);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    });
    try {
      return lowerTensors(parsed.body, tensors) as JournalEntry;
    } catch (error) {
      throw new CheckpointError(journalFile, `round ${round}: ${(error as Error).message}`, { cause: error });
    }
  });
  return journal;
}
