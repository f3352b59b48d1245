/**
 * The composition checker (worker/rewards/composition-checker.ts) against the world fixtures rendered by
 * models/world/make_fixtures.py: every positive scores 1, every negative fails exactly the one check its
 * label names, motion direction is read from the videos, and degenerate input (empty canvas, NaN,
 * wrong sizes, bad prompts) is handled the documented way.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BACKGROUND, CANVAS, FRAMES } from '../world/palette.js';
import { PromptError, VOCABULARY } from '../world/prompt-grammar.js';
import { CompositionChecker, CompositionInputError, COMPOSITION_CHECKER, type CheckKind } from '../worker/rewards/composition-checker.js';
import { repoRoot } from './support/repo-root.js';


interface SceneRow {
  id: number;
  kind: 'image' | 'video';
  offset: number;
  bytes: number;
  prompt: string;
  motion: string | null;
  objects: { color: string; shape: string; radius: number; x: number; y: number; group: number }[];
}
interface Case {
  prompt: string;
  scene: number;
  expect: 'pass' | 'fail';
  violation?: string;
  check?: { kind: CheckKind; group: number | null };
}
const dir = path.join(repoRoot(), 'test/fixtures/world');
const doc = JSON.parse(readFileSync(path.join(dir, 'world-fixtures.json'), 'utf8')) as { pixels: { file: string; bytes: number }; scenes: SceneRow[]; cases: Case[] };
const pixels = gunzipSync(readFileSync(path.join(dir, doc.pixels.file)));
const PLANE = CANVAS * CANVAS;

/** uint8 channels-last frames -> float [frames, 3, 32, 32] in [0, 1], as a decoder hands them to rewards. */
function sceneFloats(row: SceneRow): Float32Array {
  const frames = row.kind === 'video' ? FRAMES : 1;
  const out = new Float32Array(frames * 3 * PLANE);
  for (let f = 0; f < frames; f++) {
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++) out[f * 3 * PLANE + c * PLANE + p] = pixels[row.offset + (f * PLANE + p) * 3 + c] / 255;
    }
  }
  return out;
}

function scoreOne(checker: CompositionChecker, sample: Float32Array): number {
  const out = new Float64Array(1);
  checker.score(sample, 1, out);
  return out[0];
}

const positives = doc.cases.filter((c) => c.expect === 'pass');
const negatives = doc.cases.filter((c) => c.expect === 'fail');

describe('composition checker: fixtures', () => {
  it('the fixtures are what the tests assume', () => {
    assert.equal(pixels.length, doc.pixels.bytes);
    assert.ok(positives.length >= 60, `${positives.length} positives`);
    assert.ok(negatives.length >= 40, `${negatives.length} negatives`);
    assert.deepEqual(new Set(negatives.map((c) => c.violation)), new Set(['color', 'shape', 'count', 'relation', 'missing', 'direction']));
    assert.ok(doc.scenes.filter((s) => s.kind === 'video').length >= 5);
    // The positives cover the whole vocabulary: every color, shape, size, count word, relation, direction.
    const words = new Set(positives.flatMap((c) => c.prompt.split(' ')));
    for (const w of VOCABULARY) assert.ok(words.has(w), `no positive uses "${w}"`);
    const sizes = new Set(doc.scenes.flatMap((s) => s.objects.map((o) => o.radius)));
    assert.deepEqual([...sizes].sort(), [3, 4, 6]);
  });

  it('scores 1 on every positive, with every check passed', () => {
    for (const c of positives) {
      const checker = new CompositionChecker(c.prompt);
      const sample = sceneFloats(doc.scenes[c.scene]);
      assert.equal(scoreOne(checker, sample), 1, c.prompt);
      const report = checker.report(sample, 0);
      assert.equal(report.score, 1);
      const failed = report.checks.filter((k) => !k.passed);
      assert.deepEqual(failed, [], `${c.prompt}: ${JSON.stringify(failed)}`);
      assert.equal(report.objects.length, doc.scenes[c.scene].objects.length, c.prompt);
    }
  });

  it('measures each positive object where the scene put it, with its color and shape', () => {
    for (const c of positives) {
      const row = doc.scenes[c.scene];
      const report = new CompositionChecker(c.prompt).report(sceneFloats(row), 0);
      for (const o of row.objects) {
        const m = report.objects.find((q) => q.x === o.x && Math.abs(q.y - o.y) <= 0.5);
        assert.ok(m, `${c.prompt}: no object measured at ${o.x},${o.y}`);
        assert.equal(m.color, o.color);
        assert.equal(m.shape, o.shape);
        assert.equal(m.radius, o.radius);
        assert.equal(m.slot?.[0], o.group);
      }
    }
  });

  it('gives < 1 to every negative and fails exactly the labelled check', () => {
    for (const c of negatives) {
      const checker = new CompositionChecker(c.prompt);
      const sample = sceneFloats(doc.scenes[c.scene]);
      const score = scoreOne(checker, sample);
      assert.ok(score < 1, `${c.prompt} (${c.violation}) scored ${score}`);
      const report = checker.report(sample, 0);
      assert.equal(report.score, score);
      const failed = report.checks.filter((k) => !k.passed && !k.skipped);
      assert.equal(failed.length, 1, `${c.prompt} (${c.violation}): failed ${JSON.stringify(failed)}`);
      assert.equal(failed[0].kind, c.check!.kind, c.prompt);
      assert.equal(failed[0].group, c.check!.group, c.prompt);
      // Skipped checks are only ever the consequence of a missing object.
      const skipped = report.checks.filter((k) => k.skipped);
      if (skipped.length > 0) assert.ok(c.violation === 'missing' || c.violation === 'count', `${c.prompt}: skipped ${JSON.stringify(skipped)}`);
    }
  });

  it('reads the motion direction of every video: only the true direction passes', () => {
    const videos = positives.filter((c) => doc.scenes[c.scene].kind === 'video');
    assert.ok(videos.length >= 5);
    const seen = new Set<string>();
    for (const c of videos) {
      const row = doc.scenes[c.scene];
      const sample = sceneFloats(row);
      seen.add(row.motion!);
      for (const d of ['left', 'right', 'up', 'down']) {
        const prompt = c.prompt.replace(/moving \w+$/, `moving ${d}`);
        const report = new CompositionChecker(prompt).report(sample, 0);
        const motion = report.checks.find((k) => k.kind === 'motion')!;
        assert.equal(motion.passed, d === row.motion, `${prompt} on a video moving ${row.motion}: ${motion.detail}`);
      }
    }
    assert.deepEqual([...seen].sort(), ['down', 'left', 'right', 'up']);
  });

  it('scores a batch the same as one sample at a time', () => {
    const c = positives.find((k) => k.prompt.includes(' left of '))!;
    const checker = new CompositionChecker(c.prompt);
    const rows = [...doc.scenes.filter((s) => s.kind === 'image').slice(0, 11), doc.scenes[c.scene]];
    const batch = new Float32Array(rows.length * checker.sampleSize);
    rows.forEach((r, i) => batch.set(sceneFloats(r), i * checker.sampleSize));
    const out = new Float64Array(rows.length);
    checker.score(batch, rows.length, out);
    rows.forEach((r, i) => assert.equal(out[i], scoreOne(checker, sceneFloats(r))));
    assert.equal(out[rows.length - 1], 1);
  });
});

