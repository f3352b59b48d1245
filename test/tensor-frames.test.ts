import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CHUNK_BYTES, encodeFrames, FrameAssembler, FrameError, INLINE_BODY_BYTES, type Body, type Frame, type FrameHeader } from '../proto/tensor-frames.js';
import { zeroCounters, type Command, type CommandResult } from '../proto/commands.js';
import { workerService } from '../proto/worker-service.js';
import { withIdempotentRetry } from '../proto/worker-client.js';

type Kind = 'commands' | 'results';

function roundTrip<K extends Kind>(kind: K, body: Body<K>, shift = 0): Body<K> {
  const assembler = new FrameAssembler(kind);
  let out: Body<K> | undefined;
  for (const frame of encodeFrames('run', kind, body)) {
    // The frames go through the real serialisers, as on the wire.
    const wire = workerService.execute.requestDeserialize(workerService.execute.requestSerialize(frame));
    // gRPC hands bytes fields over at arbitrary offsets of its buffers: simulate an unaligned view.
    const moved: Frame = 'chunk' in wire ? { chunk: { ...wire.chunk, data: unaligned(wire.chunk.data, shift) } } : wire;
    const done = assembler.add(moved);
    if (done !== null) out = done.body;
  }
  assert.ok(out !== undefined, 'no end frame');
  return out;
}

function unaligned(data: Uint8Array, shift: number): Uint8Array {
  const buffer = new Uint8Array(data.length + shift);
  buffer.set(data, shift);
  return buffer.subarray(shift);
}

const result = (kind: CommandResult['kind'], more: Partial<CommandResult> = {}): CommandResult => ({ kind, scores: [], samples: [], counters: zeroCounters(), ...more });

