/**
 * Another language speaks the worker protocol from the .proto files alone: protoc turns
 * proto/worker.proto and proto/sampler.proto into Python classes, and a Python coordinator
 * (test/python/coordinator_peer.py) sets up a run on a real worker and executes a batch over gRPC. It
 * must get exactly the rewards and the sample the TypeScript coordinator gets for the same commands, and
 * a malformed batch must be refused naming the field. Needs protoc and Python's grpcio and protobuf
 * (Debian: protobuf-compiler python3-grpcio python3-protobuf; .ci/run installs them); without them the
 * test says so and skips.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import type { Command, CommandResult } from '../proto/commands.js';
import { setupToWire } from '../proto/setup-message.js';
import { executeOverGrpc, unaryOverGrpc, workerClient } from '../proto/worker-client.js';
import { WORKER_PROTOCOL_VERSION, workerService } from '../proto/worker-service.js';
import type { WorkerSetup } from '../proto/worker-setup.js';
import { WorkerServer } from '../worker/grpc-server.js';
import { repoRoot } from './support/repo-root.js';

const run = promisify(execFile);

/** A Python that has grpcio and protobuf (Debian's packages go to /usr/bin/python3, not a pyenv one). */
function pythonWithGrpc(): string | null {
  for (const python of ['python3', '/usr/bin/python3']) {
    if (spawnSync(python, ['-c', 'import grpc, google.protobuf'], { stdio: 'ignore' }).status === 0) return python;
  }
  return null;
}

interface PeerAnswer {
  readonly protocol: number;
  readonly kinds: string[];
  readonly rewards: [number, number][];
  readonly nfe: number;
  readonly sample: { id: number; shape: number[]; data: number[] };
  readonly refusal: { code: string; details: string } | null;
  readonly health_batches: number;
}

/** The same run the Python peer sets up, as the TypeScript coordinator states it. */
const SETUP: WorkerSetup = {
  model: 'analytic:gmm',
  sampler: { kind: 'ddim', steps: 10, num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', prediction_type: 'epsilon', timestep_spacing: 'leading', steps_offset: 1, clip_sample: false, eta: 1, set_alpha_to_one: false },
  seed: '5',
  batchSize: 16,
};
const COMMANDS: Command[] = [
  { kind: 'init', ids: [1, 2, 3] },
  { kind: 'advance', ids: [1, 2, 3], from: 0, to: 10, purpose: 'advance', score: true },
  { kind: 'fetch', ids: [2] },
];

describe('worker protocol from another language', () => {
  it('a Python coordinator built by protoc from the .proto files gets what the TypeScript one gets, bit for bit', async (t) => {
    const python = pythonWithGrpc();
    const protoc = spawnSync('sh', ['-c', 'command -v protoc'], { encoding: 'utf8' }).stdout.trim();
    if (python === null || protoc === '') return t.skip(`needs protoc and Python with grpcio and protobuf (found: protoc ${protoc || 'none'}, python ${python ?? 'none with grpc'}); Debian: apt-get install -y protobuf-compiler python3-grpcio python3-protobuf`);
    const generated = await mkdtemp(join(tmpdir(), 'evosearch-python-peer-'));
    const server = await WorkerServer.start('127.0.0.1:0', { model: 'analytic:gmm', logger: pino({ level: 'silent' }) });
    const client = workerClient(server.address);
    try {
      await run(protoc, [`--python_out=${generated}`, '-I', join(repoRoot(), 'proto'), 'worker.proto', 'sampler.proto']);
      const { stdout } = await run(python, [join(repoRoot(), 'test/python/coordinator_peer.py'), server.address, generated, String(WORKER_PROTOCOL_VERSION)], { timeout: 120_000 });
      const peer = JSON.parse(stdout) as PeerAnswer;

      await unaryOverGrpc(client, workerService.setup, { runId: 'typescript-peer', setup: setupToWire(SETUP) }, 60_000);
      const ours: CommandResult[] = await executeOverGrpc(client, 'typescript-peer', COMMANDS, 60_000);

      assert.equal(peer.protocol, WORKER_PROTOCOL_VERSION);
      assert.deepEqual(peer.kinds, ['COMMAND_KIND_INIT', 'COMMAND_KIND_ADVANCE', 'COMMAND_KIND_FETCH']);
      assert.deepEqual(peer.rewards, ours[1]!.scores.map((s) => [s.id, s.reward]), 'the same rewards, to the last bit');
      assert.equal(peer.nfe, ours[1]!.counters.nfe);
      const sample = ours[2]!.samples[0]!;
      assert.deepEqual(peer.sample, { id: sample.id, shape: [...sample.shape], data: Array.from(sample.data) });
      assert.equal(peer.refusal?.code, 'INVALID_ARGUMENT');
      assert.match(peer.refusal.details, /commands\[0\]\.advance\.purpose: 0 is not one of NOISE_PURPOSE_ADVANCE, NOISE_PURPOSE_ROLLOUT/);
      assert.equal(peer.health_batches, 1, 'the refused batch never ran');
    } finally {
      client.close();
      await server.close();
      await rm(generated, { recursive: true, force: true });
    }
  });
});
