/**
 * The worker protocol's codec on the batches a search sends: a round of rollouts, its scored results
 * with thumbnails, a recovery's recipes for thousands of states, and a placement move of large states.
 * For each: bytes on the wire and the time to encode (frames, serialised as gRPC sends them) and decode
 * (parsed and reassembled, checked, as the other side reads them), against protocol 1's codec (JSON in
 * a string field, the same chunks) on the same body, measured in the same run, interleaved.
 *
 *   npm run build && node dist/bench/wire-codec.js [--repeats 15]
 */
import { parseArgs } from 'node:util';
import type { Command, CommandResult } from '../proto/commands.js';
import protobuf from 'protobufjs';
import { CHUNK_BYTES, encodeFrames, FrameAssembler, type BodyKind, type Body } from '../proto/tensor-frames.js';
import { workerService } from '../proto/worker-service.js';

const { values } = parseArgs({ options: { repeats: { type: 'string', default: '15' } } });
const repeats = Number(values.repeats);

const floats = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i));
const counters = { nfe: 40, forwardPasses: 80, decodes: 1, rewardCalls: 1 };

const cases: { readonly name: string; readonly kind: BodyKind; readonly body: Body<BodyKind> }[] = [
  {
    name: 'rollouts: 256 items, 3 archived states each',
    kind: 'commands',
    body: [{ kind: 'rollout', items: Array.from({ length: 256 }, (_, i) => ({ source: 1000 + i, from: 10, archive: [20, 30, 40].map((step, k) => ({ step, id: 5000 + 3 * i + k })), finalId: 9000 + i })), thumbnails: 32 }] as Command[],
  },
  {
    name: 'their results: 256 scores with 2 metrics, 32x32 RGB thumbnails',
    kind: 'results',
    body: [{ kind: 'rollout', scores: Array.from({ length: 256 }, (_, i) => ({ id: 9000 + i, reward: Math.cos(i), metrics: { aesthetic: Math.sin(i), clip: i / 256 } })), samples: Array.from({ length: 256 }, (_, i) => ({ id: 9000 + i, data: floats(3 * 32 * 32, i), shape: [3, 32, 32] })), counters }] as CommandResult[],
  },
  {
    name: 'recovery: 20,000 states, 4 commands of recipe each',
    kind: 'commands',
    body: [{ kind: 'recover', rebuild: Array.from({ length: 20_000 }, (_, i) => ({ id: i, recipe: [{ kind: 'init', ids: [i] }, { kind: 'advance', ids: [i], from: 0, to: 20, purpose: 'advance' }, { kind: 'mutate', step: 20, items: [{ parent: i, child: i + 1, op: 'sde', sigma: 0.3 }] }, { kind: 'advance', ids: [i + 1], from: 20, to: 30, purpose: 'advance', score: true }] as Command[] })), piece: [{ kind: 'fetch', ids: [1] }] }] as Command[],
  },
  {
    name: 'placement: 16 states of 65,536 floats with solver memory',
    kind: 'commands',
    body: [{ kind: 'import', states: Array.from({ length: 16 }, (_, i) => ({ as: i, state: { id: i, step: 30, latent: floats(65536, i), previousX0: floats(65536, i + 0.5), cachedOutput: null } })) }] as Command[],
  },
];

function protobufTrip(kind: BodyKind, body: Body<BodyKind>): { bytes: number; encodeMs: number; decodeMs: number } {
  const started = performance.now();
  const wire = [...encodeFrames('bench', kind, body)].map((f) => workerService.execute.requestSerialize(f));
  const encoded = performance.now();
  const assembler = new FrameAssembler(kind);
  for (const bytes of wire) assembler.add(workerService.execute.requestDeserialize(bytes));
  return { bytes: wire.reduce((a, b) => a + b.length, 0), encodeMs: encoded - started, decodeMs: performance.now() - encoded };
}

/**
 * Protocol 1's codec, as it was (git history of proto/tensor-frames.ts): the body as JSON in the
 * header's body_json with each tensor replaced by {"$f32": i} (chunked past 256 KiB), the tensors in the
 * same 1 MiB chunks, frames serialised by protobufjs.
 */
