/**
 * The programmatic composition checker (models/world/WORLD.md, "What the checker measures"): a held-out
 * reward that reads objects back from pixels alone and scores the fraction of the prompt's checks that
 * pass. It knows nothing about the generator, so a model cannot please it except by drawing the prompt.
 *
 * Per image (and per video frame):
 * 1. classify every pixel to the nearest of background + palette; non-background pixels are foreground;
 * 2. label 4-connected foreground components (iterative flood fill into a preallocated label buffer);
 *    components under MIN_AREA pixels are noise and dropped;
 * 3. measure each component: mean color -> nearest palette color within COLOR_DISTANCE, bounding-box fill
 *    ratio -> shape, bounding-box half-width -> size, bounding-box centre;
 * 4. match components to the prompt's object slots (maximum matching first, then color, shape, size);
 * 5. checks, in a fixed order the prompt alone decides: per group `count`, per object `color` and `shape`,
 *    then `relation` (if any) and `motion` (videos).
 *
 * A check that cannot be evaluated because its object is missing (or a relation whose group is empty) is
 * reported as skipped: it still counts as not passed in the score, but the failure it follows from is the
 * count check, so a single fault shows as a single failed check in the breakdown.
 *
 * Videos: the static checks are evaluated on every frame and their value is the fraction of frames that
 * pass; motion is one check on the track of the foreground centroid across frames.
 */
import type { RewardModel } from '../models/generator.js';
import { BACKGROUND, CANVAS, COLOR_NAMES, FRAMES, PALETTE, SHAPE_NAMES, SIZE_RADIUS, type ColorName, type ShapeName } from '../../world/palette.js';
import { parsePrompt, type ParsedPrompt } from '../../world/prompt-grammar.js';
import { EvoSearchError, type ErrorCode } from '../../errors/evosearch-error.js';

export const COMPOSITION_CHECKER = 'composition-checker';

/** Components smaller than this many pixels are noise (the smallest rendered object, a small triangle, has 18). */
export const MIN_AREA = 6;
/** A component's mean color names a palette color only within this RGB distance (WORLD.md). */
export const COLOR_DISTANCE = 60;
/**
 * Bounding-box fill ratios per shape (WORLD.md as calibrated): rendered squares fill 1.0, circles 0.78 to
 * 0.89 (the small circle is blocky at this resolution), triangles 0.55 to 0.60.
 */
export const FILL_RANGES: Readonly<Record<ShapeName, readonly [number, number]>> = {
  square: [0.94, 1.0001],
  circle: [0.7, 0.94],
  triangle: [0.4, 0.65],
};
/** Relation: centres at least this far apart along the relation's axis (WORLD.md). */
export const RELATION_GAP = 2;
/** Motion: least-squares centroid speed along the prompted direction, pixels per frame (nominal 2). */
export const MIN_SPEED = 1;
/** Motion: sideways speed at most this fraction of the forward speed. */
export const MAX_SIDEWAYS = 0.5;
/** Most components considered per frame (largest first); more is clutter, not a composition. */
export const MAX_COMPONENTS = 16;

const PIXELS = CANVAS * CANVAS;
const IMAGE_FLOATS = 3 * PIXELS;
/** At most 2 groups of 3 objects: slot subsets fit in 6 bits. */
const MAX_SLOTS = 6;
const MATCH_BASE = 100;

export type CheckKind = 'count' | 'color' | 'shape' | 'relation' | 'motion';

export interface CheckResult {
  /** Stable id: `count:g`, `color:g.k`, `shape:g.k`, `relation`, `motion`. */
  readonly id: string;
  readonly kind: CheckKind;
  /** Prompt group the check is about (null for relation and motion). */
  readonly group: number | null;
  /** Object slot within the group (color and shape checks), else null. */
  readonly object: number | null;
  /** Fraction passed: 0 or 1 for images; fraction of frames for static checks of videos. */
  readonly value: number;
  readonly passed: boolean;
  /** Not evaluable on any frame because what it is about is missing (a consequence of a count failure). */
  readonly skipped: boolean;
  /** What was measured (first frame for videos), for humans. */
  readonly detail: string;
}

