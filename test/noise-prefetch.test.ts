import { watchDenoiser } from './support/watched-denoiser.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { planRun } from '../config/plan-run.js';
import type { Command } from '../proto/commands.js';
import { NOISE_PURPOSES, type NoiseAddress } from '../random/noise-address.js';
import { NoiseAddressError, NoiseSource, NORMALS_PER_STREAM } from '../random/noise-source.js';
import { createSampler } from '../samplers/index.js';
import type { Sampler } from '../samplers/sampler.js';
import { CommandExecutor } from '../worker/executor.js';
import type { GenerativeModel } from '../worker/models/generator.js';
import { openModel } from '../worker/models/load-model.js';
import { NoisePrefetch } from '../worker/noise-prefetch.js';
import { waitFor } from './support/wait-for.js';

const SEED = 0x1234_5678_9abc_def0n;
const TINY_SD = fileURLToPath(new URL('../../models/bundles/tiny-sd', import.meta.url));
const EXECUTOR_JS = new URL('../worker/executor.js', import.meta.url).href;
const PLAN_RUN_JS = new URL('../config/plan-run.js', import.meta.url).href;
const SAMPLERS_JS = new URL('../samplers/index.js', import.meta.url).href;
const LOAD_MODEL_JS = new URL('../worker/models/load-model.js', import.meta.url).href;
const PREFETCH_JS = new URL('../worker/noise-prefetch.js', import.meta.url).href;

function expected(noise: NoiseSource, address: NoiseAddress, size: number, offset = 0): Float32Array {
  return noise.normals(address, new Float32Array(size), offset);
}

