/**
 * Worker membership in a NATS KV bucket: each worker keeps an entry fresh with heartbeats and deletes
 * it when it drains. NATS 2.9 (Debian's) ignores per-key TTLs and sends watchers nothing when a bucket
 * TTL expires a key, so `sweep` removes stale entries and announces them as lost.
 *
 * What is in the bucket is whatever anyone allowed to write it put there, so it is judged, not
 * trusted: an entry over MAX_ENTRY_BYTES or not a Member is never listed (and is reported by bucket and
 * key, never thrown), and staleness is judged by the time the NATS server stored the entry, not by the
 * heartbeat time written in it: an entry claiming a heartbeat in 2099 goes stale like any other once
 * its writer stops writing. (Who may write which bucket is the server's permissions:
 * docs/cluster-security.md.)
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { createBucketOnce } from './create-jetstream-bucket.js';
import { succeedsWithin } from '../async/timeouts-and-turns.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';
import { publishWorkerEvent } from './events.js';
import { memberFromJson, memberToJson, type MemberEntry } from '../proto/coordinator-messages.js';

export const WORKERS_BUCKET = 'evosearch-workers';
/** Coordinator services register the same way, so clients find them. */
export const COORDINATORS_BUCKET = 'evosearch-coordinators';
/** How often a worker refreshes its entry, and after how long without one it counts as lost. */
export const HEARTBEAT_MS = 2000;
export const STALE_AFTER_MS = 3 * HEARTBEAT_MS;
/** The most an entry may hold: a Member is a few hundred bytes; anything larger is not one. */
export const MAX_ENTRY_BYTES = 4096;

/** A member's entry: the Member message of proto/coordinator.proto, stored as its proto3 JSON. */
export type WorkerEntry = MemberEntry;

/** A registry bucket to write to, made if it is not there yet. */
function bucket(nc: NatsConnection, name: string): Promise<KV> {
  return createBucketOnce(() => new Kvm(nc).create(name, { history: 1 }));
}

/** A registry bucket that could not be read or cleaned: names the bucket, and the server's reason. */
export class RegistryError extends EvoSearchError {
  readonly code: ErrorCode = 'unavailable';
  override readonly name = 'RegistryError';
  constructor(readonly bucket: string, what: string, options: { cause: unknown }) {
    const reason = (options.cause as Error).message;
    super(`NATS KV bucket ${bucket}: ${what} (${reason}${/Permissions Violation/.test(reason) ? '; what this NATS user may do is the server\'s configuration: docs/cluster-security.md' : ''})`, options);
  }
}

/** A KV key from a worker id: subject tokens allow letters, digits, '-', '_' and '='. */
export function workerKey(id: string): string {
  return id.replace(/[^A-Za-z0-9_=-]/g, '_');
}

/** The worker's side: register, keep the entry fresh, deregister. */
export class WorkerRegistration {
  private timer: NodeJS.Timeout | null = null;
  /** Told each heartbeat's outcome (null: stored), e.g. the process's readiness (cluster/registration-readiness.ts). */
  private readonly heartbeatListeners = new Set<(error: Error | null) => void>();

  private constructor(private readonly nc: NatsConnection, private readonly kv: KV, private entry: WorkerEntry, private readonly heartbeatMs: number, private readonly announce: boolean) {}

  /** Registers a worker (or, with `bucketName` COORDINATORS_BUCKET, a coordinator: no worker events). */
  static async register(nc: NatsConnection, entry: Omit<WorkerEntry, 'startedAt' | 'heartbeatAt'>, heartbeatMs = HEARTBEAT_MS, bucketName = WORKERS_BUCKET): Promise<WorkerRegistration> {
    const now = new Date().toISOString();
    const announce = bucketName === WORKERS_BUCKET;
    const registration = new WorkerRegistration(nc, await bucket(nc, bucketName), { ...entry, startedAt: now, heartbeatAt: now }, heartbeatMs, announce);
    await registration.beat();
    if (announce) publishWorkerEvent(nc, 'joined', { id: entry.id, address: entry.address, model: entry.model, build: entry.build });
    registration.timer = setInterval(() => void registration.beat().then(() => registration.told(null), (error: Error) => registration.told(error)), heartbeatMs);
    registration.timer.unref();
    return registration;
  }

