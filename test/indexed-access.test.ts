/**
 * `noUncheckedIndexedAccess` holds for the whole tree but its numeric kernels. In those, every read is
 * a typed-array element inside a loop bounded by the array's own length (sampler steps, pixel loops,
 * mixture sums); under the option each read would need a `!`, the same unchecked claim spelled out 300
 * times, so they are compiled without it, and this test keeps everything else under it: a new index
 * read that may miss, anywhere else, fails here with its place. A kernel file that no longer needs the
 * exemption fails too, so the list only shrinks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './support/repo-root.js';

const NUMERIC_KERNELS = new Set<string>([
  // The samplers' step and schedule arithmetic, the composition checker's pixel loops, the analytic
  // mixture's sums, the noise generator's buffers, and the tests that compare their arrays.
  'random/noise-source.ts',
  'samplers/beta-schedule.ts',
  'samplers/ddim.ts',
  'samplers/ddpm.ts',
  'samplers/float32.ts',
  'samplers/flow-euler.ts',
  'samplers/flow-match-schedule.ts',
  'samplers/flow-sde-dpmpp.ts',
  'samplers/flow-sde-schedule.ts',
  'samplers/flow-time.ts',
  'samplers/timesteps.ts',
  'samplers/vp-prediction.ts',
  'samplers/vp-schedule.ts',
  'test/analytic-gmm.test.ts',
  'test/composition-checker.test.ts',
  'test/random.test.ts',
  'test/sampler-mode-weights.test.ts',
  'test/samplers.properties.test.ts',
  'test/samplers.reference.test.ts',
  'worker/models/analytic-gmm-mixture.ts',
  'worker/models/analytic-gmm-rewards.ts',
  'worker/models/analytic-gmm.ts',
  'worker/rewards/composition-checker.ts',
]);

describe('noUncheckedIndexedAccess', () => {
  it('every file but the numeric kernels compiles under it', async () => {
    const root = repoRoot();
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    // tsc exits non-zero when it finds errors: its output is what is judged.
    const output = await promisify(execFile)(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--noEmit', '--noUncheckedIndexedAccess'], { cwd: root, maxBuffer: 64 * 2 ** 20 }).then(
      (r) => r.stdout,
      (e: { stdout?: string }) => e.stdout ?? '',
    );
    const errors = output.split('\n').filter((line) => / error TS\d+:/.test(line));
    const files = new Set(errors.map((line) => line.slice(0, line.indexOf('('))));
    const outside = errors.filter((line) => !NUMERIC_KERNELS.has(line.slice(0, line.indexOf('('))));
    assert.deepEqual(outside, [], 'index reads that may miss, outside the numeric kernels');
    assert.deepEqual([...NUMERIC_KERNELS].filter((f) => !files.has(f)), [], 'kernel files that compile under the option now: take them off the list');
  });
});
