/**
 * A grid image of many samples (e.g. the final population, best first),
 * separated by thin lines of background colour.
 *
 * Layout (the caller's order is kept, row-major):
 *   - images: `columns` per row (default ceil(sqrt(n))), sample i at
 *     column i % columns, row floor(i / columns);
 *   - videos, default `video: 'frames'`: ONE ROW PER SAMPLE, its frames left
 *     to right (so the motion is visible in a still PNG);
 *   - videos with `video: 'first-frame'`: laid out like images, first frame only.
 * Samples of different sizes get cells of the largest size, drawn top-left.
 */
import type { SampleData } from './report-data.js';
import { frameToRgba8, sampleGeometry, type RgbaImage } from './image-encoding.js';

export interface GridOptions {
  /** Integer nearest-neighbour upscale of each tile (default 2). */
  scale?: number;
  /** Tiles per row for images / first frames (default ceil(sqrt(n))). */
  columns?: number;
  /** Separator width in output pixels (default 2). */
  gap?: number;
  /** Separator colour, RGB bytes (default light grey, [170, 170, 170]: the procedural world draws on a dark ground). */
  background?: [number, number, number];
  /** How videos are shown (default 'frames': a row of frames per sample). */
  video?: 'frames' | 'first-frame';
}

export interface GridImage extends RgbaImage {
  columns: number;
  rows: number;
  cellWidth: number;
  cellHeight: number;
  gap: number;
  /** Top-left corner of each sample's first tile, in input order. */
  cells: { x: number; y: number }[];
}

/** Orders a population best first (highest reward first; ties keep input order). */
export function bestFirst<T extends { reward: number }>(members: readonly T[]): T[] {
  return members
    .map((m, i) => ({ m, i }))
    .sort((a, b) => (b.m.reward - a.m.reward) || (a.i - b.i))
    .map((e) => e.m);
}

export function renderGrid(samples: readonly SampleData[], options: GridOptions = {}): GridImage {
  if (samples.length === 0) throw new Error('renderGrid needs at least one sample');
  const scale = options.scale ?? 2;
  const gap = options.gap ?? 2;
  const [br, bg, bb] = options.background ?? [170, 170, 170];
  if (!Number.isInteger(gap) || gap < 0) throw new Error(`gap must be a non-negative integer, got ${gap}`);

  const geometries = samples.map((s) => sampleGeometry(s.shape, s.data.length));
  const anyVideo = geometries.some((g) => g.isVideo);
  const frameRows = anyVideo && (options.video ?? 'frames') === 'frames';
  const cellWidth = Math.max(...geometries.map((g) => g.width)) * scale;
  const cellHeight = Math.max(...geometries.map((g) => g.height)) * scale;

  let columns: number;
  let rows: number;
  if (frameRows) {
    columns = Math.max(...geometries.map((g) => g.frames));
    rows = samples.length;
  } else {
    columns = Math.min(samples.length, options.columns ?? Math.ceil(Math.sqrt(samples.length)));
    if (!Number.isInteger(columns) || columns < 1) throw new Error(`columns must be a positive integer, got ${options.columns}`);
    rows = Math.ceil(samples.length / columns);
  }

  const width = columns * cellWidth + (columns - 1) * gap;
  const height = rows * cellHeight + (rows - 1) * gap;
  const data = new Uint8Array(width * height * 4);
  for (let p = 0; p < data.length; p += 4) {
    data[p] = br;
    data[p + 1] = bg;
    data[p + 2] = bb;
    data[p + 3] = 255;
  }

  const blit = (tile: RgbaImage, x0: number, y0: number): void => {
    const rowBytes = tile.width * 4;
    for (let y = 0; y < tile.height; y++) {
      data.set(tile.data.subarray(y * rowBytes, (y + 1) * rowBytes), ((y0 + y) * width + x0) * 4);
    }
  };

  const cells: { x: number; y: number }[] = [];
  samples.forEach((s, i) => {
    if (frameRows) {
      const y = i * (cellHeight + gap);
      cells.push({ x: 0, y });
      for (let f = 0; f < geometries[i]!.frames; f++) {
        blit(frameToRgba8(s.data, s.shape, f, scale), f * (cellWidth + gap), y);
      }
    } else {
      const x = (i % columns) * (cellWidth + gap);
      const y = Math.floor(i / columns) * (cellHeight + gap);
      cells.push({ x, y });
      blit(frameToRgba8(s.data, s.shape, 0, scale), x, y);
    }
  });

  return { width, height, data, columns, rows, cellWidth, cellHeight, gap, cells };
}
