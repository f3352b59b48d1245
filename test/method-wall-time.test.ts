import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { criticalPath, instrumentedRun, plannedPath, presetPaths, stableRows, type ModelCall } from '../bench/method-wall-time.js';
import { CheckpointWriter, readCheckpoint, JOURNAL_FILE, MANIFEST_FILE, PREVIOUS_MANIFEST_FILE } from '../coordinator/checkpoint/checkpoint-store.js';
import { Dispatcher } from '../coordinator/engine/dispatcher.js';
import { RunCancelledError, runSearch, type JournalEntry } from '../coordinator/engine/run-search.js';
import type { WorkerPool } from '../proto/worker-pool.js';
import { runSearchToFolder } from '../coordinator/run/run-search-to-folder.js';
import { createSearch } from '../coordinator/engine/create-search.js';
import { InProcessPool } from '../coordinator/transport/in-process-pool.js';
import { resolveRunConfig, type MethodName, type RunPlan } from '../config/resolve-run-config.js';
import type { Command, CommandResult } from '../proto/commands.js';
import { createSampler } from '../samplers/index.js';
import { CommandExecutor } from '../worker/executor.js';
import { loadModel } from '../worker/models/load-model.js';
import { SnapshotFolder } from '../worker/snapshot-folder.js';
import { searchDecisions } from './support/search-decisions.js';

const METHODS: MethodName[] = ['evosearch', 'best-of-n', 'particles'];
const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function inProcess(plan: RunPlan, count: number, snapshotFolder?: string): InProcessPool {
  const sampler = createSampler(plan.sampler);
  const model = loadModel(plan.model, { prediction: sampler.prediction });
  const snapshots = snapshotFolder === undefined ? {} : { snapshots: new SnapshotFolder(snapshotFolder) };
  return new InProcessPool(Array.from({ length: count }, () => new CommandExecutor(model, sampler, BigInt(plan.seed), { batchSize: plan.batchSize, ...snapshots })));
}

/** `pool` with every command it is given logged into `events` as `exec:<kind>` (snapshots with their round). */
function logged(pool: WorkerPool, events: string[]): WorkerPool {
  return {
    get size() {
      return pool.size;
    },
    describe: (i) => pool.describe(i),
    close: () => pool.close(),
    execute: (i: number, commands: readonly Command[]): Promise<CommandResult[]> => {
      for (const c of commands) events.push(c.kind === 'snapshot' ? `snapshot:${/round-(\d+)-/.exec(c.name)![1]}` : `exec:${c.kind}`);
      return pool.execute(i, commands);
    },
  };
}

