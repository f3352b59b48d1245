/**
 * The live view's parts in this process: `evosearch view`'s source following a run folder that another
 * process writes (round by round, then cut off by kill -9: interrupted, with the resume command; then
 * resumed to its end), a finished folder without an event log (its events made from record.json and
 * the journal), the event stream's heartbeats and its bound on a reader that does not read, and what a
 * round event's detail costs a run nobody watches.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FolderRunSource } from '../coordinator/run/folder-view-source.js';
import { RoundDetails } from '../coordinator/run/round-detail.js';
import { runEventOf, runEventToJson, type TypedRunEvent } from '../proto/coordinator-messages.js';
import type { CommandResult } from '../proto/commands.js';
import type { CandidateRecord } from '../search/lineage.js';
import type { RoundReport } from '../coordinator/engine/run-search.js';
import type { Following, RunSource, ViewableRun } from '../view/run-source.js';
import { ViewServer } from '../view/view-server.js';
import { evosearch, EVOSEARCH_BIN } from './support/evosearch-cli.js';
import { repoRoot } from './support/repo-root.js';
import { waitFor } from './support/wait-for.js';

const kinds = (events: readonly TypedRunEvent[]) => events.map((e) => e.event);

/** Every event of the source's run: those so far, and (following) the rest until it ends. */
function collect(source: FolderRunSource): { readonly events: TypedRunEvent[]; readonly following: Following } {
  const run = source.find(source.runId)!;
  const events: TypedRunEvent[] = [];
  const following = run.follow((e) => events.push(e));
  events.unshift(...following.past);
  return { events, following };
}