export interface MeasuredObject {
  /** Nearest palette color within COLOR_DISTANCE, or null. */
  readonly color: ColorName | null;
  readonly colorDistance: number;
  readonly shape: ShapeName | null;
  readonly fill: number;
  readonly area: number;
  /** Bounding-box half-width (the radius for every shape). */
  readonly radius: number;
  /** Bounding-box centre (x right, y down, pixel units). */
  readonly x: number;
  readonly y: number;
  /** Matched slot as [group, object], or null when unmatched. */
  readonly slot: readonly [number, number] | null;
}

export interface CompositionReport {
  readonly prompt: string;
  readonly score: number;
  readonly checks: readonly CheckResult[];
  /** Objects measured on the (first) frame. */
  readonly objects: readonly MeasuredObject[];
}

/** Samples the checker cannot read (non-finite values). Names the sample. */
export class CompositionInputError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'CompositionInputError';
  constructor(
    readonly sampleIndex: number,
    message: string,
  ) {
    super(message);
  }
}

/** Background first (class 0), then the palette in COLOR_NAMES order (class c + 1), in 0..255 units. */
const CLASS_RGB = new Float64Array([...BACKGROUND, ...COLOR_NAMES.flatMap((c) => PALETTE[c])]);
const CLASSES = CLASS_RGB.length / 3;
const SHAPE_INDEX: Readonly<Record<ShapeName, number>> = { circle: 0, square: 1, triangle: 2 };
const SIZES = [SIZE_RADIUS.small, SIZE_RADIUS.default, SIZE_RADIUS.large];

interface Check {
  readonly id: string;
  readonly kind: CheckKind;
  readonly group: number | null;
  readonly object: number | null;
}

export class CompositionChecker implements RewardModel {
  readonly name = COMPOSITION_CHECKER;
  readonly prompt: ParsedPrompt;
  readonly frames: number;
  /** Floats per sample: [3, 32, 32] or [8, 3, 32, 32] (channels first, values in [0, 1]). */
  readonly sampleSize: number;
  readonly sampleShape: readonly number[];
  /** The checks, in the order of reports (the prompt alone decides them). */
  readonly checks: readonly Check[];

  // Slots: the prompt's objects, group by group.
  private readonly slotGroup: Int32Array;
  private readonly slotColor: Int32Array;
  private readonly slotShape: Int32Array;
  private readonly slotRadius: Int32Array;
  private readonly groupFirstSlot: Int32Array;
  private readonly countCheck: Int32Array; // check index of count:g
  private readonly slotColorCheck: Int32Array;
  private readonly slotShapeCheck: Int32Array;
  private readonly relationCheck: number;
  private readonly motionCheck: number;

  // Per-frame work buffers, allocated once: the score path allocates nothing per image.
  private readonly cls = new Uint8Array(PIXELS);
  private readonly label = new Int32Array(PIXELS);
  private readonly stack = new Int32Array(PIXELS);
  private readonly compArea = new Int32Array(PIXELS);
  private readonly compMinX = new Int32Array(PIXELS);
  private readonly compMaxX = new Int32Array(PIXELS);
  private readonly compMinY = new Int32Array(PIXELS);
  private readonly compMaxY = new Int32Array(PIXELS);
  private readonly compSum = new Float64Array(PIXELS * 5); // r, g, b, x, y sums
  private componentCount = 0;
  // Kept components (largest MAX_COMPONENTS over MIN_AREA) and their measurements.
  private readonly kept = new Int32Array(PIXELS);
  private keptCount = 0;
  /** Component -> kept index, or -1. */
  private readonly keptOf = new Int32Array(PIXELS);
  private readonly objColor = new Int32Array(MAX_COMPONENTS);
  private readonly objColorDist = new Float64Array(MAX_COMPONENTS);
  private readonly objShape = new Int32Array(MAX_COMPONENTS);
  private readonly objFill = new Float64Array(MAX_COMPONENTS);
  private readonly objRadius = new Float64Array(MAX_COMPONENTS);
  private readonly objSizeRadius = new Int32Array(MAX_COMPONENTS);
  private readonly objX = new Float64Array(MAX_COMPONENTS);
  private readonly objY = new Float64Array(MAX_COMPONENTS);
  private readonly objSlot = new Int32Array(MAX_COMPONENTS);
  private readonly slotObj = new Int32Array(MAX_SLOTS);
  private readonly groupExtra = new Int32Array(2);
  // Matching by dynamic programming over (components, subset of slots filled).
  private readonly dp = new Float64Array((MAX_COMPONENTS + 1) << MAX_SLOTS);
  private readonly choice = new Int8Array(MAX_COMPONENTS << MAX_SLOTS);
  // Check results: per frame pass/skip, accumulated over frames.
  private readonly framePass: Uint8Array;
  private readonly frameSkip: Uint8Array;
  private readonly passFrames: Int32Array;
  private readonly skipFrames: Int32Array;
  private readonly centroidX = new Float64Array(FRAMES);
  private readonly centroidY = new Float64Array(FRAMES);
  private readonly centroidOk = new Uint8Array(FRAMES);

