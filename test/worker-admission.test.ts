/**
 * What a gRPC worker takes from anyone who reaches it (worker/run-admission.ts): a frame header is
 * judged before its tensors are allocated, by its run and that run's byte limit, and a refusal names
 * no run but the caller's. The probe: a header announcing just under 4 GiB, for any run id, was
 * allocated at once (the worker's RSS went from 261 MB to 2.3 GB), and the refusal that followed listed
 * the ids of every run the worker served. (Full workers and idle runs: test/grpc-workers.test.ts.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { pino } from 'pino';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { setupToWire } from '../proto/setup-message.js';
import { PROTO_FILE } from '../proto/worker-proto.js';
import { WorkerServer } from '../worker/grpc-server.js';
import { RawWorkerClient, refused } from './support/raw-worker-client.js';

const MiB = 2 ** 20;

describe('worker admission of batches: judged on the header, before anything is allocated', () => {
  let server: WorkerServer;
  let client: RawWorkerClient;

  before(async () => {
    server = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', maxBatchBytes: MiB, logger: pino({ level: 'silent' }) });
    client = new RawWorkerClient(server.address, protobuf.loadSync(PROTO_FILE));
    await client.setup('private-run-of-another-user', setupToWire(workerSetupFor(resolveRunConfig({ budgetNfe: 1000, seed: 1 }))));
    await client.setup('mine', setupToWire(workerSetupFor(resolveRunConfig({ budgetNfe: 1000, seed: 2 }))));
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  it('a header announcing just under 4 GiB for a run not set up here is refused (FAILED_PRECONDITION), nothing allocated, no other run named', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const error = await refused(client.execute([{ header: { runId: 'not-here', tensorLengths: [2 ** 30 - 1], commands: { commands: [] } } }, { end: {} }]));
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.equal(error.code, 9, error.details); // FAILED_PRECONDITION
    assert.match(error.details, /^run not-here is not set up on this worker/);
    assert.doesNotMatch(error.details, /private-run-of-another-user|mine/, 'the refusal lists the runs the worker serves');
    assert.ok(grown < 64 * MiB, `the worker allocated ${Math.round(grown / MiB)} MiB for a header it then refused`);
  });

  it('a batch for a run set up here past its byte limit is refused (RESOURCE_EXHAUSTED naming --max-batch-bytes), its batches in flight counted together; within it, the run goes on', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const over = await refused(client.execute([{ header: { runId: 'mine', tensorLengths: [2 ** 30 - 1], commands: { commands: [] } } }, { end: {} }]));
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * MiB, 'allocated before the limit was checked');
    assert.equal(over.code, 8, over.details); // RESOURCE_EXHAUSTED
    assert.match(over.details, /^a batch of 4294967292 tensor bytes for run mine is over what one run may have arriving at once on this worker, 1048576 bytes \(--max-batch-bytes raises it\)$/);

    // Two batches of 600 KiB each, at once: the second is refused while the first is arriving.
    const floats = (600 * 1024) / 4;
    const header = { header: { runId: 'mine', tensorLengths: [floats], commands: { commands: [{ init: { ids: [7] } }] } } };
    const first = client.open();
    first.write(header);
    // The first header has to reach the worker before the second does.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await refused(client.execute([header, { end: {} }]));
    assert.equal(second.code, 8, second.details);
    assert.match(second.details, /\(614400 are in flight already\) \(--max-batch-bytes raises it\)/);
    first.cancel();
    await first.answer.catch(() => undefined);

    // Once the first is gone, the same batch is taken and runs.
    const data = Buffer.alloc(floats * 4);
    const frames = [header, { chunk: { tensor: 0, offset: 0, data } }, { end: {} }];
    let replies: Awaited<ReturnType<RawWorkerClient['execute']>> | null = null;
    for (let tries = 0; replies === null && tries < 20; tries++) {
      replies = await client.execute(frames).catch(async (error: grpc.ServiceError) => {
        if (error.code !== 8) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
        return null;
      });
    }
    assert.ok(replies !== null, 'the cancelled batch still counts against its run');
    const results = (replies[0]!.header as { results: { results: { kind: string }[] } }).results.results;
    assert.deepEqual(results.map((r) => r.kind), ['COMMAND_KIND_INIT']);
  });
});