function sameBits(actual: Float32Array, wanted: Float32Array, what: string): void {
  assert.equal(actual.length, wanted.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(wanted.buffer, wanted.byteOffset, wanted.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) assert.fail(`${what}: element ${i} is ${actual[i]}, NoiseSource gives ${wanted[i]}`);
}

/** A deterministic spread of addresses: every purpose, edge lineages and steps. */
function addresses(count: number, salt: number): NoiseAddress[] {
  const edges = [0, 1, 2 ** 32 - 1, 0x8000_0000];
  return Array.from({ length: count }, (_, i) => ({
    purpose: NOISE_PURPOSES[(i + salt) % NOISE_PURPOSES.length]!,
    lineage: i < edges.length ? edges[i]! : (Math.imul(i + salt, 2654435761) >>> 0),
    step: (i * 7 + salt) % 60,
  }));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A helper thread entry that misbehaves: `body` runs on each request message (as `request`). */
function fixtureThread(body: string): URL {
  const file = join(mkdtempSync(join(tmpdir(), 'noise-thread-')), 'thread.mjs');
  writeFileSync(file, `import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (request) => { ${body} });\n`);
  return pathToFileURL(file);
}

/** Claims the first address of a request the way the real helper does, then leaves it undrawn. */
const CLAIM_FIRST = 'Atomics.add(new Int32Array(request.buffer, 0, 1), 0, 1);';

/**
 * The start of a child script: it records the helper thread (the Worker the executor posts to), and
 * fails the child if that thread breaks, so that a test cannot pass on the in-thread fallback alone.
 */
/** Child-process script lines: the modules, a plan and tiny-sd opened on the CPU, as `model` and `sampler`. */
const OPEN_TINY_SD = `
  const { planRun } = await import(${JSON.stringify(PLAN_RUN_JS)});
  const { createSampler } = await import(${JSON.stringify(SAMPLERS_JS)});
  const { CommandExecutor } = await import(${JSON.stringify(EXECUTOR_JS)});
  const { openModel } = await import(${JSON.stringify(LOAD_MODEL_JS)});
  const plan = await planRun({ model: ${JSON.stringify(TINY_SD)}, prompt: 'a red circle', seed: 1 }, 'test');
  const sampler = createSampler(plan.sampler);
  const model = await openModel(plan.model, { prediction: sampler.prediction, prompt: plan.prompt, guidanceScale: plan.guidanceScale, providers: ['cpu'] });
`;

const WATCH_HELPER = `
  import { Worker } from 'node:worker_threads';
  const threads = new Set();
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (...args) {
    if (!threads.has(this)) this.on('error', (error) => { console.log('the helper thread failed: ' + error.message); process.exit(2); });
    threads.add(this);
    return post.apply(this, args);
  };
`;

/** Runs an ES module script in a child node process; SIGKILLed if it has not exited within 60 s. */
async function runNode(script: string, flags: readonly string[] = []): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const child = spawn(process.execPath, [...flags, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  return { code, signal, output };
}

describe('NoisePrefetch', () => {
  it('gives exactly NoiseSource.normals for many addresses, sizes and offsets, however the work falls between the threads', async () => {
    const prefetch = new NoisePrefetch(SEED);
    const noise = new NoiseSource(SEED);
    try {
      const cases: { size: number; offset: number; count: number }[] = [];
      for (const size of [0, 1, 2, 3, 4, 5, 7, 64, 255, 256, 1000, 2048]) {
        for (const offset of [0, 1, 2, 3, 5, 4099, NORMALS_PER_STREAM - size]) cases.push({ size, offset, count: 1 + ((size + offset) % 9) });
      }
      // Some awaited at once (this thread draws most), some after the helper had time to draw them.
      for (const [k, { size, offset, count }] of cases.entries()) {
        const wanted = addresses(count, k);
        const draw = prefetch.request(wanted, size, offset);
        if (k % 3 === 0) await sleep(2);
        const got = await draw;
        assert.equal(got.length, count);
        got.forEach((normals, i) => sameBits(normals, expected(noise, wanted[i]!, size, offset), `size ${size} offset ${offset} address ${i}`));
        draw.release();
      }
      // Many requests out at once, awaited out of order, their buffers reused afterwards.
      const batch = Array.from({ length: 12 }, (_, k) => ({ wanted: addresses(16, 100 + k), size: 256 + k }));
      const draws = batch.map(({ wanted, size }) => prefetch.request(wanted, size));
      for (const k of [5, 0, 11, 3, 1, 2, 4, 6, 10, 7, 9, 8]) {
        const got = await draws[k]!;
        got.forEach((normals, i) => sameBits(normals, expected(noise, batch[k]!.wanted[i]!, batch[k]!.size), `batch ${k} address ${i}`));
        draws[k]!.release();
      }
      assert.equal(prefetch.stoppedBecause, null);
    } finally {
      await prefetch.close();
    }
  });

  it('draws while this thread is blocked, as it is inside session.run', async () => {
    const prefetch = new NoisePrefetch(SEED);
    const noise = new NoiseSource(SEED);
    const busy = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    try {
      const wanted = addresses(64, 7).map((a) => ({ ...a, purpose: 'advance' as const }));
      const size = 2048;
      // Started and warmed up. No event tells that the helper thread is up (until it is, this thread
      // draws everything itself, which the warm-up requests cannot tell apart): it is given 200 ms.
      await sleep(200);
      for (let i = 0; i < 3; i++) (await prefetch.request(wanted, size)).length;
      const started = performance.now();
      const local = wanted.map((a) => expected(noise, a, size));
      const inThread = performance.now() - started;
      let best = Infinity;
      for (let attempt = 0; attempt < 5 && best >= inThread / 2; attempt++) {
        const draw = prefetch.request(wanted, size);
        busy(Math.max(200, 20 * inThread));
        const waited = performance.now();
        const got = await draw;
        best = Math.min(best, performance.now() - waited);
        got.forEach((normals, i) => sameBits(normals, local[i]!, `address ${i}`));
        draw.release();
      }
      assert.ok(best < inThread / 2, `the draw still took ${best.toFixed(2)} ms after this thread was busy; drawing it here takes ${inThread.toFixed(2)} ms`);
    } finally {
      await prefetch.close();
    }
  });

  it('refuses bad addresses, sizes and offsets as NoiseSource does', async () => {
    const prefetch = new NoisePrefetch(SEED);
    try {
      assert.throws(() => prefetch.request([{ purpose: 'advance', lineage: 2 ** 32, step: 0 }], 4), (e: unknown) => e instanceof NoiseAddressError && e.field === 'lineage');
      assert.throws(() => prefetch.request([{ purpose: 'nope' as 'advance', lineage: 0, step: 0 }], 4), (e: unknown) => e instanceof NoiseAddressError && e.field === 'purpose');
      assert.throws(() => prefetch.request([{ purpose: 'advance', lineage: 0, step: 0 }], 4, NORMALS_PER_STREAM - 3), (e: unknown) => e instanceof NoiseAddressError && e.field === 'offset');
      assert.throws(() => prefetch.request([], 1.5), RangeError);
      assert.throws(() => new NoisePrefetch(-1), NoiseAddressError);
    } finally {
      await prefetch.close();
    }
  });

  for (const [what, body, reason] of [
    ['exits', 'process.exit(3);', /exited with code 3/],
    ['throws', "throw new Error('noise thread broke');", /noise thread broke/],
    ['exits holding a claim it never drew', `${CLAIM_FIRST} process.exit(4);`, /exited with code 4/],
  ] as const) {
    it(`a helper thread that ${what} costs nothing but time: every draw, pending or later, comes out right here`, async () => {
      const prefetch = new NoisePrefetch(SEED, { entry: fixtureThread(body) });
      const noise = new NoiseSource(SEED);
      try {
        const first = addresses(8, 1);
        const pending = [prefetch.request(first, 300), prefetch.request(addresses(8, 2), 300)];
        await waitFor(() => prefetch.stoppedBecause !== null, 10_000, `the helper thread that ${what} to be seen gone`);
        (await pending[0]!).forEach((normals, i) => sameBits(normals, expected(noise, first[i]!, 300), `pending address ${i}`));
        (await pending[1]!).forEach((normals, i) => sameBits(normals, expected(noise, addresses(8, 2)[i]!, 300), `second pending address ${i}`));
        assert.match(prefetch.stoppedBecause ?? '', reason);
        const later = addresses(5, 3);
        (await prefetch.request(later, 17, 3)).forEach((normals, i) => sameBits(normals, expected(noise, later[i]!, 17, 3), `later address ${i}`));
      } finally {
        await prefetch.close();
      }
    });
  }

  it('a helper thread that hangs holding a claim is never waited for, and the watchdog stops it', async () => {
    const prefetch = new NoisePrefetch(SEED, { entry: fixtureThread(`${CLAIM_FIRST} for (;;);`), watchdogMs: 300 });
    const noise = new NoiseSource(SEED);
    try {
      const wanted = addresses(4, 9);
      const draw = prefetch.request(wanted, 64);
      // The scenario: the helper takes its claim and hangs on it for the watchdog's 300 ms (the claim
      // is in shared memory NoisePrefetch does not show; nothing else happens to wait for).
      await sleep(300);
      const waited = performance.now();
      (await draw).forEach((normals, i) => sameBits(normals, expected(noise, wanted[i]!, 64), `address ${i}`));
      assert.ok(performance.now() - waited < 100, 'the draw waited for the hung helper');
      assert.equal(prefetch.stoppedBecause, null);
      // The scenario: the request stays unanswered past the watchdog's time, seen at the next request.
      await sleep(100);
      const later = addresses(3, 10);
      (await prefetch.request(later, 64)).forEach((normals, i) => sameBits(normals, expected(noise, later[i]!, 64), `later address ${i}`));
      assert.match(prefetch.stoppedBecause ?? '', /unanswered for 300 ms/);
    } finally {
      await prefetch.close();
    }
  });

  it('a process whose helper thread hangs still exits when its work ends', async () => {
    const entry = fixtureThread(`${CLAIM_FIRST} for (;;);`);
    const script = `
      import { NoisePrefetch } from ${JSON.stringify(PREFETCH_JS)};
      const prefetch = new NoisePrefetch(1n, { entry: new URL(${JSON.stringify(entry.href)}) });
      const draw = prefetch.request([{ purpose: 'advance', lineage: 1, step: 2 }, { purpose: 'advance', lineage: 2, step: 2 }], 1000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const drawn = (await draw).length;
      // Still up (hung), as far as this process can tell: not a thread that failed to start.
      console.log(drawn === 2 && prefetch.stoppedBecause === null ? 'done' : 'wrong: ' + prefetch.stoppedBecause);
    `;
    const { code, signal, output } = await runNode(script);
    assert.equal(signal, null, `the process did not exit by itself: ${output}`);
    assert.equal(code, 0, output);
    assert.match(output, /^done$/m);
  });

  it('after close, draws run here and are still exact', async () => {
    const prefetch = new NoisePrefetch(SEED);
    const noise = new NoiseSource(SEED);
    const wanted = addresses(6, 4);
    const draw = prefetch.request(wanted, 100);
    await prefetch.close();
    assert.equal(prefetch.stoppedBecause, 'closed');
    (await draw).forEach((normals, i) => sameBits(normals, expected(noise, wanted[i]!, 100), `address ${i}`));
    (await prefetch.request(wanted, 100, 1)).forEach((normals, i) => sameBits(normals, expected(noise, wanted[i]!, 100, 1), `address ${i} after close`));
  });
});

interface Tiny {
  readonly model: GenerativeModel;
  readonly sampler: Sampler;
}

let tiny: Promise<Tiny> | null = null;
function tinySd(): Promise<Tiny> {
  tiny ??= (async () => {
    const plan = await planRun({ model: TINY_SD, prompt: 'two red circles left of a blue square', seed: 1 }, 'test');
    const sampler = createSampler(plan.sampler);
    const model = await openModel(plan.model, { prediction: sampler.prediction, prompt: plan.prompt!, guidanceScale: plan.guidanceScale, providers: ['cpu'] });
    return { model, sampler };
  })();
  return tiny;
}

/** init, a scored advance, mutations, an advance, an archived rollout and a recovery: every noise path. */
function commands(): Command[] {
  const ids = Array.from({ length: 7 }, (_, i) => i);
  return [
    { kind: 'init', ids },
    { kind: 'advance', ids, from: 0, to: 2, purpose: 'advance', score: true },
    { kind: 'mutate', step: 2, items: [{ parent: 0, child: 20, op: 'sde', sigma: 0.3 }, { parent: 1, child: 21, op: 'sde', sigma: 0.2 }] },
    { kind: 'advance', ids: [...ids, 20, 21], from: 2, to: 4, purpose: 'advance' },
    { kind: 'rollout', items: [0, 3, 20].map((source, k) => ({ source, from: 4, archive: k === 0 ? [{ step: 6, id: 40 }] : [], finalId: 30 + k })) },
    { kind: 'init', ids: [50, 51] },
    { kind: 'mutate', step: 0, items: [{ parent: 50, child: 52, op: 'xT', beta: 0.5 }] },
    {
      kind: 'recover',
      rebuild: [60, 61].map((id) => ({ id, recipe: [{ kind: 'init', ids: [id] }, { kind: 'advance', ids: [id], from: 0, to: 3, purpose: 'advance' }] })),
      piece: [{ kind: 'rollout', items: [{ source: 60, from: 3, archive: [], finalId: 62 }] }],
    },
  ];
}

async function runAll(executor: CommandExecutor, list: readonly Command[]): Promise<Map<number, Float32Array>> {
  for (const command of list) await executor.execute(command);
  const ids = [0, 1, 2, 3, 4, 5, 6, 20, 21, 30, 31, 32, 40, 50, 51, 52, 60, 61, 62];
  return new Map(ids.map((id) => [id, executor.store.get(id, 'test').latent]));
}

describe('CommandExecutor with noiseAhead', () => {
  it('gives the same latents as without it, bit for bit, over tiny-sd on the CPU provider', async () => {
    const { model, sampler } = await tinySd();
    const list = commands();
    assert.ok(sampler.steps > 6 && sampler.isStochastic(0), 'the sampler must draw noise for the test to prove anything');
    for (const batchSize of [3, 64]) {
      const off = await runAll(new CommandExecutor(model, sampler, 5n, { batchSize }), list);
      const ahead = new CommandExecutor(model, sampler, 5n, { batchSize, noiseAhead: true });
      try {
        const on = await runAll(ahead, list);
        for (const [id, latent] of off) sameBits(on.get(id)!, latent, `batch ${batchSize}, state ${id}`);
        for (const latent of on.values()) assert.ok(!(latent.buffer instanceof SharedArrayBuffer), 'a state must own its latent, not share the helper buffer');
      } finally {
        await ahead.close();
      }
    }
  });

  it('a helper thread killed during a run does not hang or change it', async () => {
    const { model, sampler } = await tinySd();
    const list = commands();
    const off = await runAll(new CommandExecutor(model, sampler, 6n, { batchSize: 4 }), list);
    // The helper is the Worker the executor posts requests to.
    const threads = new Set<Worker>();
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, ...args: Parameters<Worker['postMessage']>) {
      threads.add(this);
      return post.apply(this, args);
    };
    let calls = 0;
    // ref(): an idle helper is unreferenced, and the exit awaited here must keep the process up.
    const killing = watchDenoiser(model, async () => {
      if (++calls === 5) await Promise.all([...threads].map((t) => (t.ref(), t.terminate())));
    });
    const ahead = new CommandExecutor(killing, sampler, 6n, { batchSize: 4, noiseAhead: true });
    try {
      const on = await runAll(ahead, list);
      assert.equal(threads.size, 1, 'one helper thread, shared by the recovery scratch executors');
      assert.ok(calls > 5);
      for (const [id, latent] of off) sameBits(on.get(id)!, latent, `state ${id}`);
    } finally {
      Worker.prototype.postMessage = post;
      await ahead.close();
    }
  });

  it('an executor dropped without close() stops its helper thread when it is collected', async () => {
    const script = `
      ${WATCH_HELPER}
      ${OPEN_TINY_SD}
      await (async () => {
        const executor = new CommandExecutor(model, sampler, 3n, { batchSize: 4, noiseAhead: true });
        await executor.execute({ kind: 'init', ids: [0, 1] });
        await executor.execute({ kind: 'advance', ids: [0, 1], from: 0, to: 3, purpose: 'advance' });
      })();
      const [thread] = threads;
      if (threads.size !== 1) throw new Error('no helper thread was used');
      const deadline = setTimeout(() => { console.log('the helper thread outlived its executor'); process.exit(1); }, 20000);
      const exited = new Promise((resolve) => thread.once('exit', resolve));
      for (let i = 0; i < 20; i++) { globalThis.gc(); await new Promise((resolve) => setTimeout(resolve, 50)); }
      await exited;
      clearTimeout(deadline);
      console.log('done');
    `;
    const { code, signal, output } = await runNode(script, ['--expose-gc']);
    assert.equal(signal, null, output);
    assert.equal(code, 0, output);
    assert.match(output, /^done$/m);
  });

  for (const close of [true, false]) {
    it(`a process whose executor used the helper exits when its work ends${close ? ', after close()' : ', without close()'}`, async () => {
      const script = `
        ${WATCH_HELPER}
        ${OPEN_TINY_SD}
        const executor = new CommandExecutor(model, sampler, 3n, { batchSize: 4, noiseAhead: true });
        const ids = [0, 1, 2, 3, 4, 5];
        await executor.execute({ kind: 'init', ids });
        await executor.execute({ kind: 'advance', ids, from: 0, to: 5, purpose: 'advance' });
        // Without close() the executor stays reachable, so that its collection cannot stop the helper either.
        ${close ? 'await executor.close();' : 'globalThis.keep = executor;'}
        console.log(threads.size === 1 ? 'done' : 'no helper thread was used');
      `;
      const { code, signal, output } = await runNode(script);
      assert.equal(signal, null, `the process did not exit by itself within 60 s: ${output}`);
      assert.equal(code, 0, output);
      assert.match(output, /^done$/m);
    });
  }
});
