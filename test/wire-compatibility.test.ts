/**
 * The worker protocol tolerates the other side's additions (proto/worker.proto, "Compatibility"): a
 * peer built from a .proto with fields this release does not know still talks to it, both ways, over a
 * real gRPC connection to a real worker server; a command kind this release does not know is refused,
 * naming where it is, rather than skipped.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import { pino } from 'pino';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { commandsFromWire, resultsToWire, TensorTable } from '../proto/command-messages.js';
import { setupFromWire, setupToWire } from '../proto/setup-message.js';
import { WireError } from '../proto/wire-error.js';
import { PROTO_FILE, TO_OBJECT } from '../proto/worker-proto.js';
import { editedWorkerProto, RawWorkerClient } from './support/raw-worker-client.js';
import { WORKER_PROTOCOL_VERSION } from '../proto/worker-service.js';
import { WorkerServer } from '../worker/grpc-server.js';

/** worker.proto as a later release might have it: a field more in several messages, and a new command. */
async function laterProto(): Promise<protobuf.Root> {
  return editedWorkerProto((proto) => {
    const text = proto
      .replace('message AdvanceCommand {\n', 'message AdvanceCommand {\n  string scheduler_hint = 90;\n')
      .replace('message RunSetup {\n', 'message RunSetup {\n  string tenant = 90;\n')
      .replace('message CommandResult {\n', 'message CommandResult {\n  double seconds = 90;\n')
      .replace('message FrameHeader {\n', 'message FrameHeader {\n  string trace_id = 90;\n')
      .replace('    RestoreCommand restore = 13;\n', '    RestoreCommand restore = 13;\n    FutureCommand future = 90;\n')
      .concat('\nmessage FutureCommand { repeated uint64 ids = 1; }\n');
    for (const added of ['scheduler_hint = 90', 'tenant = 90', 'seconds = 90', 'trace_id = 90', 'FutureCommand future = 90']) assert.ok(text.includes(added), `the later .proto lacks ${added}`);
    return text;
  });
}

const silent = pino({ level: 'silent' });

describe('worker protocol: a peer of a later release', () => {
  it('its added fields are skipped by this side, and this side’s messages read on the other, message by message', async () => {
    const later = await laterProto();
    const batch = later.lookupType('evosearch.worker.v1.CommandBatch');
    const ours = protobuf.loadSync(PROTO_FILE).lookupType('evosearch.worker.v1.CommandBatch');
    const sent = batch.encode(batch.fromObject({ commands: [{ advance: { ids: [4, 0], from: 1, to: 3, purpose: 'NOISE_PURPOSE_ROLLOUT', score: true, schedulerHint: 'fast' } }] })).finish();
    assert.deepEqual(commandsFromWire(ours.toObject(ours.decode(sent), TO_OBJECT), []), [{ kind: 'advance', ids: [4, 0], from: 1, to: 3, purpose: 'rollout', score: true }]);

    const setup = later.lookupType('evosearch.worker.v1.RunSetup');
    const plan = resolveRunConfig({ budgetNfe: 1000, seed: 9 });
    const extended = setup.encode(setup.fromObject({ ...setupToWire(workerSetupFor(plan)), tenant: 'lab-a' })).finish();
    const oursSetup = protobuf.loadSync(PROTO_FILE).lookupType('evosearch.worker.v1.RunSetup');
    assert.deepEqual(setupFromWire(oursSetup.toObject(oursSetup.decode(extended), TO_OBJECT)), workerSetupFor(plan));

    // This side's results, read by the later release: every field it shares, its own at its default.
    const results = later.lookupType('evosearch.worker.v1.ResultBatch');
    const table = new TensorTable();
    const mine = resultsToWire([{ kind: 'advance', scores: [{ id: 4, reward: 0.25 }], samples: [], counters: { nfe: 2, forwardPasses: 4, decodes: 0, rewardCalls: 1 } }], table);
    const read = results.toObject(results.decode(protobuf.loadSync(PROTO_FILE).lookupType('evosearch.worker.v1.ResultBatch').encode(mine).finish()), { ...TO_OBJECT, enums: String }) as { results: { kind: string; seconds: number; scores: { id: number; reward: number }[]; counters: { nfe: number } }[] };
    assert.equal(read.results[0]!.kind, 'COMMAND_KIND_ADVANCE');
    assert.equal(read.results[0]!.seconds, 0);
    assert.deepEqual(read.results[0]!.scores.map((s) => [s.id, s.reward]), [[4, 0.25]]);
    assert.equal(read.results[0]!.counters.nfe, 2);

    // A command kind this side does not know: refused, naming where, never skipped.
    const future = batch.encode(batch.fromObject({ commands: [{ init: { ids: [1] } }, { future: { ids: [1] } }] })).finish();
    assert.throws(() => commandsFromWire(ours.toObject(ours.decode(future), TO_OBJECT), []), (e: unknown) => e instanceof WireError && e.field === 'commands[1]' && /does not know/.test(e.message));
  });

  it('a later coordinator sets up and runs commands on this release’s worker over gRPC, with its extra fields along', async () => {
    const later = await laterProto();
    const server = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', logger: silent });
    const client = new RawWorkerClient(server.address, later);
    try {
      const hello = await client.unary('Hello', 'HelloRequest', 'HelloReply', { protocolVersion: WORKER_PROTOCOL_VERSION, expectedModelBuild: '' });
      assert.equal(hello.protocolVersion, WORKER_PROTOCOL_VERSION);
      const plan = resolveRunConfig({ budgetNfe: 1000, seed: 9 });
      await client.setup('later', { ...setupToWire(workerSetupFor(plan)), tenant: 'lab-a' });
      const replies = await client.execute([
        { header: { runId: 'later', traceId: 't-1', tensorLengths: [], commands: { commands: [{ init: { ids: [1, 2] } }, { advance: { ids: [1, 2], from: 0, to: 2, purpose: 'NOISE_PURPOSE_ADVANCE', score: true, schedulerHint: 'fast' } }] } } },
        { end: {} },
      ]);
      const header = replies[0]!.header as { results: { results: { kind: string; scores: { id: number; reward: number }[]; counters: { nfe: number } }[] } };
      assert.deepEqual(header.results.results.map((r) => r.kind), ['COMMAND_KIND_INIT', 'COMMAND_KIND_ADVANCE']);
      assert.deepEqual(header.results.results[1]!.scores.map((s) => s.id), [1, 2]);
      assert.ok(header.results.results[1]!.scores.every((s) => Number.isFinite(s.reward)));
      assert.equal(header.results.results[1]!.counters.nfe, 6, 'two latents: two steps each, and the model call at step 2 that scores them');
      assert.ok('end' in replies.at(-1)!);
    } finally {
      client.close();
      await server.close();
    }
  });
});
