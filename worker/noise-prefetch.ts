/**
 * Addressed normals drawn on a helper thread, so that they can be asked for before a model call and
 * be ready when it returns: onnxruntime-node's session.run blocks the calling thread for the whole
 * inference, and the noise of (purpose, lineage, step) does not depend on the model's output.
 *
 * Each request lives in its own SharedArrayBuffer. Both threads draw it: each claims the next
 * undrawn address with an atomic counter. The requesting thread never waits for the helper: when it
 * needs a request, it draws what is unclaimed, and also what the helper claimed but has not finished
 * (waiting on a thread the scheduler has parked can cost a whole time slice). The numbers are
 * NoiseSource's, on whichever thread: the same function of the address, so who drew what, or whether
 * both drew the same address, never changes them.
 *
 * So the helper can die, hang or fall behind without any effect but lost speed: it is never waited
 * for and never keeps the process alive. One that leaves a request unanswered for the watchdog time
 * is stopped.
 */
import { Worker } from 'node:worker_threads';
import { NOISE_PURPOSES, type NoiseAddress } from '../random/noise-address.js';
import { checkAddress, checkRange } from '../random/noise-address-error.js';
import { NORMALS_PER_STREAM, NoiseSource } from '../random/noise-source.js';

const ENTRY = new URL('./noise-thread-main.js', import.meta.url);
/**
 * A request's buffer, in 32-bit words: [0] the next address to claim; [1, 1 + n) a 1 once address i
 * is drawn; [1 + n, 1 + 4n) the addresses as (purpose index, lineage, step), so that a request
 * message carries no objects to clone; then `size` normals per address.
 */
const NEXT = 0;
const headerWords = (count: number) => 1 + 4 * count;
const DEFAULT_WATCHDOG_MS = 30_000;
/** Buffers kept for reuse: a step loop has at most two requests out at once. */
const POOLED_BUFFERS = 4;

export interface NoiseRequestMessage {
  readonly seq: number;
  readonly buffer: SharedArrayBuffer;
  /** Addresses in the buffer. */
  readonly count: number;
  /** Normals per address. */
  readonly size: number;
  /** Stream index of each address's first normal. */
  readonly offset: number;
}

/**
 * Draws the addresses of `request` that no thread has claimed yet, claiming each before drawing it.
 * Both sides of a request run this.
 */
export function drawClaimed(noise: NoiseSource, request: NoiseRequestMessage): void {
  const { buffer, count, size, offset } = request;
  const words = new Uint32Array(buffer, 0, headerWords(count));
  for (let i = Atomics.add(words, NEXT, 1); i < count; i = Atomics.add(words, NEXT, 1)) {
    const at = 1 + count + 3 * i;
    noise.normals({ purpose: NOISE_PURPOSES[words[at]!]!, lineage: words[at + 1]!, step: words[at + 2]! }, normalsOf(buffer, count, i, size), offset);
    Atomics.store(words, 1 + i, 1);
  }
}

function normalsOf(buffer: SharedArrayBuffer, count: number, index: number, size: number): Float32Array {
  return new Float32Array(buffer, 4 * (headerWords(count) + index * size), size);
}

/** Normals on their way: awaiting gives one array per address, valid until release(). */
export interface NoiseDraw extends PromiseLike<Float32Array[]> {
  /** Hands the arrays back for reuse, once they have been read. */
  release(): void;
}

export interface NoisePrefetchOptions {
  /** The helper thread's entry module (default worker/noise-thread-main.js). */
  readonly entry?: URL;
  /** How long the helper may leave a request unanswered before it is taken for hung and stopped. */
  readonly watchdogMs?: number;
}

interface Request extends NoiseRequestMessage {
  readonly addresses: readonly NoiseAddress[];
  /** The helper will not touch the buffer again: it answered, or it never had the request. */
  answered: boolean;
  released: boolean;
  readonly sentAt: number;
}

export class NoisePrefetch {
  private readonly here: NoiseSource;
  private readonly watchdogMs: number;
  private thread: Worker | null = null;
  private stopped: string | null = null;
  private seq = 0;
  private readonly unanswered = new Map<number, Request>();
  private readonly free: SharedArrayBuffer[] = [];

