import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { appendServedEvent, EVENTS_FILE, loadServedRuns, saveServedRun, SERVED_FILE } from '../coordinator/service/run-index.js';

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
      await saveServedRun(finished, { runId: 'run-a', plan, submittedAt: '2026-12-01T10:00:00.000Z', state: 'finished', best: -0.5 });
      await appendServedEvent(finished, { event: 'started', payloadJson: '{}' });
      await appendServedEvent(finished, { event: 'finished', payloadJson: '{}' });
      const cut = await folder('run-b');
      await saveServedRun(cut, { runId: 'run-b', plan, submittedAt: '2026-12-01T09:00:00.000Z', state: 'running', best: null });
      await appendServedEvent(cut, { event: 'started', payloadJson: '{}' });
      await appendFile(join(cut, EVENTS_FILE), '{"event":"rou'); // the coordinator died while appending
      await writeFile(join(await folder('not-json'), SERVED_FILE), '{"version":1,');
      await writeFile(join(await folder('other-version'), SERVED_FILE), JSON.stringify({ version: 99, runId: 'other-version' }));
      await saveServedRun(await folder('moved'), { runId: 'run-z', plan, submittedAt: '2026-12-01T11:00:00.000Z', state: 'finished', best: null });
      await folder('a-run-folder-of-evosearch-run'); // no served.json: not the index's
      await writeFile(join(dir, 'stray-file'), '');

      const skipped: string[] = [];
      const runs = await loadServedRuns(dir, (f, why) => skipped.push(`${f.slice(dir.length + 1)}: ${why}`));
      assert.deepEqual(runs.map((r) => [r.runId, r.state, r.cutOff, r.events.map((e) => e.event)]), [
        ['run-b', 'interrupted', true, ['started']],
        ['run-a', 'finished', false, ['started', 'finished']],
      ]);
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
});