async function withFolder<T>(work: (folder: string) => Promise<T>): Promise<T> {
  const folder = await mkdtemp(join(tmpdir(), 'method-wall-time-'));
  try {
    return await work(folder);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

describe('method-wall-time: the critical path counted from the plan is the one the runs take', () => {
  it('presets: EvoSearch runs N + sum(N - e_g) denoiser steps one after another, Best-of-N N (sd21: 160 against 50)', () => {
    const paths = Object.fromEntries(presetPaths().map((p) => [p.preset, p]));
    assert.deepEqual([paths.sd21!.evosearch, paths.sd21!.bestOfN], [160, 50]);
    assert.deepEqual([paths.flux!.evosearch, paths.wan!.evosearch], [155, 150]);
  });

  for (const workers of [1, 3]) {
    it(`${workers} worker(s): planned denoiser calls on the critical path equal the measured ones, for every method`, async () => {
      for (const method of METHODS) {
        const plan = resolveRunConfig({ method, budgetNfe: 3000, seed: 4, workers });
        const { calls, result } = await withFolder((folder) => instrumentedRun(plan, folder));
        const planned = plannedPath(plan, workers);
        assert.equal(criticalPath(calls, 'denoiser'), planned.denoiserCalls, method);
        const scoring = new Set(calls.filter((c) => c.part === 'decoder' && c.round < result.record.rounds.length).map((c) => c.round));
        assert.equal(scoring.size, planned.scoringRounds, method);
        assert.equal(result.record.spent.nfe, plan.planned[method].nfe, method);
      }
    });
  }

  it('criticalPath takes the busiest worker of each round', () => {
    const call = (worker: number, round: number): ModelCall => ({ worker, round, part: 'denoiser', batch: 1, ms: 1, newShape: false });
    assert.equal(criticalPath([call(0, 0), call(0, 0), call(1, 0), call(1, 1), call(0, 1), call(1, 1)]), 2 + 2);
  });

  it('padding every model call to one batch size gives the same search on the CPU', async () => {
    const plan = resolveRunConfig({ method: 'evosearch', budgetNfe: 2000, seed: 6, workers: 2 });
    assert.equal(stableRows(plan, 2), 2 ** Math.ceil(Math.log2(Math.ceil(Math.max(...plan.evosearch.populationSchedule) / 2))));
    const plain = await withFolder((folder) => instrumentedRun(plan, folder));
    const padded = await withFolder((folder) => instrumentedRun(plan, folder, true));
    assert.deepEqual(searchDecisions(padded.result.outcome), searchDecisions(plain.result.outcome));
    assert.deepEqual(new Set(padded.calls.filter((c) => c.part === 'denoiser').map((c) => c.batch)), new Set([stableRows(plan, 2)]));
  });
});

describe('checkpoints written while the next round runs', () => {
  it('each entry is kept before the next round\'s snapshot, the next round starts before it is kept, and the search is unchanged', async () => {
    const plan = resolveRunConfig({ method: 'evosearch', budgetNfe: 3000, seed: 3 });
    const sampler = createSampler(plan.sampler);
    await withFolder(async (folder) => {
      const reference = await runSearch(createSearch(plan, sampler), new Dispatcher(inProcess(plan, 2)), { population: 4, thumbnails: 8 });
      const events: string[] = [];
      const kept: number[] = [];
      const outcome = await runSearch(createSearch(plan, sampler), new Dispatcher(logged(inProcess(plan, 2, folder), events)), {
        population: 4,
        thumbnails: 8,
        snapshots: true,
        onJournal: async (entry: JournalEntry) => {
          events.push(`journal-start:${entry.report.round}`);
          // The scenario: keeping an entry takes a while, long enough for the next round to go out.
          await sleep(15);
          kept.push(entry.report.round);
          events.push(`journal-done:${entry.report.round}`);
        },
      });
      assert.deepEqual(searchDecisions(outcome), searchDecisions(reference));
      const rounds = outcome.rounds.length;
      assert.deepEqual(kept, [...Array(rounds).keys()], 'every entry kept, in order, before runSearch returned');
      for (let r = 0; r + 1 < rounds; r++) {
        const started = events.indexOf(`journal-start:${r}`);
        const done = events.indexOf(`journal-done:${r}`);
        const nextWork = events.findIndex((e, i) => i > events.indexOf(`snapshot:${r}`) && e.startsWith('exec:'));
        const nextSnapshot = events.indexOf(`snapshot:${r + 1}`);
        assert.ok(started < nextWork && nextWork < done, `round ${r + 1} was not sent while round ${r}'s entry was being kept: ${events.join(' ')}`);
        assert.ok(done < nextSnapshot, `round ${r + 1}'s snapshot was taken before round ${r}'s entry was kept: ${events.join(' ')}`);
      }
    });
  });

  it('a failed entry fails the run, and is never an unhandled rejection', async () => {
    const plan = resolveRunConfig({ method: 'evosearch', budgetNfe: 3000, seed: 3 });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await assert.rejects(
        runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(inProcess(plan, 2)), {
          onJournal: async (entry: JournalEntry) => {
            if (entry.report.round === 1) throw new Error('disk full');
          },
        }),
        /disk full/,
      );
      // What is checked is an event that must not happen: a stray rejection would be reported by now.
      await sleep(10);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a cancelled run stops only once the entry of its last round is kept', async () => {
    const plan = resolveRunConfig({ method: 'evosearch', budgetNfe: 3000, seed: 3 });
    const stop = new AbortController();
    let keptRounds = 0;
    await assert.rejects(
      runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(inProcess(plan, 2)), {
        signal: stop.signal,
        onJournal: async () => {
          stop.abort('test');
          // The scenario: the entry is still being kept when the cancel comes.
          await sleep(20);
          keptRounds += 1;
        },
      }),
      (error: unknown) => error instanceof RunCancelledError && keptRounds === 1,
    );
  });

  it('the writer appends rounds asked for without waiting in order, and keeps the previous manifest beside the current one', async () => {
    const plan = resolveRunConfig({ method: 'best-of-n', budgetNfe: 500, seed: 1 });
    const journal: JournalEntry[] = [];
    await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(inProcess(plan, 1)), { onJournal: (e: JournalEntry) => void journal.push(e) });
    await withFolder(async (folder) => {
      const writer = new CheckpointWriter(folder, 'run-1', plan);
      const entries = [journal[0]!, journal[0]!, journal[0]!];
      const written = entries.map((e, i) => writer.append({ ...e, report: { ...e.report, round: i } }, e.report.counters, null));
      await Promise.all(written);
      const loaded = readCheckpoint(folder);
      assert.equal(loaded.manifest.rounds, 3);
      assert.deepEqual(loaded.journal.map((e) => e.report.round), [0, 1, 2]);
      const previous = JSON.parse(readFileSync(join(folder, PREVIOUS_MANIFEST_FILE), 'utf8')) as { rounds: number };
      assert.equal(previous.rounds, 2);
      assert.ok(existsSync(join(folder, MANIFEST_FILE)) && !(await readdir(folder)).some((f) => f.endsWith('.tmp')), 'temporary manifests left behind');
    });
  });

  it('after a failed append, later rounds are refused rather than appended to a journal in an unknown state', async () => {
    const plan = resolveRunConfig({ method: 'best-of-n', budgetNfe: 500, seed: 1 });
    const journal: JournalEntry[] = [];
    await runSearch(createSearch(plan, createSampler(plan.sampler)), new Dispatcher(inProcess(plan, 1)), { onJournal: (e: JournalEntry) => void journal.push(e) });
    const folder = await mkdtemp(join(tmpdir(), 'method-wall-time-'));
    const writer = new CheckpointWriter(folder, 'run-1', plan);
    await rm(folder, { recursive: true });
    const entry = journal[0]!;
    await assert.rejects(writer.append(entry, entry.report.counters, null), /ENOENT/);
    await assert.rejects(writer.append(entry, entry.report.counters, null), /an earlier append failed/);
  });

  it('an embedded run ends with every round in its checkpoint and reports where its time went', async () => {
    const plan = resolveRunConfig({ method: 'evosearch', budgetNfe: 3000, seed: 2, workers: 2 });
    await withFolder(async (folder) => {
      const { record, timing, outcome } = await runSearchToFolder(plan, { folder, logger: silent });
      const checkpoint = readCheckpoint(folder);
      assert.equal(checkpoint.manifest.rounds, record.rounds.length);
      assert.equal(checkpoint.journal.length, record.rounds.length);
      assert.ok(existsSync(join(folder, JOURNAL_FILE)));
      assert.ok(timing.searchMs > 0 && timing.checkpointBytes > 0 && timing.poolMs > 0);
      const t = outcome.timing;
      assert.ok(t.workersMs + t.snapshotMs + t.journalMs + t.fetchMs <= timing.searchMs + 1, JSON.stringify({ t, timing }));
    });
  });
});