describe('composition checker: degenerate input', () => {
  const background = (frames: number): Float32Array => {
    const x = new Float32Array(frames * 3 * PLANE);
    for (let f = 0; f < frames; f++) for (let c = 0; c < 3; c++) x.fill(BACKGROUND[c] / 255, (f * 3 + c) * PLANE, (f * 3 + c + 1) * PLANE);
    return x;
  };

  it('an empty canvas scores 0 without crashing (images and videos)', () => {
    for (const prompt of ['a red circle', 'two blue squares left of a large green triangle', 'three small yellow circles and a white square', 'a red circle and a blue square moving up']) {
      const checker = new CompositionChecker(prompt);
      const frames = checker.frames;
      assert.equal(scoreOne(checker, background(frames)), 0, prompt);
      assert.equal(scoreOne(checker, new Float32Array(checker.sampleSize)), 0, `${prompt} on black`);
      const report = checker.report(background(frames), 0);
      assert.equal(report.objects.length, 0);
      assert.ok(report.checks.every((k) => !k.passed));
    }
  });

  it('NaN pixels are an error naming the sample', () => {
    const row = doc.scenes.find((s) => s.kind === 'image')!;
    const checker = new CompositionChecker(row.prompt);
    const n = checker.sampleSize;
    const batch = new Float32Array(3 * n);
    for (let i = 0; i < 3; i++) batch.set(sceneFloats(row), i * n);
    batch[2 * n + PLANE + 5 * CANVAS + 7] = NaN;
    assert.throws(
      () => checker.score(batch, 3, new Float64Array(3)),
      (e: unknown) => e instanceof CompositionInputError && e.sampleIndex === 2 && /sample 2/.test(e.message) && /NaN/.test(e.message),
    );
    assert.throws(() => checker.report(batch, 2), CompositionInputError);
    // The first two samples are fine on their own.
    const out = new Float64Array(2);
    checker.score(batch, 2, out);
    assert.deepEqual([...out], [1, 1]);
  });

  it('refuses short buffers and bad batch sizes, and prompts outside the grammar', () => {
    const checker = new CompositionChecker('a red circle');
    assert.equal(checker.name, COMPOSITION_CHECKER);
    assert.throws(() => checker.score(new Float32Array(checker.sampleSize), 2, new Float64Array(2)), RangeError);
    assert.throws(() => checker.score(new Float32Array(checker.sampleSize), 1, new Float64Array(0)), RangeError);
    assert.throws(() => checker.score(new Float32Array(checker.sampleSize), -1, new Float64Array(1)), RangeError);
    assert.throws(() => new CompositionChecker('a red blob'), (e: unknown) => e instanceof PromptError && e.word === 'blob');
    assert.deepEqual(new CompositionChecker('a red circle moving up').sampleShape, [FRAMES, 3, CANVAS, CANVAS]);
  });

  it('is fast: a batch of 512 images in well under a second', () => {
    const checker = new CompositionChecker('two blue squares left of a large green triangle');
    const rows = doc.scenes.filter((s) => s.kind === 'image');
    const n = 512;
    const batch = new Float32Array(n * checker.sampleSize);
    for (let i = 0; i < n; i++) batch.set(sceneFloats(rows[i % rows.length]), i * checker.sampleSize);
    const out = new Float64Array(n);
    checker.score(batch, n, out); // warm up
    const t0 = performance.now();
    checker.score(batch, n, out);
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `${ms.toFixed(1)} ms for ${n} images`);
  });
});