describe("the live view's run folder source, event stream and round detail", () => {
  it('follows a run another process writes round by round; kill -9 makes it interrupted; resumed, it finishes', { timeout: 180_000 }, async () => {
    let child: ReturnType<typeof spawn> | null = null;
    const dir = await mkdtemp(join(tmpdir(), 'evosearch-view-folder-'));
    try {
      const folder = join(dir, 'run');
      const config = join(dir, 'many-rounds.json');
      const steps = Array.from({ length: 24 }, (_, i) => 2 * i);
      // 25 rounds of about a quarter of a second each (the archive off keeps the record small).
      await writeFile(config, JSON.stringify({ evosearch: { archive: false, evolutionSchedule: steps, populationSchedule: [...steps, 48].map(() => 4000) } }));
      const running = spawn(process.execPath, [EVOSEARCH_BIN, 'run', '--config', config, '--seed', '5', '--no-progress', '--out', folder, '--workers', '1'], { cwd: repoRoot(), stdio: ['ignore', 'ignore', 'pipe'] });
      child = running;
      let stderr = '';
      running.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      let exitCode: number | null | undefined;
      const exited = new Promise((resolve) => running.once('exit', (code) => resolve((exitCode = code))));
      await waitFor(() => exitCode !== undefined || (existsSync(join(folder, 'events.jsonl')) && readFileSync(join(folder, 'events.jsonl'), 'utf8').includes('"round"')), 60_000, 'the first round in events.jsonl');
      assert.equal(exitCode, undefined, `the run ended before its first round: ${stderr}`);
      const source = await FolderRunSource.open(folder);
      assert.equal(source.list()[0]!.state, 'running');
      const run = source.find(source.runId)!;
      assert.deepEqual(run.cancellable().possible, false);
      assert.match((run.cancellable() as { why: string }).why, /written by process \d+ on .*: stop it there .*evosearch resume/);
      assert.match((run.files() as { refused: string }).refused, /has not finished/);
      const { events, following } = collect(source);
      const seen = events.filter((e) => e.event === 'round').length;
      await waitFor(() => events.filter((e) => e.event === 'round').length >= seen + 2, 60_000, 'two more rounds followed live');
      const round = events.filter((e) => e.event === 'round').at(-1)!;
      assert.ok(round.event === 'round' && round.payload.detail !== undefined && round.payload.detail.population.length === 64 && round.payload.detail.scored === 4000, 'a round carries its detail, its population capped at 64');
      const sample = await run.thumbnail(round.payload.round, round.payload.detail.population[0]!.id);
      assert.ok(sample !== null && sample.shape.length === 1, "the journal's thumbnail of a scored candidate (a vector model's sample itself)");
      running.kill('SIGKILL');
      await exited;
      await waitFor(() => events.at(-1)?.event === 'interrupted', 10_000, 'the cut-off run shown interrupted');
      const last = events.at(-1)!;
      assert.ok(last.event === 'interrupted' && last.payload.resume === `evosearch resume ${folder}`, JSON.stringify(last));
      assert.equal(source.list()[0]!.state, 'interrupted');
      following.stop();
      source.close();

      const resumed = await evosearch(['resume', folder, '--no-progress']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const after = await FolderRunSource.open(folder);
      const all = collect(after).events;
      assert.equal(after.list()[0]!.state, 'finished');
      assert.deepEqual(kinds(all).filter((k) => k !== 'round'), ['started', 'resumed', 'started', 'finished'], 'the log goes on after the torn line a kill -9 may leave');
      assert.equal(all.filter((e) => e.event === 'round').at(-1)!.event === 'round' && (all.filter((e) => e.event === 'round').at(-1) as { payload: { round: number } }).payload.round, 24, 'every round up to the last');
      const files = after.find(after.runId)!.files();
      assert.ok('files' in files, 'a finished run downloads');
      after.close();
    } finally {
      if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a finished folder without an event log: its events come from record.json, its population and lineage from the journal", { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'evosearch-view-record-'));
    try {
      const folder = join(dir, 'run');
      assert.equal((await evosearch(['run', '--budget-nfe', '3000', '--seed', '1', '--no-progress', '--out', folder])).code, 0);
      await unlink(join(folder, 'events.jsonl'));
      const record = JSON.parse(readFileSync(join(folder, 'record.json'), 'utf8')) as { runId: string; rounds: unknown[]; best: { candidate: number; reward: number } };
      const source = await FolderRunSource.open(folder);
      const { events, following } = collect(source);
      assert.equal(following.ended, true);
      assert.deepEqual(kinds(events), ['started', ...record.rounds.map(() => 'round'), 'finished']);
      const rounds = events.filter((e): e is Extract<TypedRunEvent, { event: 'round' }> => e.event === 'round');
      const last = rounds.at(-1)!.payload.detail!;
      assert.ok(rounds.some((r) => r.payload.detail!.population.length > 0), 'the last scoring round has its population');
      assert.equal(last.best?.reward, record.best.reward);
      assert.equal(last.lineage.at(-1)?.id, record.best.candidate, 'the lineage ends at the best');
      assert.ok(rounds.every((r) => r.payload.detail!.populationMax !== undefined), 'every round has its population statistics');
      assert.deepEqual(source.list()[0]!.state, 'finished');
      source.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an event stream beats while the run is quiet, and a reader that does not read is let go', { timeout: 30_000 }, async () => {
    const listeners = new Set<(e: TypedRunEvent) => void>();
    const run: ViewableRun = {
      listing: () => ({ runId: 'r1', state: 'running', model: 'm', method: 'evosearch', prompt: null, submittedAt: null, best: null }),
      cancellable: () => ({ possible: false, why: 'test' }),
      follow: (onEvent) => {
        listeners.add(onEvent);
        return { past: [], ended: false, stop: () => listeners.delete(onEvent) };
      },
      cancel: async () => 'running',
      files: () => ({ refused: 'test' }),
      thumbnail: async () => null,
    };
    const source: RunSource = { title: 'test', list: () => [run.listing()], find: (id) => (id === 'r1' ? run : undefined), isRunId: (id) => id === 'r1' };
    const server = await ViewServer.start({ listen: '127.0.0.1:0', source, tls: null, credentials: { localToken: 'evs_' + 'a'.repeat(43) }, limits: { heartbeatMs: 50, maxBufferBytes: 256 * 1024 } });
    try {
      const open = () =>
        new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
          const req = request(`${server.url}api/runs/r1/events`, { headers: { Authorization: `Bearer evs_${'a'.repeat(43)}` } }, resolve);
          req.on('error', reject);
          req.end();
        });
      const beating = await open();
      let text = '';
      beating.on('data', (c: Buffer) => (text += c.toString()));
      await waitFor(() => text.split('\n').filter((l) => l.includes('"heartbeat"')).length >= 2, 5000, 'two heartbeats');
      beating.destroy();
      await waitFor(() => listeners.size === 0, 5000, 'the closed stream to stop following');
      const stuck = await open();
      stuck.pause();
      // Rounds with a large label, faster than the paused reader takes them.
      const round = (i: number) => runEventOf('round', { round: i, label: 'y'.repeat(64 * 1024), nfe: i, plannedNfe: 100, roundMs: 1 }, 'r1', new Date().toISOString());
      for (let i = 0; i < 400 && listeners.size > 0; i++) {
        for (const l of [...listeners]) l(round(i));
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(listeners.size, 0, 'a reader more than the bound behind was let go');
      stuck.destroy();
    } finally {
      await server.close();
    }
  });

  it("a round's detail costs a run nobody watches next to nothing, even at a population of 10,000", () => {
    const population = 10_000;
    const candidates: CandidateRecord[] = Array.from({ length: 3 * population }, (_, id) => ({ id, parents: id < population ? [] : [id - population], origin: id < population ? { op: 'init' } : { op: 'mutate-xT', beta: 0.5 }, createdAt: 0, generation: Math.floor(id / population), noise: [], step: 0, evaluations: [], reward: Math.sin(id) }));
    const results: CommandResult[] = [{ kind: 'rollout', scores: Array.from({ length: population }, (_, k) => ({ id: 2 * population + k, reward: Math.sin(2 * population + k), metrics: { heldOut: Math.cos(k) } })), samples: [], counters: { nfe: 0, forwardPasses: 0, decodes: 0, rewardCalls: 0 } }];
    const details = new RoundDetails();
    const workers = { size: 8, describe: (i: number) => `worker ${i}`, busyMsOf: () => 100, modelMsOf: () => 50 };
    const placement = { workers: () => Array.from({ length: 8 }, () => ({ states: 1250, lost: false })), stats: { lostWorkers: 0, rebuiltStates: 0 } };
    const timings: number[] = [];
    for (let round = 0; round < 20; round++) {
      const best = { candidate: 2 * population + 7, sampleId: 2 * population + 7, reward: 1 };
      const report: RoundReport = { round, label: 'g', progress: { generation: round, generations: 20, best, lastRoundRewards: [] }, counters: { nfe: 0, forwardPasses: 0, decodes: 0, rewardCalls: 0 }, roundMs: 1000, bookkeepingMs: 0 };
      const started = performance.now();
      details.noteResults(round, results);
      const detail = details.detail(report, candidates, workers, placement);
      // What publishing it costs on top: the event checked against its message, and its JSON.
      JSON.stringify(runEventToJson(runEventOf('round', { round, label: 'g', best: 1, nfe: 1, plannedNfe: 2, roundMs: 1000, detail }, 'r', new Date().toISOString())));
      timings.push(performance.now() - started);
      assert.equal(detail.population.length, 64);
      assert.equal(detail.scored, population);
    }
    const median = [...timings].sort((a, b) => a - b)[10]!;
    process.stdout.write(`# round detail at a population of ${population}: median ${median.toFixed(2)} ms per round (detail, event check, JSON)\n`);
    assert.ok(median < 25, `the detail took ${median.toFixed(2)} ms a round`);
  });
});
