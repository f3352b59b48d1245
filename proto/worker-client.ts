/**
 * One Execute call to a worker (proto/worker.proto): the commands go out as frames, the results come
 * back the same way. Used by the coordinator's worker pool and by denoising workers that send their
 * samples to reward workers.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command, CommandResult } from './commands.js';
import { MAX_MESSAGE_BYTES, workerClientOptions } from './grpc-limits.js';
import { encodeFrames, FrameAssembler, type Frame } from './tensor-frames.js';
import { workerService, type HealthReply } from './worker-service.js';
import { channelCredentials, channelOptions, PLAINTEXT_LOOPBACK, type TransportSecurity } from './transport-security.js';

/** How an Execute call failed: the worker answered with an error, or it (or the way to it) is gone. */
export type ExecuteFailure = { readonly lost: boolean; readonly detail: string; readonly cause: unknown };

/**
 * Status codes that mean the worker (or the way to it) is gone rather than that the batch failed:
 * its states must be rebuilt elsewhere. A worker's own refusal or error comes as another code.
 */
const LOST_CODES = new Set<grpc.status>([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED, grpc.status.UNKNOWN]);

export function describeStatus(error: unknown): string {
  const e = error as Partial<grpc.ServiceError>;
  // grpc-js's own refusal of an oversized message (a worker's refusal of a run or a batch is RESOURCE_EXHAUSTED too, and says why itself).
  if (e.code === grpc.status.RESOURCE_EXHAUSTED && /larger than/i.test(e.details ?? e.message ?? '')) {
    return `RESOURCE_EXHAUSTED: ${e.details ?? e.message} (messages are limited to ${MAX_MESSAGE_BYTES} bytes, proto/grpc-limits.ts; tensors travel in chunks far below that, so the other side does not chunk them: is it an evosearch worker of this release?)`;
  }
  if (typeof e.code === 'number') return `${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * A client of the worker service at `address`, with the project's message limits and keepalive, over
 * `transport` (mTLS: the worker must show a worker certificate of the cluster's CA).
 */
export function workerClient(address: string, transport: TransportSecurity = PLAINTEXT_LOOPBACK): grpc.Client {
  return new grpc.Client(address, channelCredentials(transport, address, ['worker']), { ...workerClientOptions, ...channelOptions(transport) });
}

/**
 * Runs `commands` on the worker as one Execute call. Rejects with an ExecuteFailure, or, once `signal`
 * aborts, at once with its reason (the call is cancelled: the caller decided, so there is nothing to
 * classify or retry). `method`: Execute's definition, or a metered copy of it (proto/metered-service.ts).
 */
export function executeOverGrpc(client: grpc.Client, runId: string, commands: readonly Command[], deadlineMs: number, signal?: AbortSignal, method: typeof workerService.execute = workerService.execute): Promise<CommandResult[]> {
  const m = method;
  return new Promise<CommandResult[]>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline: new Date(Date.now() + deadlineMs) });
    const assembler = new FrameAssembler('results');
    let settled = false;
    const settle = (action: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      action();
    };
    const onAbort = () => {
      settle(() => reject(signal!.reason));
      call.cancel();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const fail = (failure: ExecuteFailure) => settle(() => reject(failure));
    call.on('data', (frame: Frame) => {
      try {
        const done = assembler.add(frame);
        if (done !== null) settle(() => resolve(done.body));
      } catch (error) {
        fail({ lost: false, detail: `bad reply: ${(error as Error).message}`, cause: error });
        call.cancel();
      }
    });
    call.on('error', (error: grpc.ServiceError) => fail({ lost: LOST_CODES.has(error.code), detail: describeStatus(error), cause: error }));
    call.on('end', () => fail({ lost: true, detail: 'the reply ended before its end frame', cause: null }));
    void (async () => {
      for (const frame of encodeFrames(runId, 'commands', commands)) {
        // A call that ended (failed, cancelled) takes nothing more.
        if (settled) return;
        if (!call.write(frame)) await new Promise((r) => call.once('drain', r));
      }
      call.end();
    })().catch((error: Error) => fail({ lost: true, detail: `sending failed: ${error.message}`, cause: error }));
  });
}

/** Commands that can be sent again without changing anything: they only read a worker's states. */
export function isIdempotent(commands: readonly Command[]): boolean {
  return commands.every((c) => c.kind === 'export' || c.kind === 'fetch' || c.kind === 'score');
}

export interface RetryOptions {
  /** Attempts in all (default 3). */
  readonly attempts?: number;
  /** Wait before the second attempt, doubling after (default 200 ms). */
  readonly backoffMs?: number;
}

/**
 * Runs `call` again when it fails with a lost connection and the commands are idempotent (large
 * transfers: exports, fetches, scoring), so a dropped connection does not cost a rebuild. Anything
 * else fails at once.
 */
export async function withIdempotentRetry<T>(commands: readonly Command[], call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = isIdempotent(commands) ? options.attempts ?? 3 : 1;
  let wait = options.backoffMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= attempts || !(error as Partial<ExecuteFailure>).lost) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait *= 2;
    }
  }
}

/** A unary call of the worker service (Hello, Setup, Health) with a deadline; rejects with the gRPC error. */
export function unaryOverGrpc<Req, Res>(client: grpc.Client, method: { readonly path: string; readonly requestSerialize: (r: Req) => Buffer; readonly responseDeserialize: (b: Buffer) => Res }, request: Req, deadlineMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, new grpc.Metadata(), { deadline: new Date(Date.now() + deadlineMs) }, (error, reply) => (error ? reject(error) : resolve(reply!)));
  });
}

/** One worker's Health (status, batches in flight, busy time since it started), for tools and benchmarks. */
export async function fetchWorkerHealth(address: string, deadlineMs = 10_000, transport: TransportSecurity = PLAINTEXT_LOOPBACK): Promise<HealthReply> {
  const client = workerClient(address, transport);
  try {
    return await unaryOverGrpc(client, workerService.health, {}, deadlineMs);
  } catch (error) {
    throw new Error(`health of worker ${address}: ${describeStatus(error)}`, { cause: error });
  } finally {
    client.close();
  }
}
