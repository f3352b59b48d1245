import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { succeedsWithin, TimeoutError, TurnQueue, withTimeout } from '../async/timeouts-and-turns.js';

/** A promise and the functions that settle it, for tests that decide when work ends. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const never = () => new Promise<never>(() => undefined);
/** Lets every queued microtask and the next timer phase run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('withTimeout', () => {
  it('gives the value of a promise that settles in time', async () => {
    assert.equal(await withTimeout(Promise.resolve(7), 1000, 'seven'), 7);
    const later = deferred<string>();
    const waited = withTimeout(later.promise, 1000, 'later');
    later.resolve('done');
    assert.equal(await waited, 'done');
  });

  it("passes on the promise's own rejection, not a timeout", async () => {
    const failure = new Error('disk full');
    await assert.rejects(withTimeout(Promise.reject(failure), 1000, 'writing'), (e: unknown) => e === failure);
  });

  it('rejects with a TimeoutError naming what and how long, once the time runs out', async () => {
    const started = performance.now();
    await assert.rejects(withTimeout(never(), 50, 'the membership check'), (e: unknown) => {
      assert.ok(e instanceof TimeoutError, `not a TimeoutError: ${String(e)}`);
      assert.equal(e.message, 'the membership check: no answer within 50 ms');
      assert.equal(e.what, 'the membership check');
      assert.equal(e.ms, 50);
      return true;
    });
    const took = performance.now() - started;
    assert.ok(took >= 45, `rejected after ${took.toFixed(1)} ms, before its 50 ms`);
  });

  it('rejects with the error a function makes, made when the time runs out', async () => {
    class OwnError extends Error {}
    let made = 0;
    const waited = withTimeout(never(), 20, () => {
      made += 1;
      return new OwnError('the filesystem did not answer');
    });
    assert.equal(made, 0, 'the error was made before the time ran out');
    await assert.rejects(waited, (e: unknown) => e instanceof OwnError && e.message === 'the filesystem did not answer');
    assert.equal(made, 1);
  });

  it('clears its timer when the promise wins: nothing keeps the process alive, the late error is never made', async () => {
    let made = 0;
    const handles = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = handles();
    assert.equal(await withTimeout(Promise.resolve(1), 60_000, () => new Error(`made ${++made}`)), 1);
    await settle();
    assert.equal(handles(), before, 'the 60 s timer is still set');
    await assert.rejects(withTimeout(Promise.reject(new Error('no')), 60_000, 'x'), /no/);
    await settle();
    assert.equal(handles(), before, 'the timer of a rejected race is still set');
    assert.equal(made, 0);
  });

  it('a promise that rejects after the timeout is no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const late = deferred();
      await assert.rejects(withTimeout(late.promise, 5, 'late'), TimeoutError);
      late.reject(new Error('too late'));
      await settle();
      await settle();
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('succeedsWithin', () => {
  it('true for a promise that fulfils in time', async () => {
    assert.equal(await succeedsWithin(Promise.resolve('anything'), 1000), true);
    const later = deferred();
    const waited = succeedsWithin(later.promise, 1000);
    later.resolve();
    assert.equal(await waited, true);
  });

  it('false, never a rejection, for a promise that rejects', async () => {
    assert.equal(await succeedsWithin(Promise.reject(new Error('NATS down')), 1000), false);
  });

  it('false once the time runs out, not before', async () => {
    const started = performance.now();
    assert.equal(await succeedsWithin(never(), 40), false);
    const took = performance.now() - started;
    assert.ok(took >= 35, `gave up after ${took.toFixed(1)} ms, before its 40 ms`);
  });
});

describe('TurnQueue', () => {
  it('runs works one at a time, in call order, each after the one before has settled', async () => {
    const queue = new TurnQueue();
    const log: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const runs = gates.map((gate, i) =>
      queue.run(async () => {
        log.push(`start ${i}`);
        await gate.promise;
        log.push(`end ${i}`);
        return i * 10;
      }),
    );
    await settle();
    assert.deepEqual(log, ['start 0'], 'a second work started while the first ran');
    // Released out of order: the third's gate opens first, yet it waits for the second.
    gates[2]!.resolve();
    gates[0]!.resolve();
    await settle();
    assert.deepEqual(log, ['start 0', 'end 0', 'start 1']);
    gates[1]!.resolve();
    assert.deepEqual(await Promise.all(runs), [0, 10, 20]);
    assert.deepEqual(log, ['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('a work that rejects releases the queue, and its caller gets the rejection', async () => {
    const queue = new TurnQueue();
    const failure = new Error('setup failed');
    const failed = queue.run(async () => {
      await settle();
      throw failure;
    });
    const next = queue.run(() => 'next ran');
    await assert.rejects(failed, (e: unknown) => e === failure);
    assert.equal(await next, 'next ran');
  });

  it('a work that throws synchronously releases the queue too, and never runs before its turn', async () => {
    const queue = new TurnQueue();
    const first = deferred();
    const order: string[] = [];
    const holding = queue.run(() => first.promise.then(() => void order.push('first')));
    const throwing = queue.run((): never => {
      order.push('throwing');
      throw new TypeError('bad input');
    });
    const after = queue.run(() => void order.push('after'));
    await settle();
    assert.deepEqual(order, [], 'a work ran before the one ahead of it had settled');
    first.resolve();
    await holding;
    await assert.rejects(throwing, TypeError);
    await after;
    assert.deepEqual(order, ['first', 'throwing', 'after']);
  });

  it('works queued from inside a work run after it, and two queues do not wait for each other', async () => {
    const a = new TurnQueue();
    const b = new TurnQueue();
    const order: string[] = [];
    const blocked = deferred();
    let inner: Promise<void> | undefined;
    const outer = a.run(async () => {
      inner = a.run(() => void order.push('inner'));
      await blocked.promise;
      order.push('outer');
    });
    await b.run(() => void order.push('other queue'));
    assert.deepEqual(order, ['other queue'], 'queue b waited for queue a');
    blocked.resolve();
    await outer;
    await inner;
    assert.deepEqual(order, ['other queue', 'outer', 'inner']);
  });
});
