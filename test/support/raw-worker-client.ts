/**
 * A worker-service client built from any .proto text, not this release's codecs: what a peer of
 * another release, or anyone who reaches a worker, can send. Messages are plain objects in protobufjs's
 * JSON form; enums come back as their names.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { PROTO_FILE, TO_OBJECT } from '../../proto/worker-proto.js';

/** worker.proto with `edit` applied to its text (loaded with sampler.proto beside it). */
export async function editedWorkerProto(edit: (text: string) => string): Promise<protobuf.Root> {
  const dir = await mkdtemp(join(tmpdir(), 'evosearch-edited-proto-'));
  try {
    await writeFile(join(dir, 'worker.proto'), edit(await readFile(PROTO_FILE, 'utf8')));
    await writeFile(join(dir, 'sampler.proto'), await readFile(join(dirname(PROTO_FILE), 'sampler.proto')));
    return protobuf.loadSync(join(dir, 'worker.proto'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export type Message = Record<string, unknown>;

/** The error of a call the worker must refuse (an assertion failure when it takes it). */
export async function refused(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  assert.fail('the worker took it');
}

export class RawWorkerClient {
  private readonly client: grpc.Client;

  constructor(address: string, private readonly root: protobuf.Root) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  private codec(name: string) {
    const type = this.root.lookupType(`evosearch.worker.v1.${name}`);
    return {
      serialize: (v: object) => Buffer.from(type.encode(type.fromObject(v)).finish()),
      deserialize: (b: Buffer) => type.toObject(type.decode(b), { ...TO_OBJECT, enums: String }) as Message,
    };
  }

  unary(method: string, request: string, reply: string, body: object): Promise<Message> {
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(`/evosearch.worker.v1.Worker/${method}`, this.codec(request).serialize, this.codec(reply).deserialize, body, (error, value) => (error ? reject(error) : resolve(value!))),
    );
  }

  setup(runId: string, setup: object): Promise<Message> {
    return this.unary('Setup', 'SetupRequest', 'SetupReply', { runId, setup });
  }

  /** Sends `frames` on one Execute call: the frames it answers with, or the call's error (a grpc.ServiceError). */
  execute(frames: readonly object[]): Promise<Message[]> {
    const call = this.open();
    for (const f of frames) call.write(f);
    call.end();
    return call.answer;
  }

  /** An Execute call left open: frames go when written; `answer` is what execute resolves or rejects with. */
  open(): { write(frame: object): void; end(): void; cancel(): void; readonly answer: Promise<Message[]> } {
    const frame = this.codec('Frame');
    const call = this.client.makeBidiStreamRequest('/evosearch.worker.v1.Worker/Execute', frame.serialize, frame.deserialize);
    const answer = new Promise<Message[]>((resolve, reject) => {
      const got: Message[] = [];
      call.on('data', (f: Message) => got.push(f));
      call.on('error', reject);
      call.on('end', () => resolve(got));
    });
    return { write: (f) => void call.write(f), end: () => void call.end(), cancel: () => call.cancel(), answer };
  }

  /** One batch of `commands` (no tensors) for `runId`: its results, or the call's error. */
  async commands(runId: string, commands: readonly object[]): Promise<Message[]> {
    const replies = await this.execute([{ header: { runId, tensorLengths: [], commands: { commands } } }, { end: {} }]);
    return ((replies[0]!.header as { results: { results: Message[] } }).results.results);
  }

  close(): void {
    this.client.close();
  }
}