  constructor(prompt: string | ParsedPrompt) {
    this.prompt = typeof prompt === 'string' ? parsePrompt(prompt) : prompt;
    const p = this.prompt;
    this.frames = p.motion === null ? 1 : FRAMES;
    this.sampleSize = this.frames * IMAGE_FLOATS;
    this.sampleShape = p.motion === null ? [3, CANVAS, CANVAS] : [FRAMES, 3, CANVAS, CANVAS];

    const slots = p.groups.reduce((n, g) => n + g.count, 0);
    this.slotGroup = new Int32Array(slots);
    this.slotColor = new Int32Array(slots);
    this.slotShape = new Int32Array(slots);
    this.slotRadius = new Int32Array(slots);
    this.slotColorCheck = new Int32Array(slots);
    this.slotShapeCheck = new Int32Array(slots);
    this.groupFirstSlot = new Int32Array(p.groups.length + 1);
    this.countCheck = new Int32Array(p.groups.length);
    const checks: Check[] = [];
    let s = 0;
    p.groups.forEach((g, gi) => {
      this.groupFirstSlot[gi] = s;
      this.countCheck[gi] = checks.length;
      checks.push({ id: `count:${gi}`, kind: 'count', group: gi, object: null });
      for (let k = 0; k < g.count; k++, s++) {
        this.slotGroup[s] = gi;
        this.slotColor[s] = COLOR_NAMES.indexOf(g.color);
        this.slotShape[s] = SHAPE_INDEX[g.shape];
        this.slotRadius[s] = g.radius;
        this.slotColorCheck[s] = checks.length;
        checks.push({ id: `color:${gi}.${k}`, kind: 'color', group: gi, object: k });
        this.slotShapeCheck[s] = checks.length;
        checks.push({ id: `shape:${gi}.${k}`, kind: 'shape', group: gi, object: k });
      }
    });
    this.groupFirstSlot[p.groups.length] = s;
    this.relationCheck = p.relation === null ? -1 : checks.length;
    if (p.relation !== null) checks.push({ id: 'relation', kind: 'relation', group: null, object: null });
    this.motionCheck = p.motion === null ? -1 : checks.length;
    if (p.motion !== null) checks.push({ id: 'motion', kind: 'motion', group: null, object: null });
    this.checks = checks;
    this.framePass = new Uint8Array(checks.length);
    this.frameSkip = new Uint8Array(checks.length);
    this.passFrames = new Int32Array(checks.length);
    this.skipFrames = new Int32Array(checks.length);
  }

  score(samples: Float32Array, batch: number, out: Float64Array): void {
    this.checkBatch(samples, batch, out);
    for (let i = 0; i < batch; i++) out[i] = this.evaluate(samples, i);
  }

