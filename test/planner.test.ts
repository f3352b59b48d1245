import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { evoSearchSpend, planBestOfN, planEvoSearch } from '../search/planner.js';
import { SearchConfigError } from '../search/search-config-error.js';

const SD21 = { evolutionSchedule: [0, 20, 30, 40], populationSchedule: [42, 26, 26, 26, 30] };
const WAN = { evolutionSchedule: [5, 20, 30, 45], populationSchedule: [10, 5, 5, 5, 5] };

describe('budget planner', () => {
  it('reproduces the preset schedule at the preset budget', () => {
    assert.deepEqual(planEvoSearch(5000, 50, SD21).populationSchedule, [42, 26, 26, 26, 30]);
    assert.deepEqual(planEvoSearch(1000, 50, WAN).populationSchedule, [10, 5, 5, 5, 5]);
  });

  it('spends every budget within one trajectory and never over it', () => {
    for (const base of [SD21, WAN]) {
      for (let budget = 600; budget <= 40000; budget += 397) {
        const plan = planEvoSearch(budget, 50, base);
        const spent = evoSearchSpend(plan, 50).nfe;
        assert.ok(spent <= budget, `budget ${budget}: spent ${spent}`);
        assert.ok(budget - spent < 50, `budget ${budget}: spent ${spent}, more than one trajectory short`);
        assert.deepEqual(plan.evolutionSchedule, base.evolutionSchedule);
        const bon = planBestOfN(budget, 50) * 50;
        assert.ok(Math.abs(bon - spent) < 50, `Best-of-N ${bon} vs EvoSearch ${spent}`);
      }
    }
  });

  it('keeps the schedule shape when scaling', () => {
    const plan = planEvoSearch(10000, 50, SD21).populationSchedule;
    plan.forEach((k, g) => assert.ok(Math.abs(k / SD21.populationSchedule[g]! - 2) < 0.2, `K_${g} = ${k}`));
  });

  it('rejects a budget too small for the schedule, naming the field and the minimum', () => {
    assert.throws(() => planEvoSearch(100, 50, SD21), (e: unknown) => e instanceof SearchConfigError && e.field === 'budgetNfe' && /at least|already costs 1?\d+/.test(e.message));
    assert.throws(() => planBestOfN(49, 50), (e: unknown) => e instanceof SearchConfigError && e.field === 'budgetNfe');
  });
});