  /** `listener` is told the outcome of every heartbeat from now on (null: stored); the function returned stops that. */
  onHeartbeat(listener: (error: Error | null) => void): () => void {
    this.heartbeatListeners.add(listener);
    return () => this.heartbeatListeners.delete(listener);
  }

  private told(error: Error | null): void {
    // A deregistered entry's last heartbeat in flight says nothing about the process any more.
    if (this.timer === null) return;
    for (const listener of [...this.heartbeatListeners]) listener(error);
  }

  private async beat(): Promise<void> {
    this.entry = { ...this.entry, heartbeatAt: new Date().toISOString() };
    await this.kv.put(workerKey(this.entry.id), JSON.stringify(memberToJson(this.entry)));
  }

  /** Removes the entry (within 2 s: with NATS down, the sweep will find it stale instead). */
  async deregister(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (!(await succeedsWithin(this.kv.delete(workerKey(this.entry.id)), 2000))) return;
    if (this.announce) publishWorkerEvent(this.nc, 'left', { id: this.entry.id, address: this.entry.address });
    await this.nc.flush().catch(() => undefined);
  }
}

/** An entry of a registry bucket that is not listed, because it cannot be a member, and why. */
export interface SkippedEntry {
  readonly bucket: string;
  readonly key: string;
  readonly reason: string;
}

/** How every warning names a skipped entry: its bucket and key first. */
export function describeSkippedEntry(entry: SkippedEntry): string {
  return `${entry.bucket} key ${entry.key}: ${entry.reason}`;
}

export interface RegistryReadOptions {
  /** The registry: WORKERS_BUCKET (default) or COORDINATORS_BUCKET. */
  readonly bucket?: string;
  /** Older than this since the server stored it (ms), an entry is stale. Default STALE_AFTER_MS. */
  readonly staleAfterMs?: number;
  /** Told each entry that is not listed because it is not a Member; a read never fails for one. */
  readonly onSkip?: (entry: SkippedEntry) => void;
}

/** The coordinator's side: who is there (live members, by id), and clearing out who is gone. */
export async function liveWorkers(nc: NatsConnection, options: RegistryReadOptions = {}): Promise<WorkerEntry[]> {
  return (await liveMembers(nc, options)).map((e) => e.member);
}

/** The live members with their keys, by id. */
export async function liveMembers(nc: NatsConnection, options: RegistryReadOptions = {}): Promise<StoredMember[]> {
  const { entries, unusable } = await readBucket(nc, options.bucket ?? WORKERS_BUCKET);
  for (const { revision: _revision, ...entry } of unusable) options.onSkip?.(entry);
  const now = Date.now();
  return entries.filter((e) => now - e.storedAt <= (options.staleAfterMs ?? STALE_AFTER_MS)).sort((a, b) => a.member.id.localeCompare(b.member.id));
}

/**
 * Removes stale entries of the workers' bucket and publishes worker.lost for each, and removes entries
 * that are not a Member (told to `onSkip` as they go; not announced: they never were workers). Each is
 * purged only up to the revision judged, so a heartbeat stored meanwhile survives. Returns the stale
 * members.
 */
