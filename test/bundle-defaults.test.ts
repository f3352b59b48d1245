import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planRun } from '../config/plan-run.js';
import { ConfigError } from '../config/resolve-run-config.js';

const SD21 = fileURLToPath(new URL('../../test/fixtures/sd21-layout', import.meta.url));

/** A copy of the SD2.1-layout fixture whose model_index.json carries `own` as its _evosearch block. */
async function bundleWith(own: Record<string, unknown>): Promise<{ folder: string; done: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'bundle-defaults-'));
  const folder = join(root, 'bundle');
  await cp(SD21, folder, { recursive: true });
  const indexFile = join(folder, 'model_index.json');
  const index = JSON.parse(await readFile(indexFile, 'utf8')) as Record<string, unknown>;
  await writeFile(indexFile, JSON.stringify({ ...index, _evosearch: own }));
  return { folder, done: () => rm(root, { recursive: true }) };
}

describe("a bundle's measured search defaults (model_index.json _evosearch)", () => {
  it('give the method and budget when the user names none; what the user names wins', async () => {
    const { folder, done } = await bundleWith({ default_method: 'particles', default_budget_nfe: 1200 });
    try {
      const plan = await planRun({ model: folder, prompt: 'a cat' }, 'test');
      assert.equal(plan.method, 'particles');
      assert.equal(plan.budgetNfe, 1200);
      const chosen = await planRun({ model: folder, prompt: 'a cat', method: 'evosearch', budgetNfe: 3000 }, 'test');
      assert.equal(chosen.method, 'evosearch');
      assert.equal(chosen.budgetNfe, 3000);
      // A population schedule of the user's own fixes the budget: the bundle's default does not apply.
      const shaped = await planRun({ model: folder, prompt: 'a cat', evosearch: { populationSchedule: [10, 5, 5, 5, 5] } }, 'test');
      assert.deepEqual(shaped.evosearch.populationSchedule, [10, 5, 5, 5, 5]);
    } finally {
      await done();
    }
  });

  it('without them, the preset schedule sets the budget', async () => {
    const { folder, done } = await bundleWith({});
    try {
      const plan = await planRun({ model: folder, prompt: 'a cat' }, 'test');
      assert.equal(plan.method, 'evosearch');
      assert.equal(plan.budgetNfe, plan.planned.evosearch.nfe);
    } finally {
      await done();
    }
  });

  for (const [field, value] of [['default_method', 'beam-search'], ['default_budget_nfe', -5], ['default_budget_nfe', 'lots']] as const) {
    it(`refuses ${field} = ${JSON.stringify(value)}, naming the file and the field`, async () => {
      const { folder, done } = await bundleWith({ [field]: value });
      try {
        await assert.rejects(planRun({ model: folder, prompt: 'a cat' }, 'test'), (e: unknown) => e instanceof ConfigError && e.field === 'model' && e.message.includes('model_index.json') && e.message.includes(field));
      } finally {
        await done();
      }
    });
  }
});
