/**
 * The world's prompt grammar (world/prompt-grammar.ts) against WORLD.md and against the Python side: every
 * prompt form parses to the right structure, every fixture prompt written by models/world/make_fixtures.py
 * round-trips and gets the same held-out verdict, the palette matches what Python rendered, and prompts
 * outside the grammar are refused with an error that names the offending word.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BACKGROUND, PALETTE, SIZE_RADIUS, COLOR_NAMES, CANVAS, FRAMES, MOTION_STEP } from '../world/palette.js';
import { formatPrompt, isHeldoutPrompt, parsePrompt, PromptError, VOCABULARY } from '../world/prompt-grammar.js';
import { repoRoot } from './support/repo-root.js';


interface FixtureDoc {
  canvas: number;
  frames: number;
  step: number;
  background: number[];
  palette: Record<string, number[]>;
  radius: Record<string, number>;
  cases: { prompt: string; heldout: boolean }[];
}
const fixtures = JSON.parse(readFileSync(path.join(repoRoot(), 'test/fixtures/world/world-fixtures.json'), 'utf8')) as FixtureDoc;

/** Runs `fn`, expects a PromptError, returns it. */
function promptError(text: string): PromptError {
  try {
    parsePrompt(text);
  } catch (e) {
    assert.ok(e instanceof PromptError, `expected PromptError for ${JSON.stringify(text)}, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${JSON.stringify(text)} to be refused`);
}

describe('prompt grammar: prompt forms', () => {
  it('one group: count word, optional size, color, shape (plural after two / three)', () => {
    const p = parsePrompt('a red circle');
    assert.equal(p.form, 'single');
    assert.deepEqual(p.groups, [{ count: 1, countWord: 'a', size: null, radius: 4, color: 'red', shape: 'circle' }]);
    assert.equal(p.relation, null);
    assert.equal(p.motion, null);
    assert.deepEqual(parsePrompt('a large blue square').groups[0], { count: 1, countWord: 'a', size: 'large', radius: 6, color: 'blue', shape: 'square' });
    assert.deepEqual(parsePrompt('two green triangles').groups[0], { count: 2, countWord: 'two', size: null, radius: 4, color: 'green', shape: 'triangle' });
    assert.deepEqual(parsePrompt('three small yellow circles').groups[0], { count: 3, countWord: 'three', size: 'small', radius: 3, color: 'yellow', shape: 'circle' });
    assert.equal(parsePrompt('one white square').groups[0].count, 1);
  });

  it('two groups with each relation', () => {
    for (const rel of ['left of', 'right of', 'above', 'below'] as const) {
      const p = parsePrompt(`two blue squares ${rel} a small yellow circle`);
      assert.equal(p.form, 'relation');
      assert.equal(p.relation, rel);
      assert.equal(p.groups.length, 2);
      assert.equal(p.groups[0].count, 2);
      assert.equal(p.groups[1].size, 'small');
      assert.equal(p.motion, null);
    }
  });

  it('two groups with "and"', () => {
    const p = parsePrompt('two yellow triangles and a blue circle');
    assert.equal(p.form, 'conjunction');
    assert.equal(p.relation, null);
    assert.deepEqual(
      p.groups.map((g) => [g.count, g.color, g.shape]),
      [
        [2, 'yellow', 'triangle'],
        [1, 'blue', 'circle'],
      ],
    );
  });

  it('motion with one or two groups, every direction', () => {
    for (const d of ['left', 'right', 'up', 'down'] as const) {
      const one = parsePrompt(`a red circle moving ${d}`);
      assert.equal(one.form, 'motion');
      assert.equal(one.motion, d);
      assert.equal(one.groups.length, 1);
      const two = parsePrompt(`a blue square and three small green triangles moving ${d}`);
      assert.equal(two.form, 'motion');
      assert.equal(two.motion, d);
      assert.equal(two.groups[1]?.count, 3);
    }
  });

  it('every fixture prompt round-trips and gets the same held-out verdict as prompts.py', () => {
    assert.ok(fixtures.cases.length > 50);
    const forms = new Set<string>();
    for (const c of fixtures.cases) {
      const p = parsePrompt(c.prompt);
      forms.add(p.form);
      assert.equal(formatPrompt(p), c.prompt);
      assert.equal(isHeldoutPrompt(p), c.heldout, c.prompt);
    }
    assert.deepEqual([...forms].sort(), ['conjunction', 'motion', 'relation', 'single']);
  });

  it('held-out rule: held-out objects anywhere, "below" only with a green first group', () => {
    assert.equal(isHeldoutPrompt('a purple triangle'), true);
    assert.equal(isHeldoutPrompt('a red circle and two small yellow squares'), true);
    assert.equal(isHeldoutPrompt('a white circle moving up'), true);
    assert.equal(isHeldoutPrompt('a green circle below a red square'), true);
    assert.equal(isHeldoutPrompt('a red square below a green circle'), false);
    assert.equal(isHeldoutPrompt('a green circle above a red square'), false);
    assert.equal(isHeldoutPrompt('a purple circle and a white triangle'), false);
  });

  it('palette, sizes and canvas are the ones the Python renderer used', () => {
    assert.deepEqual([...BACKGROUND], fixtures.background);
    assert.deepEqual(Object.keys(fixtures.palette), [...COLOR_NAMES]);
    for (const c of COLOR_NAMES) assert.deepEqual([...PALETTE[c]], fixtures.palette[c], c);
    assert.deepEqual({ ...SIZE_RADIUS }, fixtures.radius);
    assert.equal(CANVAS, fixtures.canvas);
    assert.equal(FRAMES, fixtures.frames);
    assert.equal(MOTION_STEP, fixtures.step);
  });
});

describe('prompt grammar: errors name the offending word', () => {
  const cases: [text: string, word: string | null, position: number, mentions: string][] = [
    // unknown words
    ['a purpel circle', 'purpel', 1, 'unknown word "purpel"'],
    ['a red blob', 'blob', 2, 'unknown word "blob"'],
    ['a red circle beside a blue square', 'beside', 3, 'unknown word "beside"'],
    ['a red circle moving sideways', 'sideways', 4, 'unknown word "sideways"'],
    ['A red circle', 'A', 0, 'unknown word "A"'],
    // bad counts
    ['four red circles', 'four', 0, 'unknown word "four"'],
    ['3 red circles', '3', 0, 'unknown word "3"'],
    ['two red circle', 'circle', 2, 'expected a plural shape noun (count "two")'],
    ['a red circles', 'circles', 2, 'expected a singular shape noun (count "a")'],
    ['red circle', 'red', 0, 'expected a count'],
    // missing nouns and words
    ['a red', null, 2, 'missing a singular shape noun (count "a") after "red"'],
    ['a large', null, 2, 'missing a color after "large"'],
    ['a red circle and', null, 4, 'missing a count after "and"'],
    ['a red circle left a blue square', 'a', 4, 'expected "of"'],
    ['a red circle moving', null, 4, 'missing a direction after "moving"'],
    ['a red circle above', null, 4, 'missing a count after "above"'],
    // words in the wrong place
    ['a red circle left of a blue square moving up', 'moving', 8, 'unexpected word "moving"'],
    ['a red circle a blue square', 'a', 3, 'unexpected word "a"'],
    ['a red circle and a blue square and a green triangle', 'and', 7, 'unexpected word "and"'],
    ['a  red circle', '', 1, 'empty word'],
    ['', '', 0, 'empty word'],
  ];
  for (const [text, word, position, mentions] of cases) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      const e = promptError(text);
      assert.equal(e.word, word);
      assert.equal(e.position, position);
      assert.equal(e.prompt, text);
      assert.ok(e.message.includes(mentions), `message ${JSON.stringify(e.message)} should mention ${JSON.stringify(mentions)}`);
      assert.ok(e.message.includes(`vocabulary: ${VOCABULARY.join(' ')}`), 'message lists the vocabulary');
      assert.ok(e.expected.length > 0);
    });
  }
});