export async function sweepStaleWorkers(nc: NatsConnection, options: Omit<RegistryReadOptions, 'bucket'> = {}): Promise<WorkerEntry[]> {
  const { entries, unusable, jsm } = await readBucket(nc, WORKERS_BUCKET);
  const now = Date.now();
  const stale = entries.filter((e) => now - e.storedAt > (options.staleAfterMs ?? STALE_AFTER_MS));
  const purge = async (entry: { readonly key: string; readonly revision: number }) => {
    try {
      await jsm.streams.purge(`KV_${WORKERS_BUCKET}`, { filter: `$KV.${WORKERS_BUCKET}.${entry.key}`, seq: entry.revision + 1 });
    } catch (error) {
      throw new RegistryError(WORKERS_BUCKET, `cannot remove key ${entry.key}`, { cause: error });
    }
  };
  for (const { revision, ...entry } of unusable) {
    options.onSkip?.(entry);
    await purge({ key: entry.key, revision });
  }
  for (const entry of stale) await purge(entry);
  for (const { member, storedAt } of stale) publishWorkerEvent(nc, 'lost', { id: member.id, address: member.address, lastHeartbeat: new Date(storedAt).toISOString() });
  return stale.map((e) => e.member);
}

/** A Member entry as read: its key and revision, and when the NATS server stored it (ms since the epoch, the server's clock). */
export interface StoredMember {
  readonly key: string;
  readonly revision: number;
  readonly member: WorkerEntry;
  readonly storedAt: number;
}

interface BucketRead {
  readonly entries: StoredMember[];
  readonly unusable: (SkippedEntry & { readonly revision: number })[];
  readonly jsm: JetStreamManager;
}

/**
 * Every entry of the bucket: the Members, and those that cannot be one (too large, not JSON, not a
 * Member, an address no one can dial), with why. A bucket that does not exist yet has none (reading
 * makes nothing: a reader may not be allowed to). The keys come from the bucket's stream info (one
 * request with a reply), not from `kv.keys()`: that iterator waits for a consumer's last message, and
 * when the deliveries outran its subscription (a loaded machine, heartbeats arriving) it never ended:
 * a client hung with no CPU in the test suite. A RegistryError naming the bucket when it cannot be read.
 */
async function readBucket(nc: NatsConnection, name: string): Promise<BucketRead> {
  try {
    const jsm = await jetstreamManager(nc);
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(`KV_${name}`, { subjects_filter: '>' });
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return { entries: [], unusable: [], jsm };
      throw error;
    }
    const kv = await new Kvm(nc).open(name, { allow_direct: info.config.allow_direct === true });
    return { ...(await readEntries(kv, name, info)), jsm };
  } catch (error) {
    throw new RegistryError(name, 'cannot read it', { cause: error });
  }
}

async function readEntries(kv: KV, name: string, info: StreamInfo): Promise<Omit<BucketRead, 'jsm'>> {
  const prefix = `$KV.${name}.`;
  const keys = Object.keys(info.state.subjects ?? {}).filter((subject) => subject.startsWith(prefix)).map((subject) => subject.slice(prefix.length));
  const entries: StoredMember[] = [];
  const unusable: (SkippedEntry & { readonly revision: number })[] = [];
  for (const key of keys) {
    const e = await kv.get(key);
    if (e === null || e.operation !== 'PUT' || e.length === 0) continue;
    const why = (reason: string) => unusable.push({ bucket: name, key, reason, revision: e.revision });
    if (e.length > MAX_ENTRY_BYTES) {
      why(`${e.length} bytes, more than the ${MAX_ENTRY_BYTES} a Member entry may hold`);
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(e.string());
    } catch {
      // Not echoed: its bytes could be anything, a terminal's escape codes included.
      why(`not JSON (${e.length} bytes), so not a Member entry`);
      continue;
    }
    let member: WorkerEntry;
    try {
      member = memberFromJson(json);
    } catch (error) {
      why(`not a Member entry (${(error as Error).message})`);
      continue;
    }
    const port = Number(member.address.slice(member.address.lastIndexOf(':') + 1));
    if (!(port >= 1 && port <= 65535)) {
      why(`not a Member entry (Member.address ${JSON.stringify(member.address)}: port ${port} is not 1 to 65535)`);
      continue;
    }
    entries.push({ key, revision: e.revision, member, storedAt: e.created.getTime() });
  }
  return { entries, unusable };
}
