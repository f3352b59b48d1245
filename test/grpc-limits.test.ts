/**
 * The gRPC options set on purpose (proto/grpc-limits.ts): the message limit sits far above every
 * frame the protocol makes and refuses anything larger, clearly, on either side; bodies far past the
 * limit still travel, chunked; and a worker's server takes the coordinator's keepalive pings.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch } from '../coordinator/engine/run-search.js';
import { WorkerCommandError } from '../proto/worker-pool.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { GrpcWorkerPool } from '../coordinator/transport/grpc-pool.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import type { Command, TransferredState } from '../proto/commands.js';
import { commandsToWire, TensorTable } from '../proto/command-messages.js';
import { workerType } from '../proto/worker-proto.js';
import { MAX_MESSAGE_BYTES, WORKER_KEEPALIVE_MS, WORKER_KEEPALIVE_TIMEOUT_MS } from '../proto/grpc-limits.js';
import { CHUNK_BYTES, encodeFrames, INLINE_BODY_BYTES, type Frame } from '../proto/tensor-frames.js';
import { describeStatus, workerClient } from '../proto/worker-client.js';
import { workerService } from '../proto/worker-service.js';
import { createSampler } from '../samplers/index.js';
import { WorkerServer } from '../worker/grpc-server.js';

const silent = pino({ level: 'silent' });

async function withServer(model: string, work: (server: WorkerServer) => Promise<void>): Promise<void> {
  const server = await WorkerServer.start('127.0.0.1:0', { model, logger: silent });
  try {
    await work(server);
  } finally {
    await server.close();
  }
}

/** Sends one Frame on an Execute call over `client`; resolves with the error the call ends with. */
function sendOne(client: grpc.Client, frame: Frame): Promise<grpc.ServiceError> {
  const m = workerService.execute;
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline: new Date(Date.now() + 20_000) });
    call.on('data', () => undefined);
    call.on('error', resolve);
    call.on('end', () => reject(new Error('the call ended without an error')));
    call.write(frame);
    call.end();
  });
}