  /** `seed`: the run seed, as NoiseSource takes it. */
  constructor(seed: number | bigint, options: NoisePrefetchOptions = {}) {
    this.here = new NoiseSource(seed);
    this.watchdogMs = options.watchdogMs ?? DEFAULT_WATCHDOG_MS;
    try {
      // No flags of this process: it needs none, and some (`--input-type` with `-e`) would stop it from starting.
      const thread = new Worker(options.entry ?? ENTRY, { workerData: { seed }, execArgv: [] });
      thread.on('message', (seq: number) => this.answered(seq));
      // Without a listener a failing thread's error would be thrown in this one.
      thread.on('error', (error) => (this.stopped ??= `the noise thread failed: ${error.message}`));
      thread.on('exit', (code) => this.lose(thread, `the noise thread exited with code ${code}`));
      // After the listeners: a 'message' listener references the thread's port again.
      thread.unref();
      this.thread = thread;
    } catch (error) {
      this.stopped = `the noise thread did not start: ${error instanceof Error ? error.message : String(error)}`;
    }
  }

  /** Why every draw now runs on the requesting thread (null while the helper is up). */
  get stoppedBecause(): string | null {
    return this.stopped;
  }

  /**
   * Asks for normals: array i will hold elements [offset, offset + size) of addresses[i]'s normal
   * stream, exactly what NoiseSource.normals gives. Bad addresses throw here, as NoiseSource would.
   */
  request(addresses: readonly NoiseAddress[], size: number, offset = 0): NoiseDraw {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`NoisePrefetch.request: size must be a non-negative integer, got ${size}`);
    const count = addresses.length;
    const purposes = addresses.map((address) => checkAddress(address));
    checkRange('offset', offset, size, NORMALS_PER_STREAM);
    this.checkWatchdog();
    const sentAt = performance.now();
    const buffer = this.take(4 * (headerWords(count) + count * size));
    const words = new Uint32Array(buffer, 0, headerWords(count));
    words.fill(0, 0, 1 + count);
    for (let i = 0, at = 1 + count; i < count; i++, at += 3) {
      words[at] = purposes[i]!;
      words[at + 1] = addresses[i]!.lineage;
      words[at + 2] = addresses[i]!.step;
    }
    const request: Request = { seq: ++this.seq, buffer, count, addresses, size, offset, answered: true, released: false, sentAt };
    if (this.thread !== null && count > 0) {
      request.answered = false;
      this.unanswered.set(request.seq, request);
      this.thread.postMessage({ seq: request.seq, buffer, count, size, offset } satisfies NoiseRequestMessage);
    }
    let result: Promise<Float32Array[]> | null = null;
    return {
      then: (onfulfilled, onrejected) => (result ??= new Promise<Float32Array[]>((resolve) => resolve(this.finish(request)))).then(onfulfilled, onrejected),
      release: () => {
        request.released = true;
        this.recycle(request);
      },
    };
  }

  /** Stops the helper; later draws run on the calling thread. */
  async close(): Promise<void> {
    const thread = this.thread;
    if (thread === null) return;
    this.lose(thread, 'closed');
    // The helper is unreferenced: without this the event loop could end before the exit awaited here.
    thread.ref();
    await thread.terminate();
  }

  private finish(request: Request): Float32Array[] {
    const { buffer, count, addresses, size, offset } = request;
    drawClaimed(this.here, request);
    const words = new Uint32Array(buffer, 0, headerWords(count));
    for (let i = 0; i < count; i++) {
      if (Atomics.load(words, 1 + i) === 0) this.here.normals(addresses[i]!, normalsOf(buffer, count, i, size), offset);
    }
    return addresses.map((_, i) => normalsOf(buffer, count, i, size));
  }

  private answered(seq: number): void {
    const request = this.unanswered.get(seq);
    if (request === undefined) return;
    this.unanswered.delete(seq);
    request.answered = true;
    this.recycle(request);
  }

  private checkWatchdog(): void {
    const thread = this.thread;
    const oldest = this.unanswered.values().next();
    if (thread === null || oldest.done === true || performance.now() - oldest.value.sentAt < this.watchdogMs) return;
    this.lose(thread, `the noise thread left a request unanswered for ${this.watchdogMs} ms`);
    void thread.terminate();
  }

  /** The helper is gone (or going): its unanswered requests' buffers are never reused. */
  private lose(thread: Worker, why: string): void {
    if (this.thread !== thread) return;
    this.thread = null;
    this.stopped ??= why;
    this.unanswered.clear();
  }

  private take(bytes: number): SharedArrayBuffer {
    const at = this.free.findIndex((b) => b.byteLength >= bytes && b.byteLength <= 2 * bytes);
    return at < 0 ? new SharedArrayBuffer(bytes) : this.free.splice(at, 1)[0]!;
  }

  /** A buffer goes back to the pool once both sides are done with it. */
  private recycle(request: Request): void {
    if (!request.released || !request.answered || this.free.includes(request.buffer)) return;
    // The oldest goes first: a buffer of a size no longer asked for must not hold its place.
    if (this.free.length >= POOLED_BUFFERS) this.free.shift();
    this.free.push(request.buffer);
  }
}
