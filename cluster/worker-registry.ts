/**
 * Worker membership in a NATS KV bucket: each worker keeps an entry fresh with heartbeats and deletes
 * it when it drains. NATS 2.9 (Debian's) ignores per-key TTLs and sends watchers nothing when a bucket
 * TTL expires a key, so staleness is judged by the heartbeat time in the entry, and `sweep` removes
 * stale entries and announces them as lost.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { succeedsWithin } from '../async/timeouts-and-turns.js';
import { publishWorkerEvent } from './events.js';
import { memberFromJson, memberToJson, type MemberEntry } from '../proto/coordinator-messages.js';

export const WORKERS_BUCKET = 'evosearch-workers';
/** Coordinator services register the same way, so clients find them. */
export const COORDINATORS_BUCKET = 'evosearch-coordinators';
/** How often a worker refreshes its entry, and after how long without one it counts as lost. */
export const HEARTBEAT_MS = 2000;
export const STALE_AFTER_MS = 3 * HEARTBEAT_MS;

/** A member's entry: the Member message of proto/coordinator.proto, stored as its proto3 JSON. */
export type WorkerEntry = MemberEntry;

async function bucket(nc: NatsConnection, name = WORKERS_BUCKET): Promise<{ kv: KV; nc: NatsConnection; name: string }> {
  return { kv: await new Kvm(nc).create(name, { history: 1 }), nc, name };
}

/** A KV key from a worker id: subject tokens allow letters, digits, '-', '_' and '='. */
export function workerKey(id: string): string {
  return id.replace(/[^A-Za-z0-9_=-]/g, '_');
}

/** The worker's side: register, keep the entry fresh, deregister. */
export class WorkerRegistration {
  private timer: NodeJS.Timeout | null = null;

  private constructor(private readonly nc: NatsConnection, private readonly kv: KV, private entry: WorkerEntry, private readonly heartbeatMs: number, private readonly announce: boolean) {}

  /** Registers a worker (or, with `bucketName` COORDINATORS_BUCKET, a coordinator: no worker events). */
  static async register(nc: NatsConnection, entry: Omit<WorkerEntry, 'startedAt' | 'heartbeatAt'>, heartbeatMs = HEARTBEAT_MS, bucketName = WORKERS_BUCKET): Promise<WorkerRegistration> {
    const now = new Date().toISOString();
    const announce = bucketName === WORKERS_BUCKET;
    const registration = new WorkerRegistration(nc, (await bucket(nc, bucketName)).kv, { ...entry, startedAt: now, heartbeatAt: now }, heartbeatMs, announce);
    await registration.beat();
    if (announce) publishWorkerEvent(nc, 'joined', { id: entry.id, address: entry.address, model: entry.model, build: entry.build });
    registration.timer = setInterval(() => void registration.beat().catch(() => undefined), heartbeatMs);
    registration.timer.unref();
    return registration;
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

/** The coordinator's side: who is there, and clearing out who is gone. */
export async function liveWorkers(nc: NatsConnection, staleAfterMs = STALE_AFTER_MS, bucketName = WORKERS_BUCKET): Promise<WorkerEntry[]> {
  const all = await allEntries(await bucket(nc, bucketName));
  const now = Date.now();
  return all.filter((e) => now - Date.parse(e.heartbeatAt) <= staleAfterMs).sort((a, b) => a.id.localeCompare(b.id));
}

/** Deletes entries whose heartbeat is older than `staleAfterMs` and publishes worker.lost for each. */
export async function sweepStaleWorkers(nc: NatsConnection, staleAfterMs = STALE_AFTER_MS): Promise<WorkerEntry[]> {
  const store = await bucket(nc);
  const { kv } = store;
  const now = Date.now();
  const { entries, unreadable } = await readBucket(store);
  // An entry that is not a Member can never be a live worker: it goes, unannounced.
  for (const key of unreadable) await kv.delete(key);
  const stale = entries.filter((e) => now - Date.parse(e.heartbeatAt) > staleAfterMs);
  for (const entry of stale) {
    await kv.delete(workerKey(entry.id));
    publishWorkerEvent(nc, 'lost', { id: entry.id, address: entry.address, lastHeartbeat: entry.heartbeatAt });
  }
  return stale;
}

/** Every entry of the bucket that is a Member. */
async function allEntries({ kv, nc, name }: { kv: KV; nc: NatsConnection; name: string }): Promise<WorkerEntry[]> {
  return (await readBucket({ kv, nc, name })).entries;
}

/**
 * Every entry of the bucket, and the keys of those that are not a Member (a broken or foreign writer):
 * never a member of the cluster, so the sweep deletes them. The keys come from the bucket's stream info
 * (one request with a reply), not from `kv.keys()`: that iterator waits for a consumer's last message,
 * and when the deliveries outran its subscription (a loaded machine, heartbeats arriving) it never
 * ended: a client hung with no CPU in the test suite.
 */
async function readBucket({ kv, nc, name }: { kv: KV; nc: NatsConnection; name: string }): Promise<{ entries: WorkerEntry[]; unreadable: string[] }> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(`KV_${name}`, { subjects_filter: '>' });
  const prefix = `$KV.${name}.`;
  const keys = Object.keys(info.state.subjects ?? {}).filter((subject) => subject.startsWith(prefix)).map((subject) => subject.slice(prefix.length));
  const entries: WorkerEntry[] = [];
  const unreadable: string[] = [];
  for (const key of keys) {
    const e = await kv.get(key);
    if (e === null || e.operation !== 'PUT' || e.length === 0) continue;
    try {
      entries.push(memberFromJson(e.json()));
    } catch {
      unreadable.push(key);
    }
  }
  return { entries, unreadable };
}
