/**
 * A worker's states in one file, so a resumed run loads them instead of recomputing them from their
 * recipes. Where the file lives is its host's business (worker/snapshot-folder.ts): these functions take
 * a path and a label, the snapshot's name, which is all their errors show (a coordinator reads them). Layout: one JSON line naming each state and its arrays' lengths, then the float32 arrays
 * back to back (latent, solver memory, cached model output). The writer reports the file's sha256;
 * the checkpoint manifest keeps it, and the reader refuses a file that does not match.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CandidateId, SnapshotFile } from '../proto/commands.js';
import type { TrajectoryState } from './state-store.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import { writeFileDurableSync } from '../files/durable-write.js';

const SNAPSHOT_VERSION = 1;

interface Header {
  readonly version: number;
  readonly states: readonly { readonly id: CandidateId; readonly step: number; readonly latent: number; readonly previousX0: number; readonly cachedOutput: number }[];
}

/** A snapshot that cannot be used: names the snapshot and what is wrong. */
export class SnapshotError extends EvoSearchError {
  readonly code: ErrorCode = 'checkpoint';
  override readonly name = 'SnapshotError';
  constructor(readonly snapshot: string, detail: string, options?: { cause?: unknown }) {
    super(`snapshot ${snapshot}: ${detail}`, options);
  }
}

/** What the writer reports of a snapshot, but its name (the host's). */
export type WrittenSnapshot = Omit<SnapshotFile, 'name'>;

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Writes `states` to `file` durably (files/durable-write.ts: old file or new, never half); its folder exists. */
export function writeSnapshot(file: string, states: readonly (readonly [CandidateId, TrajectoryState])[]): WrittenSnapshot {
  const header: Header = {
    version: SNAPSHOT_VERSION,
    states: states.map(([id, s]) => ({ id, step: s.step, latent: s.latent.length, previousX0: s.memory.previousX0?.length ?? -1, cachedOutput: s.cachedOutput?.length ?? -1 })),
  };
  const parts: Buffer[] = [Buffer.from(`${JSON.stringify(header)}\n`)];
  for (const [, s] of states) {
    parts.push(bytesOf(s.latent));
    if (s.memory.previousX0) parts.push(bytesOf(s.memory.previousX0));
    if (s.cachedOutput) parts.push(bytesOf(s.cachedOutput));
  }
  const hash = createHash('sha256');
  let bytes = 0;
  for (const part of parts) {
    hash.update(part);
    bytes += part.length;
  }
  writeFileDurableSync(file, parts);
  return { ids: states.map(([id]) => id), bytes, sha256: hash.digest('hex') };
}

/** Reads the states of `ids` from `file` (the snapshot `label`) after checking it against `sha256`. */
export function readSnapshot(file: string, label: string, sha256: string, ids: readonly CandidateId[]): Map<CandidateId, TrajectoryState> {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // The code only: the system's message names the path, which is this worker's business.
    throw new SnapshotError(label, `cannot be read (${code === 'ENOENT' ? 'ENOENT: this worker has no such snapshot' : (code ?? 'unreadable')})`, { cause: error });
  }
  const actual = createHash('sha256').update(data).digest('hex');
  if (actual !== sha256) throw new SnapshotError(label, `checksum mismatch (the file is damaged or from another checkpoint)`);
  const newline = data.indexOf(0x0a);
  let header: Header;
  try {
    header = JSON.parse(data.subarray(0, newline).toString()) as Header;
  } catch (error) {
    throw new SnapshotError(label, 'its header is not a snapshot header (the file was not written by a worker)', { cause: error });
  }
  if (header.version !== SNAPSHOT_VERSION) throw new SnapshotError(label, `version ${header.version}, this release reads ${SNAPSHOT_VERSION}`);
  let offset = newline + 1;
  // Copied into fresh arrays: the file's buffer may put a float at any byte offset.
  const take = (length: number): Float32Array | null => {
    if (length < 0) return null;
    const out = new Float32Array(length);
    new Uint8Array(out.buffer).set(data.subarray(offset, offset + length * 4));
    offset += length * 4;
    return out;
  };
  const all = new Map<CandidateId, TrajectoryState>();
  for (const s of header.states) {
    const latent = take(s.latent)!;
    const previousX0 = take(s.previousX0);
    const cachedOutput = take(s.cachedOutput);
    all.set(s.id, { latent, step: s.step, memory: { previousX0 }, cachedOutput });
  }
  const wanted = new Map<CandidateId, TrajectoryState>();
  for (const id of ids) {
    const state = all.get(id);
    if (state === undefined) throw new SnapshotError(label, `holds no state for candidate ${id}`);
    wanted.set(id, state);
  }
  return wanted;
}
