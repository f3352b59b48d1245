/**
 * Worker threads that open GPU sessions start one at a time, process-wide (the CUDA provider failed one
 * of four threads opening sessions at once on an H200); CPU threads start together; a failed start
 * stops the threads that did start. Fake starters count how many starts are in flight at once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { opensGpuSessions, startThreads } from '../worker/thread-starts.js';
import { ThreadPool } from '../worker/thread-pool.js';
import { workerSetupFor } from '../coordinator/run/open-worker-pool.js';
import { parseRunConfig, resolveRunConfig } from '../config/resolve-run-config.js';

function starter(fail: (index: number) => boolean = () => false) {
  const state = { inFlight: 0, most: 0, stopped: [] as number[] };
  const start = async (index: number) => {
    state.inFlight += 1;
    state.most = Math.max(state.most, state.inFlight);
    // Two turns of the event loop: long enough for any start that is not waiting its turn to begin too.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    state.inFlight -= 1;
    if (fail(index)) throw new Error(`thread ${index} failed`);
    return { index, stop: async () => void state.stopped.push(index) };
  };
  return { state, start };
}

describe('worker thread starts', () => {
  it('on a GPU provider, one at a time, also across pools started at once', async () => {
    const a = starter();
    const b = starter();
    const shared = { most: 0, inFlight: 0 };
    const counted = (s: ReturnType<typeof starter>) => async (i: number) => {
      shared.inFlight += 1;
      shared.most = Math.max(shared.most, shared.inFlight);
      try {
        return await s.start(i);
      } finally {
        shared.inFlight -= 1;
      }
    };
    const [one, two] = await Promise.all([startThreads(4, counted(a), true), startThreads(3, counted(b), true)]);
    assert.deepEqual(one.map((t) => t.index), [0, 1, 2, 3]);
    assert.deepEqual(two.map((t) => t.index), [0, 1, 2]);
    assert.equal(shared.most, 1);
  });

  it('on the CPU, all at once', async () => {
    const s = starter();
    await startThreads(4, s.start, false);
    assert.equal(s.state.most, 4);
  });

  for (const oneAtATime of [true, false]) {
    it(`a failed start stops the threads that started and throws its error (${oneAtATime ? 'GPU' : 'CPU'})`, async () => {
      const s = starter((i) => i === 2);
      await assert.rejects(startThreads(4, s.start, oneAtATime), /thread 2 failed/);
      assert.deepEqual(s.state.stopped.sort(), [0, 1, 3]);
    });
  }

  it('a GPU provider anywhere in the list counts; the CPU alone does not', () => {
    assert.equal(opensGpuSessions(['cuda', 'cpu']), true);
    assert.equal(opensGpuSessions(['webgpu']), true);
    assert.equal(opensGpuSessions(['cpu']), false);
    assert.equal(opensGpuSessions(undefined), false);
  });

  it('a pool asked for CUDA on a machine without it starts every thread in turn and runs on the CPU fallback', async () => {
    const plan = resolveRunConfig(parseRunConfig({ model: 'models/bundles/tiny-sd', prompt: 'a red circle', budgetNfe: 1000, providers: ['cuda', 'cpu'], workers: 3 }, 'test'), 'test');
    const pool = await ThreadPool.start(3, workerSetupFor(plan));
    try {
      assert.equal(pool.size, 3);
      for (let i = 0; i < pool.size; i++) assert.match(pool.describe(i), /cpu/);
    } finally {
      await pool.close();
    }
  });
});
