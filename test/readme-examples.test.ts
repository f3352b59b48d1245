import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/**
 * The README's bundle examples (the `npx evosearch run --model models/bundles/... --prompt "..."` lines
 * of its "Real models" section) must produce what their prompts say with the default seed: the
 * composition checker, which reads the objects back from the pixels, passes every check of the prompt
 * on the returned sample. How often that holds over held-out prompts is in
 * bench/reports/search-quality/README.md; this test keeps the examples a reader tries first honest.
 */
async function readmeExamples(): Promise<{ model: string; prompt: string; line: string }[]> {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Real models'), readme.indexOf('\n## ', readme.indexOf('## Real models') + 1));
  return [...section.matchAll(/^npx evosearch run --model (models\/bundles\/[\w-]+) --prompt "([^"]+)"[^\n]*$/gm)].map((m) => ({ model: m[1]!, prompt: m[2]!, line: m[0] }));
}

describe("the README's examples", () => {
  it('are found in the README (three bundles)', async () => {
    const examples = await readmeExamples();
    assert.deepEqual(examples.map((e) => e.model).sort(), ['models/bundles/tiny-flux', 'models/bundles/tiny-sd', 'models/bundles/tiny-video']);
  });

  it('produce what their prompts say with the default seed (every composition check passes)', async (t) => {
    const folder = await mkdtemp(join(tmpdir(), 'readme-examples-'));
    try {
      for (const example of await readmeExamples()) {
        await t.test(example.line, async () => {
          const { stdout } = await run(process.execPath, [join(root, 'bin', 'evosearch.js'), 'run', '--model', join(root, example.model), '--prompt', example.prompt, '--out', join(folder, example.model.split('/').at(-1)!), '--no-progress'], { cwd: root, maxBuffer: 1 << 24 });
          const found = /composition-checker (\d+\.\d+)/.exec(stdout);
          assert.ok(found, `the summary names no composition-checker figure:\n${stdout}`);
          assert.equal(Number(found[1]), 1, `"${example.prompt}" on ${example.model}: the returned sample passes ${found[1]} of the prompt's checks, not all:\n${stdout}`);
        });
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