  /** Per-check breakdown of sample `index` of `samples` (for reports; allocates). */
  report(samples: Float32Array, index: number): CompositionReport {
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`${this.name}: sample index must be a non-negative integer, got ${index}`);
    this.checkBatch(samples, index + 1, null);
    const details: string[] = new Array(this.checks.length).fill('');
    const objects: MeasuredObject[] = [];
    const score = this.evaluate(samples, index, (frame) => {
      if (frame !== 0) return;
      for (let j = 0; j < this.keptCount; j++) objects.push(this.measured(j));
      this.describe(details);
    });
    if (this.motionCheck >= 0) {
      // Known only once every frame is in.
      const v = this.velocity();
      details[this.motionCheck] =
        v === null ? 'a frame has no object' : `centroid velocity (${v[0].toFixed(2)}, ${v[1].toFixed(2)}) px/frame, want ${this.prompt.motion} at >= ${MIN_SPEED}`;
    }
    const checks = this.checks.map((c, ci): CheckResult => {
      const value = this.passFrames[ci] / this.frames;
      return { ...c, value, passed: value === 1, skipped: this.skipFrames[ci] === this.frames, detail: details[ci] };
    });
    return { prompt: this.prompt.text, score, checks, objects };
  }

  private checkBatch(samples: Float32Array, batch: number, out: Float64Array | null): void {
    if (!Number.isInteger(batch) || batch < 0) throw new RangeError(`${this.name}: batch must be a non-negative integer, got ${batch}`);
    if (samples.length < batch * this.sampleSize) {
      const motion = this.prompt.motion !== null;
      throw new RangeError(
        `${this.name}: prompt ${JSON.stringify(this.prompt.text)} is a ${motion ? 'motion' : 'still'} prompt, so each sample is ${motion ? 'a video' : 'an image'} of ${this.sampleShape.join('x')} floats ` +
          `and ${batch} samples need ${batch * this.sampleSize}, got ${samples.length}` +
          (motion ? ' (a motion prompt needs a video model; an image model makes one frame per sample)' : ` (the samples are smaller than one ${CANVAS}x${CANVAS} image of the world)`),
      );
    }
    if (out !== null && out.length < batch) throw new RangeError(`${this.name}: out holds ${out.length} scores, needs ${batch}`);
  }

  /** Score of one sample; fills passFrames / skipFrames. `onFrame` sees the state after each frame. */
  private evaluate(samples: Float32Array, index: number, onFrame?: (frame: number) => void): number {
    this.passFrames.fill(0);
    this.skipFrames.fill(0);
    for (let f = 0; f < this.frames; f++) {
      const base = index * this.sampleSize + f * IMAGE_FLOATS;
      this.classify(samples, base, index);
      this.label_components();
      this.measure(samples, base);
      this.match();
      this.staticChecks();
      this.centroid(f);
      if (onFrame) onFrame(f);
      for (let c = 0; c < this.checks.length; c++) {
        this.passFrames[c] += this.framePass[c];
        this.skipFrames[c] += this.frameSkip[c];
      }
    }
    if (this.motionCheck >= 0) {
      const ok = this.motionPasses();
      this.passFrames[this.motionCheck] = ok ? this.frames : 0;
    }
    let total = 0;
    for (let c = 0; c < this.checks.length; c++) total += this.passFrames[c] / this.frames;
    return total / this.checks.length;
  }

  /** Nearest class (background or palette color) per pixel; refuses non-finite values. */
  private classify(samples: Float32Array, base: number, index: number): void {
    const cls = this.cls;
    for (let p = 0; p < PIXELS; p++) {
      const r = samples[base + p] * 255;
      const g = samples[base + PIXELS + p] * 255;
      const b = samples[base + 2 * PIXELS + p] * 255;
      if (!Number.isFinite(r + g + b)) {
        throw new CompositionInputError(index, `${this.name}: sample ${index} has a non-finite value (NaN or infinity) at pixel ${p % CANVAS},${Math.floor(p / CANVAS)}`);
      }
      let best = 0;
      let bestD = Infinity;
      for (let k = 0; k < CLASSES; k++) {
        const dr = r - CLASS_RGB[3 * k];
        const dg = g - CLASS_RGB[3 * k + 1];
        const db = b - CLASS_RGB[3 * k + 2];
        const d = dr * dr + dg * dg + db * db;
        if (d < bestD) {
          bestD = d;
          best = k;
        }
      }
      cls[p] = best;
    }
  }

  /** 4-connected components of foreground pixels (flood fill with an explicit stack). */
  private label_components(): void {
    const { cls, label, stack } = this;
    label.fill(-1);
    let n = 0;
    for (let p0 = 0; p0 < PIXELS; p0++) {
      if (cls[p0] === 0 || label[p0] >= 0) continue;
      let top = 0;
      stack[top++] = p0;
      label[p0] = n;
      let area = 0;
      let minX = CANVAS;
      let maxX = -1;
      let minY = CANVAS;
      let maxY = -1;
      while (top > 0) {
        const p = stack[--top];
        const x = p % CANVAS;
        const y = (p - x) / CANVAS;
        area++;
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        if (y > maxY) maxY = y;
        // Each pixel is pushed once: it is labelled when pushed.
        if (x > 0 && cls[p - 1] !== 0 && label[p - 1] < 0) (label[p - 1] = n), (stack[top++] = p - 1);
        if (x < CANVAS - 1 && cls[p + 1] !== 0 && label[p + 1] < 0) (label[p + 1] = n), (stack[top++] = p + 1);
        if (y > 0 && cls[p - CANVAS] !== 0 && label[p - CANVAS] < 0) (label[p - CANVAS] = n), (stack[top++] = p - CANVAS);
        if (y < CANVAS - 1 && cls[p + CANVAS] !== 0 && label[p + CANVAS] < 0) (label[p + CANVAS] = n), (stack[top++] = p + CANVAS);
      }
      this.compArea[n] = area;
      this.compMinX[n] = minX;
      this.compMaxX[n] = maxX;
      this.compMinY[n] = minY;
      this.compMaxY[n] = maxY;
      n++;
    }
    this.componentCount = n;
  }

  /** Keep the largest components over MIN_AREA and measure color, shape, size and centre. */
  private measure(samples: Float32Array, base: number): void {
    const n = this.componentCount;
    let kc = 0;
    for (let c = 0; c < n; c++) if (this.compArea[c] >= MIN_AREA) this.kept[kc++] = c;
    // Insertion sort by area (descending; label order breaks ties), then cut: rarely more than a few.
    for (let i = 1; i < kc; i++) {
      const c = this.kept[i];
      let j = i - 1;
      while (j >= 0 && this.compArea[this.kept[j]] < this.compArea[c]) {
        this.kept[j + 1] = this.kept[j];
        j--;
      }
      this.kept[j + 1] = c;
    }
    this.keptCount = Math.min(kc, MAX_COMPONENTS);
    // Sums of color and position, for kept components only (slot j of compSum = kept index j).
    const sum = this.compSum;
    sum.fill(0, 0, this.keptCount * 5);
    const { label, keptOf } = this;
    keptOf.fill(-1, 0, n);
    for (let j = 0; j < this.keptCount; j++) keptOf[this.kept[j]] = j;
    for (let p = 0; p < PIXELS; p++) {
      const c = label[p];
      if (c < 0) continue;
      const j = keptOf[c];
      if (j < 0) continue;
      sum[5 * j] += samples[base + p] * 255;
      sum[5 * j + 1] += samples[base + PIXELS + p] * 255;
      sum[5 * j + 2] += samples[base + 2 * PIXELS + p] * 255;
      sum[5 * j + 3] += (p % CANVAS) + 0.5;
      sum[5 * j + 4] += Math.floor(p / CANVAS) + 0.5;
    }
    for (let j = 0; j < this.keptCount; j++) {
      const c = this.kept[j];
      const area = this.compArea[c];
      const r = sum[5 * j] / area;
      const g = sum[5 * j + 1] / area;
      const b = sum[5 * j + 2] / area;
      let best = -1;
      let bestD = Infinity;
      for (let k = 1; k < CLASSES; k++) {
        const d = Math.hypot(r - CLASS_RGB[3 * k], g - CLASS_RGB[3 * k + 1], b - CLASS_RGB[3 * k + 2]);
        if (d < bestD) {
          bestD = d;
          best = k - 1;
        }
      }
      this.objColor[j] = bestD <= COLOR_DISTANCE ? best : -1;
      this.objColorDist[j] = bestD;
      const w = this.compMaxX[c] - this.compMinX[c] + 1;
      const h = this.compMaxY[c] - this.compMinY[c] + 1;
      const fill = area / (w * h);
      this.objFill[j] = fill;
      let shape = -1;
      for (let s = 0; s < SHAPE_NAMES.length; s++) {
        const [lo, hi] = FILL_RANGES[SHAPE_NAMES[s]];
        if (fill >= lo && fill < hi) shape = s;
      }
      this.objShape[j] = shape;
      // Every rendered shape of radius r spans 2r columns; the triangle is a row short at the apex.
      const radius = w / 2;
      this.objRadius[j] = radius;
      let size = 0;
      for (let k = 1; k < SIZES.length; k++) if (Math.abs(SIZES[k] - radius) < Math.abs(SIZES[size] - radius)) size = k;
      this.objSizeRadius[j] = SIZES[size];
      this.objX[j] = (this.compMinX[c] + this.compMaxX[c] + 1) / 2;
      this.objY[j] = (this.compMinY[c] + this.compMaxY[c] + 1) / 2;
    }
  }

  /** Affinity of kept component j to slot s: color counts most, then shape, then size. */
  private affinity(s: number, j: number): number {
    return (
      MATCH_BASE +
      (this.objColor[j] === this.slotColor[s] ? 4 : 0) +
      (this.objShape[j] === this.slotShape[s] ? 2 : 0) +
      (this.objSizeRadius[j] === this.slotRadius[s] ? 1 : 0)
    );
  }

  /**
   * Optimal one-to-one matching of components to slots: MATCH_BASE per pair makes it fill as many slots
   * as there are components first, then prefer matching colors, shapes and sizes. Exact DP over the
   * (at most 2^6) subsets of filled slots, one component at a time.
   */
  private match(): void {
    const S = this.slotGroup.length;
    const M = 1 << S;
    const K = this.keptCount;
    const { dp, choice } = this;
    dp.fill(-Infinity, 0, (K + 1) * M);
    dp[0] = 0;
    for (let j = 0; j < K; j++) {
      const row = j * M;
      const next = (j + 1) * M;
      for (let mask = 0; mask < M; mask++) {
        // Skip component j.
        let best = dp[row + mask];
        let pick = -1;
        for (let s = 0; s < S; s++) {
          if ((mask & (1 << s)) === 0) continue;
          const prev = dp[row + (mask ^ (1 << s))];
          if (prev === -Infinity) continue;
          const v = prev + this.affinity(s, j);
          if (v > best) {
            best = v;
            pick = s;
          }
        }
        dp[next + mask] = best;
        choice[row + mask] = pick;
      }
    }
    let mask = 0;
    for (let m = 1; m < M; m++) if (dp[K * M + m] > dp[K * M + mask]) mask = m;
    this.slotObj.fill(-1);
    for (let j = K - 1; j >= 0; j--) {
      const s = choice[j * M + mask];
      this.objSlot[j] = s;
      if (s >= 0) {
        this.slotObj[s] = j;
        mask ^= 1 << s;
      }
    }
    // Unmatched components that look like another member of a group (its color and shape) add to its count.
    this.groupExtra.fill(0);
    for (let j = 0; j < K; j++) {
      if (this.objSlot[j] >= 0) continue;
      for (let g = 0; g < this.prompt.groups.length; g++) {
        const s = this.groupFirstSlot[g];
        if (this.objColor[j] === this.slotColor[s] && this.objShape[j] === this.slotShape[s]) {
          this.groupExtra[g]++;
          break;
        }
      }
    }
  }

  private staticChecks(): void {
    const { framePass: pass, frameSkip: skip } = this;
    pass.fill(0);
    skip.fill(0);
    const groups = this.prompt.groups;
    for (let g = 0; g < groups.length; g++) {
      let found = this.groupExtra[g];
      for (let s = this.groupFirstSlot[g]; s < this.groupFirstSlot[g + 1]; s++) {
        const j = this.slotObj[s];
        if (j < 0) {
          skip[this.slotColorCheck[s]] = 1;
          skip[this.slotShapeCheck[s]] = 1;
          continue;
        }
        found++;
        pass[this.slotColorCheck[s]] = this.objColor[j] === this.slotColor[s] ? 1 : 0;
        pass[this.slotShapeCheck[s]] = this.objShape[j] === this.slotShape[s] ? 1 : 0;
      }
      pass[this.countCheck[g]] = found === groups[g].count ? 1 : 0;
    }
    if (this.relationCheck >= 0) {
      const gap = this.relationGap();
      if (Number.isNaN(gap)) skip[this.relationCheck] = 1;
      else pass[this.relationCheck] = gap >= RELATION_GAP ? 1 : 0;
    }
  }

  /**
   * Smallest signed centre gap, over every (first group, second group) pair of matched objects, in the
   * relation's direction; NaN when a group has no matched object.
   */
  private relationGap(): number {
    let min = Infinity;
    const rel = this.prompt.relation;
    for (let a = this.groupFirstSlot[0]; a < this.groupFirstSlot[1]; a++) {
      const ja = this.slotObj[a];
      if (ja < 0) continue;
      for (let b = this.groupFirstSlot[1]; b < this.groupFirstSlot[2]; b++) {
        const jb = this.slotObj[b];
        if (jb < 0) continue;
        let d: number;
        if (rel === 'left of') d = this.objX[jb] - this.objX[ja];
        else if (rel === 'right of') d = this.objX[ja] - this.objX[jb];
        else if (rel === 'above') d = this.objY[jb] - this.objY[ja];
        else d = this.objY[ja] - this.objY[jb];
        if (d < min) min = d;
      }
    }
    return min === Infinity ? NaN : min;
  }

  /** Mean position of the kept components' pixels on frame f (the motion track). */
  private centroid(f: number): void {
    if (this.motionCheck < 0) return;
    let area = 0;
    let sx = 0;
    let sy = 0;
    for (let j = 0; j < this.keptCount; j++) {
      area += this.compArea[this.kept[j]];
      sx += this.compSum[5 * j + 3];
      sy += this.compSum[5 * j + 4];
    }
    this.centroidOk[f] = area > 0 ? 1 : 0;
    this.centroidX[f] = area > 0 ? sx / area : 0;
    this.centroidY[f] = area > 0 ? sy / area : 0;
  }

  /** Least-squares velocity of the centroid track, in pixels per frame; null if a frame is empty. */
  private velocity(): [number, number] | null {
    const n = this.frames;
    for (let f = 0; f < n; f++) if (!this.centroidOk[f]) return null;
    const tMean = (n - 1) / 2;
    let xMean = 0;
    let yMean = 0;
    for (let f = 0; f < n; f++) {
      xMean += this.centroidX[f] / n;
      yMean += this.centroidY[f] / n;
    }
    let stt = 0;
    let stx = 0;
    let sty = 0;
    for (let f = 0; f < n; f++) {
      const dt = f - tMean;
      stt += dt * dt;
      stx += dt * (this.centroidX[f] - xMean);
      sty += dt * (this.centroidY[f] - yMean);
    }
    return [stx / stt, sty / stt];
  }

  private motionPasses(): boolean {
    const v = this.velocity();
    if (v === null) return false;
    const [forward, sideways] = this.projectMotion(v);
    return forward >= MIN_SPEED && Math.abs(sideways) <= MAX_SIDEWAYS * forward;
  }

  /** Velocity as (along the prompted direction, across it). */
  private projectMotion([vx, vy]: [number, number]): [number, number] {
    switch (this.prompt.motion) {
      case 'left':
        return [-vx, vy];
      case 'right':
        return [vx, vy];
      case 'up':
        return [-vy, vx];
      default:
        return [vy, vx];
    }
  }

  private measured(j: number): MeasuredObject {
    const s = this.objSlot[j];
    return {
      color: this.objColor[j] >= 0 ? COLOR_NAMES[this.objColor[j]] : null,
      colorDistance: this.objColorDist[j],
      shape: this.objShape[j] >= 0 ? SHAPE_NAMES[this.objShape[j]] : null,
      fill: this.objFill[j],
      area: this.compArea[this.kept[j]],
      radius: this.objRadius[j],
      x: this.objX[j],
      y: this.objY[j],
      slot: s >= 0 ? [this.slotGroup[s], s - this.groupFirstSlot[this.slotGroup[s]]] : null,
    };
  }

  /** Human-readable measurements behind each check, for the current frame. */
  private describe(details: string[]): void {
    const groups = this.prompt.groups;
    for (let g = 0; g < groups.length; g++) {
      let matched = 0;
      for (let s = this.groupFirstSlot[g]; s < this.groupFirstSlot[g + 1]; s++) {
        const j = this.slotObj[s];
        const gi = s - this.groupFirstSlot[g];
        if (j < 0) {
          details[this.slotColorCheck[s]] = `object ${gi} of group ${g} missing`;
          details[this.slotShapeCheck[s]] = `object ${gi} of group ${g} missing`;
          continue;
        }
        matched++;
        const o = this.measured(j);
        details[this.slotColorCheck[s]] = `want ${groups[g].color}, measured ${o.color ?? 'no palette color'} (distance ${o.colorDistance.toFixed(1)}) at ${o.x},${o.y}`;
        details[this.slotShapeCheck[s]] = `want ${groups[g].shape}, measured ${o.shape ?? 'no shape'} (fill ${o.fill.toFixed(3)}) at ${o.x},${o.y}`;
      }
      details[this.countCheck[g]] = `want ${groups[g].count}, found ${matched + this.groupExtra[g]} (${this.keptCount} objects on the canvas)`;
    }
    if (this.relationCheck >= 0) {
      const gap = this.relationGap();
      details[this.relationCheck] = Number.isNaN(gap) ? 'a group has no object' : `smallest centre gap ${this.prompt.relation} is ${gap} (need ${RELATION_GAP})`;
    }
  }
}
