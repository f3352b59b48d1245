import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { runSearch, type JournalEntry, type SearchOutcome } from '../coordinator/engine/run-search.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { resolveRunConfig, type MethodName, type RunPlan } from '../config/resolve-run-config.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';
import { SnapshotFolder } from '../worker/snapshot-folder.js';
import { searchDecisions } from './support/search-decisions.js';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TakenSnapshot } from '../coordinator/engine/run-search.js';

/** `count` workers in this process; with `snapshotFolder`, they keep their snapshots there (as local threads keep theirs in the run folder). */
function pool(plan: RunPlan, count: number, snapshotFolder?: string): InProcessPool {
  const sampler = createSampler(plan.sampler);
  const model = loadModel(plan.model, { prediction: sampler.prediction });
  const snapshots = snapshotFolder === undefined ? {} : { snapshots: new SnapshotFolder(snapshotFolder) };
  return new InProcessPool(Array.from({ length: count }, () => new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize, ...snapshots })));
}

const decisions = searchDecisions;

describe('resuming a search from its journal: the same answer as the uninterrupted run', () => {
  for (const method of ['evosearch', 'best-of-n', 'particles', 'evosearch-adaptive'] as MethodName[]) {
    it(`${method}: stopped after any round, resumed on other workers, gives the same decisions, compute and samples`, async () => {
      const plan = resolveRunConfig({ method, budgetNfe: 4000, seed: 5 });
      const sampler = createSampler(plan.sampler);
      const journal: JournalEntry[] = [];
      const uninterrupted = await runSearch(createSearch(plan, sampler), new Dispatcher(pool(plan, 2)), { population: 6, thumbnails: 8, onJournal: (e) => journal.push(e) });
      // After the first round, mid-way, and after the last (the resume only fetches the results).
      const stops = [...new Set([1, Math.floor(journal.length / 2), journal.length])].filter((k) => k >= 1 && k <= journal.length);
      assert.ok(stops.length > 0);
      for (const k of stops) {
        const dispatcher = new Dispatcher(pool(plan, 3));
        const resumed = await runSearch(createSearch(plan, sampler), dispatcher, { population: 6, thumbnails: 8, replay: journal.slice(0, k) });
        assert.deepEqual(decisions(resumed), decisions(uninterrupted), `resumed after round ${k}`);
        assert.deepEqual([...resumed.thumbnails.keys()].sort(), [...uninterrupted.thumbnails.keys()].sort(), 'thumbnails of replayed rounds kept');
        assert.ok(dispatcher.stats.rebuiltStates > 0 || method === 'best-of-n', 'no live state was rebuilt');
      }
    });
  }

  it('refuses a journal that does not answer the search (another configuration)', async () => {
    const plan = resolveRunConfig({ budgetNfe: 4000, seed: 5 });
    const journal: JournalEntry[] = [];
    await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(pool(plan, 1)), { onJournal: (e) => journal.push(e) });
    const other = resolveRunConfig({ method: 'particles', budgetNfe: 4000, seed: 5 });
    await assert.rejects(runSearch(createSearch(other, createSampler(other.sampler)), new Dispatcher(pool(other, 1)), { replay: journal.slice(0, 2) }), /does not answer the commands/);
  });
});

describe('resuming from the workers\' state snapshots: nothing is recomputed, and the answer is the same', () => {
  for (const method of ['evosearch', 'best-of-n', 'particles', 'evosearch-adaptive'] as MethodName[]) {
    it(`${method}: stopped after any round, resumed on other workers from the snapshot of that round`, async () => {
      const plan = resolveRunConfig({ method, budgetNfe: 4000, seed: 5 });
      const sampler = createSampler(plan.sampler);
      const folder = await mkdtemp(join(tmpdir(), 'snapshots-'));
      try {
        const journal: JournalEntry[] = [];
        const snapshots: (TakenSnapshot | null)[] = [];
        const uninterrupted = await runSearch(createSearch(plan, sampler), new Dispatcher(pool(plan, 2, folder)), {
          population: 6,
          snapshots: true,
          onJournal: (e, snapshot) => {
            journal.push(e);
            snapshots.push(snapshot);
          },
        });
        assert.ok(snapshots.every((s) => s !== null), 'a snapshot failed');
        // Each worker keeps its files of the last two rounds (a checkpoint and the one before it).
        assert.ok((await readdir(folder)).length <= 4, `old snapshots were not dropped: ${(await readdir(folder)).join(', ')}`);
        for (const k of [...new Set([journal.length - 1, journal.length])].filter((k) => k >= 1)) {
          const dispatcher = new Dispatcher(pool(plan, 3, folder));
          const resumed = await runSearch(createSearch(plan, sampler), dispatcher, { population: 6, replay: journal.slice(0, k), restore: snapshots[k - 1]!.files });
          assert.deepEqual(decisions(resumed), decisions(uninterrupted), `resumed after round ${k}`);
          assert.equal(dispatcher.stats.rebuildCounters.nfe, 0, `resumed after round ${k}: states were recomputed`);
          assert.ok(dispatcher.stats.restoredStates > 0 || method === 'best-of-n', 'nothing was loaded');
        }
      } finally {
        await rm(folder, { recursive: true });
      }
    });
  }

  it('a damaged or missing snapshot file is reported, and its states are rebuilt instead: the answer is the same', async () => {
    const plan = resolveRunConfig({ budgetNfe: 4000, seed: 5 });
    const sampler = createSampler(plan.sampler);
    const folder = await mkdtemp(join(tmpdir(), 'snapshots-'));
    try {
      const journal: JournalEntry[] = [];
      const snapshots: (TakenSnapshot | null)[] = [];
      const uninterrupted = await runSearch(createSearch(plan, sampler), new Dispatcher(pool(plan, 2, folder)), { snapshots: true, onJournal: (e, s) => (journal.push(e), snapshots.push(s)) });
      const k = journal.length - 1;
      const [damaged, missing] = snapshots[k - 1]!.files;
      const bytes = await readFile(join(folder, damaged!.name));
      bytes[bytes.length - 1]! ^= 0xff;
      await writeFile(join(folder, damaged!.name), bytes);
      await rm(join(folder, missing!.name));
      const problems: string[] = [];
      const dispatcher = new Dispatcher(pool(plan, 2, folder), { onSnapshotProblem: (detail) => problems.push(detail) });
      const resumed = await runSearch(createSearch(plan, sampler), dispatcher, { replay: journal.slice(0, k), restore: snapshots[k - 1]!.files });
      assert.deepEqual(decisions(resumed), decisions(uninterrupted));
      assert.equal(dispatcher.stats.restoredStates, 0);
      assert.ok(dispatcher.stats.rebuiltStates > 0);
      assert.equal(problems.length, 2, problems.join('\n'));
      assert.ok(problems.some((p) => /checksum mismatch/.test(p)) && problems.some((p) => /cannot be read/.test(p)), problems.join('\n'));
    } finally {
      await rm(folder, { recursive: true });
    }
  });
});