describe('tensor frames: commands and results on the wire', () => {
  it('a tensor bigger than several chunks arrives whole, aligned, from unaligned chunk views', () => {
    const big = Float32Array.from({ length: (3 * CHUNK_BYTES) / 4 + 123 }, (_, i) => Math.sin(i));
    const body: Command[] = [{ kind: 'score', samples: big, count: 1 }];
    const frames = [...encodeFrames('run', 'commands', body)];
    assert.equal(frames.filter((f) => 'chunk' in f).length, 4);
    const [back] = roundTrip('commands', body, 3) as unknown as [{ kind: 'score'; samples: Float32Array }];
    assert.ok(back.samples instanceof Float32Array);
    assert.equal(back.samples.byteOffset % 4, 0);
    assert.deepEqual(back.samples, big);
  });

  it('a body past INLINE_BODY_BYTES travels in chunks, intact, and no frame grows with it', () => {
    const rebuild = Array.from({ length: 60_000 }, (_, i) => ({ id: i, recipe: [{ kind: 'init', ids: [i] }, { kind: 'advance', ids: [i], from: 0, to: 3, purpose: 'advance' }] as Command[] }));
    const body: Command[] = [{ kind: 'recover', rebuild, piece: [{ kind: 'score', samples: new Float32Array([1, 2, 3]), count: 3 }] }];
    const frames = [...encodeFrames('run', 'commands', body)];
    const { header } = frames[0] as { header: FrameHeader };
    assert.equal(header.commands, undefined, 'the header carries no body');
    assert.ok(Number(header.chunkedBodyBytes) > 4 * INLINE_BODY_BYTES);
    assert.equal(header.tensorLengths.length, 2, 'the samples tensor, then the body');
    for (const f of frames) if ('chunk' in f) assert.ok(f.chunk.data.length <= CHUNK_BYTES);
    assert.deepEqual(roundTrip('commands', body, 1), body);
    const small: Command[] = [{ kind: 'init', ids: [1, 2] }];
    assert.ok((([...encodeFrames('run', 'commands', small)][0]) as { header: FrameHeader }).header.commands, 'a small body stays in the header');
    assert.ok(INLINE_BODY_BYTES < CHUNK_BYTES * 4);
  });

  it('keeps nested results, empty tensors, absent solver memory and non-finite metrics', () => {
    const body: CommandResult[] = [
      result('fetch', { samples: [{ id: 3, data: new Float32Array([1, 2]), shape: [2, 1] }, { id: 4, data: new Float32Array(0), shape: [0] }] }),
      result('advance', { scores: [{ id: 1, reward: 0.5, metrics: { aesthetic: Number.NaN, clip: -Infinity } }, { id: 2, reward: -3 }], counters: { nfe: 7, forwardPasses: 14, decodes: 2, rewardCalls: 2 } }),
      result('export', { states: [{ id: 9, step: 4, latent: new Float32Array([1]), previousX0: null, cachedOutput: new Float32Array([2, 3]) }] }),
      result('recover', { results: [result('init'), result('snapshot', { snapshot: { name: 'round-3-worker-1.bin', ids: [1, 2], bytes: 40, sha256: 'ab' } })] }),
    ];
    assert.deepEqual(roundTrip('results', body), body);
  });

  it('refuses a header announcing tensors over the size limit, before allocating them', () => {
    const header = (tensorLengths: number[]): Frame => ({ header: { runId: 'r', tensorLengths, commands: { commands: [] } } });
    assert.throws(() => new FrameAssembler('commands', 1024).add(header([200, 100])), (e: unknown) => e instanceof FrameError && /1200 bytes in all, over the limit of 1024/.test(e.message));
    assert.throws(() => new FrameAssembler('commands').add(header([4e12])), /over the limit/);
    assert.equal(new FrameAssembler('commands', 1024).add(header([256])), null);
  });

  it('shows each header to its admission before allocating: the run and the bytes it announces; a refusal is the stream\'s error, and nothing is allocated', () => {
    const header = (runId: string, tensorLengths: number[]): Frame => ({ header: { runId, tensorLengths, commands: { commands: [] } } });
    const seen: [string, number][] = [];
    const admitOnly = (run: string) => (runId: string, bytes: number) => {
      seen.push([runId, bytes]);
      if (runId !== run) throw new Error(`run ${runId} is not here`);
    };
    const before = process.memoryUsage().arrayBuffers;
    assert.throws(() => new FrameAssembler('commands', undefined, admitOnly('mine')).add(header('theirs', [2 ** 30 - 1])), /run theirs is not here/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 2 ** 26, 'allocated before the admission was asked');
    const ok = new FrameAssembler('commands', undefined, admitOnly('mine'));
    assert.equal(ok.add(header('mine', [3, 5])), null);
    assert.equal(ok.add({ chunk: { tensor: 0, offset: 0, data: new Uint8Array(12) } }), null);
    ok.add({ chunk: { tensor: 1, offset: 0, data: new Uint8Array(20) } });
    assert.deepEqual(ok.add({ end: {} }), { runId: 'mine', body: [] });
    assert.deepEqual(seen, [['theirs', 4 * (2 ** 30 - 1)], ['mine', 32]]);
    // The absolute limit and malformed lengths come first: an admission never sees them.
    assert.throws(() => new FrameAssembler('commands', 1024, admitOnly('mine')).add(header('mine', [300])), /over the limit of 1024/);
    assert.throws(() => new FrameAssembler('commands', undefined, admitOnly('mine')).add(header('mine', [1.5])), /not a whole number of floats/);
    assert.equal(seen.length, 2);
  });

  it('refuses malformed streams, saying what is wrong', () => {
    assert.throws(() => new FrameAssembler('commands').add({ end: {} }), /before the header/);
    const header: Frame = { header: { runId: 'r', tensorLengths: [4], commands: { commands: [] } } };
    const a = new FrameAssembler('commands');
    a.add(header);
    assert.throws(() => a.add({ chunk: { tensor: 0, offset: 8, data: new Uint8Array(12) } }), /overruns tensor 0/);
    const b = new FrameAssembler('commands');
    b.add(header);
    b.add({ chunk: { tensor: 0, offset: 0, data: new Uint8Array(8) } });
    assert.throws(() => b.add({ end: {} }), /tensor 0 got 8 of 16 bytes/);
    assert.throws(() => new FrameAssembler('results').add(header), /carries commands where results belong/);
    assert.throws(() => new FrameAssembler('commands').add({ header: { runId: 'r', tensorLengths: [] } }), /carries no commands/);
    assert.throws(() => new FrameAssembler('commands').add({ header: { runId: 'r', tensorLengths: [2], chunkedBodyBytes: 9 } }), /9 bytes of the last tensor, which holds 8/);
    const c = new FrameAssembler('commands');
    c.add({ header: { runId: 'r', tensorLengths: [1], chunkedBodyBytes: 4 } });
    c.add({ chunk: { tensor: 0, offset: 0, data: new Uint8Array([0xff, 0xff, 0xff, 0xff]) } });
    assert.throws(() => c.add({ end: {} }), (e: unknown) => e instanceof FrameError && /chunked body is not a CommandBatch/.test(e.message));
  });
});

describe('retrying idempotent calls', () => {
  const lost = { lost: true, detail: 'UNAVAILABLE', cause: null };
  it('retries exports, fetches and scoring after a lost connection, and nothing else', async () => {
    let calls = 0;
    const flaky = async () => {
      calls += 1;
      if (calls < 3) throw lost;
      return 'ok';
    };
    assert.equal(await withIdempotentRetry([{ kind: 'export', ids: [1] }], flaky, { backoffMs: 1 }), 'ok');
    assert.equal(calls, 3);
    calls = 0;
    await assert.rejects(withIdempotentRetry([{ kind: 'advance', ids: [1], from: 0, to: 1, purpose: 'advance' }], flaky, { backoffMs: 1 }), (e: unknown) => e === lost);
    assert.equal(calls, 1, 'an advance changes states: never sent twice');
    calls = 0;
    await assert.rejects(withIdempotentRetry([{ kind: 'fetch', ids: [1] }], async () => { calls += 1; throw { lost: false, detail: 'INTERNAL', cause: null }; }, { backoffMs: 1 }));
    assert.equal(calls, 1, 'a worker error is not retried');
    calls = 0;
    await assert.rejects(withIdempotentRetry([{ kind: 'fetch', ids: [1] }], async () => { calls += 1; throw lost; }, { attempts: 2, backoffMs: 1 }), (e: unknown) => e === lost);
    assert.equal(calls, 2);
  });
});
