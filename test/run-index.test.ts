import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { appendServedEvent, EVENTS_FILE, loadServedRuns, saveServedRun, SERVED_FILE } from '../coordinator/service/run-index.js';
import { runEventOf } from '../proto/coordinator-messages.js';

const AT = '2026-12-01T10:00:01.000Z';
const startedEvent = (runId: string) => runEventOf('started', { method: 'evosearch', model: 'analytic:gmm', budgetNfe: 1000, plannedNfe: 990, workers: ['thread 0'] }, runId, AT);
const finishedEvent = (runId: string) => runEventOf('finished', { best: { candidate: 3, reward: -0.5, metrics: { heldOut: 0.25 } }, spent: { nfe: 990, forwardPasses: 990, decodes: 12, rewardCalls: 12 }, wallMs: 1234, workers: ['thread 0'] }, runId, AT);

describe("the coordinator's run index in --runs-dir", () => {
  it('reads back what it wrote; a run left queued or running comes back interrupted; bad entries are skipped, each with why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'run-index-'));
    try {
      const plan = resolveRunConfig({ budgetNfe: 1000 });
      const folder = async (name: string) => {
        const f = join(dir, name);
        await mkdir(f, { recursive: true });
        return f;
      };
      const finished = await folder('run-a');
      await saveServedRun(finished, { runId: 'run-a', plan, submittedAt: '2026-12-01T10:00:00.000Z', state: 'finished', best: -0.5, owner: 'alice' });
      await appendServedEvent(finished, startedEvent('run-a'));
      await appendServedEvent(finished, finishedEvent('run-a'));
      const cut = await folder('run-b');
      await saveServedRun(cut, { runId: 'run-b', plan, submittedAt: '2026-12-01T09:00:00.000Z', state: 'running', best: null, owner: null });
      await appendServedEvent(cut, startedEvent('run-b'));
      await appendFile(join(cut, EVENTS_FILE), '{"runId":"run-b","at":"2026-12-01T10:00:02.000Z","rou'); // the coordinator died while appending
      await writeFile(join(await folder('not-json'), SERVED_FILE), '{"version":1,');
      await writeFile(join(await folder('other-version'), SERVED_FILE), JSON.stringify({ version: 99, runId: 'other-version' }));
      await saveServedRun(await folder('moved'), { runId: 'run-z', plan, submittedAt: '2026-12-01T11:00:00.000Z', state: 'finished', best: null, owner: null });
      await folder('a-run-folder-of-evosearch-run'); // no served.json: not the index's
      await writeFile(join(dir, 'stray-file'), '');

      const skipped: string[] = [];
      const runs = await loadServedRuns(dir, (f, why) => skipped.push(`${f.slice(dir.length + 1)}: ${why}`));
      assert.deepEqual(runs.map((r) => [r.runId, r.state, r.cutOff, r.events.map((e) => e.event), r.eventProblems]), [
        ['run-b', 'interrupted', true, ['started'], []],
        ['run-a', 'finished', false, ['started', 'finished'], []],
      ]);
      // The events come back as they were logged, payloads and all.
      assert.deepEqual(runs[1]!.events, [startedEvent('run-a'), finishedEvent('run-a')]);
      assert.equal(runs[1]!.best, -0.5);
      assert.deepEqual(runs[1]!.plan, JSON.parse(JSON.stringify(plan)));
      assert.equal(skipped.length, 3, skipped.join('\n'));
      assert.match(skipped.find((s) => s.startsWith('not-json'))!, /served\.json is not readable JSON/);
      assert.match(skipped.find((s) => s.startsWith('other-version'))!, /version 99, this coordinator reads version 1/);
      assert.match(skipped.find((s) => s.startsWith('moved'))!, /names run run-z, but the folder is moved/);
      assert.deepEqual(await loadServedRuns(join(dir, 'no-such-dir'), () => assert.fail('nothing to skip')), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('events.jsonl holds the proto3 JSON of each RunEvent: lowerCamelCase names, uint64 as strings, the payload under its kind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'run-index-json-'));
    try {
      await appendServedEvent(dir, finishedEvent('run-a'));
      const line = JSON.parse(await readFile(join(dir, EVENTS_FILE), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(line, { runId: 'run-a', at: AT, finished: { best: { candidate: 3, reward: -0.5, metrics: { heldOut: 0.25 } }, spent: { nfe: '990', forwardPasses: '990', decodes: '12', rewardCalls: '12' }, wallMs: '1234', workers: ['thread 0'] } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reads the previous release's event lines ({event, payloadJson}) as the events they were, and leaves out a line that is no event, saying why", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'run-index-old-'));
    try {
      const plan = resolveRunConfig({ budgetNfe: 1000 });
      const folder = join(dir, 'run-old');
      await mkdir(folder);
      await saveServedRun(folder, { runId: 'run-old', plan, submittedAt: '2026-11-01T10:00:00.000Z', state: 'interrupted', best: -1, owner: null });
      const old = (event: string, payload: Record<string, unknown>) => `${JSON.stringify({ event, payloadJson: JSON.stringify({ runId: 'run-old', ...payload, at: AT }) })}\n`;
      await writeFile(
        join(folder, EVENTS_FILE),
        old('started', { method: 'evosearch', model: 'analytic:gmm', budgetNfe: 1000, plannedNfe: 990, workers: ['a:1 analytic'] }) +
          old('round', { round: 0, label: 'generation 0', best: null, nfe: 250, plannedNfe: 990, roundMs: 12 }) +
          old('round', { round: 1, label: 'generation 1', best: -1, nfe: 'many', plannedNfe: 990, roundMs: 12 }) +
          old('interrupted', { error: 'the coordinator is stopping', folder, resume: 'evosearch resume run-old --cluster nats://x:4222' }),
      );
      const [run] = await loadServedRuns(dir, () => assert.fail('nothing to skip'));
      assert.deepEqual(run!.events.map((e) => e.event), ['started', 'round', 'interrupted']);
      assert.deepEqual(run!.events[1], { runId: 'run-old', at: AT, event: 'round', payload: { round: 0, label: 'generation 0', nfe: 250, plannedNfe: 990, roundMs: 12 } });
      assert.equal(run!.eventProblems.length, 1, run!.eventProblems.join('\n'));
      assert.match(run!.eventProblems[0]!, /events\.jsonl line 3: RunEvent\.round\.nfe: must be a whole number/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