const protocol1 = protobuf.parse(`syntax = "proto3";
  message Frame { oneof body { FrameHeader header = 1; TensorChunk chunk = 2; FrameEnd end = 3; } }
  message FrameHeader { string run_id = 1; string body_json = 2; repeated uint64 tensor_lengths = 3; }
  message TensorChunk { uint32 tensor = 1; uint64 offset = 2; bytes data = 3; }
  message FrameEnd {}`).root.lookupType('Frame');

function jsonTrip(body: unknown): { bytes: number; encodeMs: number; decodeMs: number } {
  const started = performance.now();
  const tensors: Float32Array[] = [];
  let bodyJson = JSON.stringify(body, (_, v: unknown) => (v instanceof Float32Array ? { $f32: tensors.push(v) - 1 } : v));
  const utf8 = Buffer.from(bodyJson);
  if (utf8.length > 256 * 1024) {
    const padded = new Uint8Array(Math.ceil(utf8.length / 4) * 4).fill(0x20);
    padded.set(utf8);
    tensors.push(new Float32Array(padded.buffer));
    bodyJson = '';
  }
  const frames: object[] = [{ header: { runId: 'bench', bodyJson, tensorLengths: tensors.map((t) => t.length) } }];
  tensors.forEach((t, tensor) => {
    const bytes = new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
    for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) frames.push({ chunk: { tensor, offset, data: bytes.subarray(offset, offset + CHUNK_BYTES) } });
  });
  frames.push({ end: {} });
  const wire = frames.map((f) => protocol1.encode(f).finish());
  const encoded = performance.now();
  let header: { bodyJson: string; tensorLengths: number[] } | null = null;
  let back: Float32Array[] = [];
  for (const bytes of wire) {
    const frame = protocol1.toObject(protocol1.decode(bytes), { longs: Number, defaults: true, oneofs: true }) as { body: string; header: typeof header; chunk: { tensor: number; offset: number; data: Uint8Array } };
    if (frame.body === 'header') {
      header = frame.header;
      back = header!.tensorLengths.map((n) => new Float32Array(n));
    } else if (frame.body === 'chunk') new Uint8Array(back[frame.chunk.tensor]!.buffer).set(frame.chunk.data, frame.chunk.offset);
  }
  const text = header!.bodyJson === '' ? new TextDecoder().decode(new Uint8Array(back.pop()!.buffer)) : header!.bodyJson;
  JSON.parse(text, (_, v: { $f32?: number }) => (v !== null && typeof v === 'object' && typeof v.$f32 === 'number' ? back[v.$f32] : v));
  return { bytes: wire.reduce((a, b) => a + b.length, 0), encodeMs: encoded - started, decodeMs: performance.now() - encoded };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`| batch | protocol 2 bytes | protocol 1 bytes | protocol 2 encode ms | decode ms | protocol 1 encode ms | decode ms | time, 2 / 1 |`);
console.log('|---|---|---|---|---|---|---|---|');
for (const c of cases) {
  const pb: ReturnType<typeof protobufTrip>[] = [];
  const js: ReturnType<typeof jsonTrip>[] = [];
  // Interleaved, after one warm-up of each, so both see the same machine.
  protobufTrip(c.kind, c.body);
  jsonTrip(c.body);
  for (let r = 0; r < repeats; r++) {
    pb.push(protobufTrip(c.kind, c.body));
    js.push(jsonTrip(c.body));
  }
  const enc = median(pb.map((x) => x.encodeMs));
  const dec = median(pb.map((x) => x.decodeMs));
  const jenc = median(js.map((x) => x.encodeMs));
  const jdec = median(js.map((x) => x.decodeMs));
  console.log(`| ${c.name} | ${pb[0]!.bytes} | ${js[0]!.bytes} | ${enc.toFixed(2)} | ${dec.toFixed(2)} | ${jenc.toFixed(2)} | ${jdec.toFixed(2)} | ${((enc + dec) / (jenc + jdec)).toFixed(2)} |`);
}
