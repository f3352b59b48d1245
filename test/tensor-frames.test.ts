import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CHUNK_BYTES, encodeFrames, FrameAssembler, FrameError, INLINE_BODY_BYTES, type Frame } from '../proto/tensor-frames.js';
import { withIdempotentRetry } from '../proto/worker-client.js';

function roundTrip(body: unknown, shift = 0): unknown {
  const assembler = new FrameAssembler();
  let out: unknown = undefined;
  for (const frame of encodeFrames('run', body)) {
    // gRPC hands bytes fields over at arbitrary offsets of its buffers: simulate an unaligned view.
    const moved: Frame = 'chunk' in frame ? { chunk: { ...frame.chunk, data: unaligned(frame.chunk.data, shift) } } : frame;
    const done = assembler.add(moved);
    if (done !== null) out = done.body;
  }
  return out;
}

function unaligned(data: Uint8Array, shift: number): Uint8Array {
  const buffer = new Uint8Array(data.length + shift);
  buffer.set(data, shift);
  return buffer.subarray(shift);
}

describe('tensor frames: commands and results on the wire', () => {
  it('a tensor bigger than several chunks arrives whole, aligned, from unaligned chunk views', () => {
    const big = Float32Array.from({ length: (3 * CHUNK_BYTES) / 4 + 123 }, (_, i) => Math.sin(i));
    const frames = [...encodeFrames('run', { big })];
    assert.equal(frames.filter((f) => 'chunk' in f).length, 4);
    const back = roundTrip({ big }, 3) as { big: Float32Array };
    assert.ok(back.big instanceof Float32Array);
    assert.equal(back.big.byteOffset % 4, 0);
    assert.deepEqual(back.big, big);
  });

  it('a body JSON past INLINE_BODY_BYTES travels in chunks, UTF-8 intact, and no frame grows with it', () => {
    const recipes = Array.from({ length: 120_000 }, (_, i) => ({ id: i, recipe: { parents: [i - 1, i - 2], note: `ü→${i}` } }));
    const body = [{ kind: 'recover', rebuild: recipes, piece: [], data: new Float32Array([1, 2, 3]) }];
    assert.ok(JSON.stringify(body).length > 4 * 2 ** 20);
    const frames = [...encodeFrames('run', body)];
    const header = frames[0] as unknown as { header: { bodyJson: string; tensorLengths: number[] } };
    assert.equal(header.header.bodyJson, '', 'the header carries no body');
    assert.equal(header.header.tensorLengths.length, 2, 'the data tensor, then the body');
    for (const f of frames) if ('chunk' in f) assert.ok(f.chunk.data.length <= CHUNK_BYTES);
    assert.deepEqual(roundTrip(body, 1), body);
    const small = [{ kind: 'init', ids: [1, 2] }];
    assert.notEqual((([...encodeFrames('run', small)][0]) as unknown as { header: { bodyJson: string } }).header.bodyJson, '', 'a small body stays in the header');
    assert.ok(INLINE_BODY_BYTES < CHUNK_BYTES * 4);
  });

  it('keeps nested structure, nulls, empty tensors and non-finite numbers', () => {
    const body = [{ kind: 'fetch', samples: [{ id: 3, data: new Float32Array([1, 2]), shape: [2] }], scores: [{ id: 1, reward: Number.NaN }, { id: 2, reward: -Infinity }], empty: new Float32Array(0), none: null }];
    assert.deepEqual(roundTrip(body), body);
  });

  it('refuses a header announcing tensors over the size limit, before allocating them', () => {
    assert.throws(() => new FrameAssembler(1024).add({ header: { runId: 'r', bodyJson: '[]', tensorLengths: [200, 100] } }), (e: unknown) => e instanceof FrameError && /1200 bytes in all, over the limit of 1024/.test(e.message));
    assert.throws(() => new FrameAssembler().add({ header: { runId: 'r', bodyJson: '[]', tensorLengths: [4e12] } }), /over the limit/);
    assert.equal(new FrameAssembler(1024).add({ header: { runId: 'r', bodyJson: '[]', tensorLengths: [256] } }), null);
  });

  it('refuses typed arrays it cannot carry and malformed streams, saying what is wrong', () => {
    assert.throws(() => [...encodeFrames('run', { x: new Float64Array(2) })], (e: unknown) => e instanceof FrameError && /Float64Array/.test(e.message));
    assert.throws(() => new FrameAssembler().add({ end: {} }), /before the header/);
    const a = new FrameAssembler();
    a.add({ header: { runId: 'r', bodyJson: '{"$f32":0}', tensorLengths: [4] } });
    assert.throws(() => a.add({ chunk: { tensor: 0, offset: 8, data: new Uint8Array(12) } }), /overruns tensor 0/);
    const b = new FrameAssembler();
    b.add({ header: { runId: 'r', bodyJson: '{"$f32":0}', tensorLengths: [4] } });
    b.add({ chunk: { tensor: 0, offset: 0, data: new Uint8Array(8) } });
    assert.throws(() => b.add({ end: {} }), /tensor 0 got 8 of 16 bytes/);
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
