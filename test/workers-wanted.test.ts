/**
 * evosearch_coordinator_workers_wanted's definition on real plans: a run wants as many workers as its
 * largest round has states, divided by the rows one worker runs per model call.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planRun } from '../config/plan-run.js';
import { parseRunConfig } from '../config/resolve-run-config.js';
import { workersWanted } from '../coordinator/service/workers-wanted.js';

const plan = (config: Record<string, unknown>) => planRun(parseRunConfig({ budgetNfe: 5000, ...config }, 'the test'), 'the test');

describe('workers wanted by a run', () => {
  it('EvoSearch: its largest population, on workers whose calls take the work as it comes', async () => {
    const evo = await plan({});
    assert.equal(workersWanted(evo), Math.max(...evo.evosearch.populationSchedule));
  });

  it('Best-of-N: its samples; particle sampling: its particles', async () => {
    const best = await plan({ method: 'best-of-n' });
    assert.equal(workersWanted(best), best.bestOfN.n);
    const particles = await plan({ method: 'particles' });
    assert.equal(workersWanted(particles), particles.particles.particles);
  });

  it('calls of a fixed number of rows divide it, rounded up: callRows, or 32 where the run\'s first provider is CUDA', async () => {
    const largest = Math.max(...(await plan({})).evosearch.populationSchedule);
    assert.equal(workersWanted(await plan({ callRows: 8 })), Math.ceil(largest / 8));
    assert.equal(workersWanted(await plan({ providers: ['cuda', 'cpu'] })), Math.ceil(largest / 32));
    assert.equal(workersWanted(await plan({ providers: ['cuda'], callRows: 'off' })), largest);
    assert.equal(workersWanted(await plan({ callRows: 65536 })), 1, 'never less than one');
  });
});