describe('gRPC message limits', () => {
  it('every frame the protocol makes is far below the limit, whatever the body', () => {
    const serialize = workerService.execute.requestSerialize;
    const importing = (n: number): Command => ({ kind: 'import', states: Array.from({ length: n }, (_, i) => ({ as: i, state: { id: i, step: 1, latent: new Float32Array(3), previousX0: null, cachedOutput: null } })) });
    const encodedBytes = (commands: Command[]) => workerType('CommandBatch').encode(commandsToWire(commands, new TensorTable())).finish().length;
    const pad = INLINE_BODY_BYTES - encodedBytes([importing(10_000)]) - 100;
    const bodies: Command[][] = [
      // A long body (chunked) with a tensor of several chunks.
      [{ kind: 'recover', rebuild: Array.from({ length: 60_000 }, (_, i) => ({ id: i, recipe: [{ kind: 'init', ids: [i] }] })), piece: [{ kind: 'score', samples: new Float32Array((3 * CHUNK_BYTES) / 4 + 5), count: 1 }] }],
      // A body just short of travelling chunked, in the header with 10,000 tensors announced.
      [importing(10_000), { kind: 'snapshot', name: 'x'.repeat(pad) }],
    ];
    let chunk = 0;
    let header = 0;
    for (const body of bodies) {
      for (const frame of encodeFrames('a-run-id', 'commands', body)) {
        const bytes = serialize(frame).length;
        if ('header' in frame) header = Math.max(header, bytes);
        else chunk = Math.max(chunk, bytes);
      }
    }
    assert.ok(chunk <= CHUNK_BYTES + 64, `a chunk frame of ${chunk} bytes`);
    assert.ok(header > 0.9 * INLINE_BODY_BYTES && header <= INLINE_BODY_BYTES + 10_000 * 10 + 64, `a header of ${header} bytes`);
    // 8 MiB: 8 chunks' data, so over 7 times the largest frame.
    assert.ok(MAX_MESSAGE_BYTES > 7 * Math.max(chunk, header), `the limit ${MAX_MESSAGE_BYTES} leaves little margin over frames of ${chunk} and ${header} bytes`);
    assert.ok(WORKER_KEEPALIVE_TIMEOUT_MS > WORKER_KEEPALIVE_MS, 'a keepalive timeout shorter than its interval');
  });

  it('a batch far past the limit travels chunked both ways over the limited channels, intact', async () => {
    // The largest analytic latent: 256 KiB a state, 48 states = 12 MiB each way.
    await withServer('analytic:gmm?dimension=65536', async (server) => {
      const plan = resolveRunConfig({ model: 'analytic:gmm?dimension=65536', budgetNfe: 1000 });
      const pool = await GrpcWorkerPool.connect([server.address], workerSetupFor(plan), { runId: 'big' });
      try {
        const states: TransferredState[] = Array.from({ length: 48 }, (_, i) => ({ id: 100 + i, step: 0, latent: Float32Array.from({ length: 65536 }, (_, k) => Math.sin(i * 65536 + k)), previousX0: null, cachedOutput: null }));
        assert.ok(states.length * 65536 * 4 > MAX_MESSAGE_BYTES);
        await pool.execute(0, [{ kind: 'import', states: states.map((state) => ({ as: state.id, state })) }]);
        const [exported] = await pool.execute(0, [{ kind: 'export', ids: states.map((s) => s.id) }]);
        assert.deepEqual(exported!.states!.map((s) => [s.id, s.latent]), states.map((s) => [s.id, s.latent]));
      } finally {
        await pool.close();
      }
    });
  });

  it('a message over the limit is refused with RESOURCE_EXHAUSTED naming the limit, by the sender and by the worker, which goes on serving', async () => {
    await withServer('analytic:gmm', async (server) => {
      const oversized: Frame = { chunk: { tensor: 0, offset: 0, data: new Uint8Array(MAX_MESSAGE_BYTES + 1024) } };
      // This project's client refuses to send it.
      const ours = workerClient(server.address);
      try {
        const error = await sendOne(ours, oversized);
        assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED, describeStatus(error));
        assert.match(describeStatus(error), new RegExp(`larger than ${MAX_MESSAGE_BYTES}.*messages are limited to ${MAX_MESSAGE_BYTES} bytes, proto/grpc-limits\\.ts`));
      } finally {
        ours.close();
      }
      // A peer with no send limit (grpc-js's default): the worker refuses to receive it.
      const other = new grpc.Client(server.address, grpc.credentials.createInsecure());
      try {
        const error = await sendOne(other, oversized);
        assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED, describeStatus(error));
        assert.match(error.details, new RegExp(`larger than max \\(\\d+ vs\\.? ${MAX_MESSAGE_BYTES}\\)`));
      } finally {
        other.close();
      }
      const plan = resolveRunConfig({ budgetNfe: 1000, seed: 3 });
      const pool = await GrpcWorkerPool.connect([server.address], workerSetupFor(plan), { runId: 'after-oversized' });
      try {
        const outcome = await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(pool));
        assert.ok(outcome.best !== null);
        await assert.rejects(pool.execute(0, [{ kind: 'advance', ids: [424242], from: 0, to: 1, purpose: 'advance' }]), WorkerCommandError, 'errors still come back as errors');
      } finally {
        await pool.close();
      }
    });
  });
});

describe('keepalive', () => {
  it("a worker's server answers pings far more frequent than the coordinator's, and never sends GOAWAY for them", async () => {
    await withServer('analytic:gmm', async (server) => {
      const session = http2.connect(`http://${server.address}`);
      let goaway: number | null = null;
      session.on('goaway', (code) => (goaway = code));
      session.on('error', () => undefined);
      try {
        await new Promise<void>((resolve, reject) => {
          session.once('connect', () => resolve());
          session.once('error', reject);
        });
        // 40 pings 50 ms apart: gRPC's C core would have sent GOAWAY too_many_pings after the second.
        for (let i = 0; i < 40; i++) {
          const acked = await new Promise<boolean>((resolve) => session.ping((error) => resolve(error === null)));
          assert.ok(acked, `ping ${i} was not answered`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(goaway, null, `the worker sent GOAWAY with code ${goaway}`);
        assert.ok(!session.closed && !session.destroyed, 'the worker closed the connection');
      } finally {
        session.destroy();
      }
    });
  });
});
