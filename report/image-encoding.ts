/**
 * Float samples in [0, 1] (channels first) to 8-bit RGBA, with an integer
 * nearest-neighbour upscale, and RGBA to PNG (pngjs).
 *
 * Accepted shapes: [C, H, W] (an image) and [F, C, H, W] (a video), C = 1 or 3
 * (C = 4 is accepted and its fourth channel ignored). Values are clamped to
 * [0, 1]; NaN becomes 0.
 */
import { PNG } from 'pngjs';

export interface RgbaImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, row-major RGBA, alpha 255. */
  data: Uint8Array;
}

export interface SampleGeometry {
  frames: number;
  channels: number;
  height: number;
  width: number;
  isVideo: boolean;
}

/** Checks a sample shape against its data length and names its axes. */
export function sampleGeometry(shape: readonly number[], length?: number): SampleGeometry {
  let geometry: SampleGeometry;
  if (shape.length === 3) {
    geometry = { frames: 1, channels: shape[0]!, height: shape[1]!, width: shape[2]!, isVideo: false };
  } else if (shape.length === 4) {
    geometry = { frames: shape[0]!, channels: shape[1]!, height: shape[2]!, width: shape[3]!, isVideo: true };
  } else {
    throw new Error(`sample shape must be [C, H, W] or [F, C, H, W], got [${shape.join(', ')}]`);
  }
  const { frames, channels, height, width } = geometry;
  for (const n of [frames, channels, height, width]) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`bad sample shape [${shape.join(', ')}]`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new Error(`sample must have 1 or 3 channels, got ${channels}`);
  }
  if (length !== undefined && length !== frames * channels * height * width) {
    throw new Error(`sample data has ${length} values, shape [${shape.join(', ')}] needs ${frames * channels * height * width}`);
  }
  return geometry;
}

function checkScale(scale: number): void {
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`scale must be a positive integer, got ${scale}`);
}

/** [0, 1] float to a byte; clamps, NaN to 0. */
export function toByte(v: number): number {
  if (!(v > 0)) return 0;
  if (v >= 1) return 255;
  return Math.round(v * 255);
}

/** One frame (index `frame`) of a sample as RGBA, upscaled by `scale`. */
export function frameToRgba8(sample: Float32Array, shape: readonly number[], frame: number, scale = 1): RgbaImage {
  checkScale(scale);
  const g = sampleGeometry(shape, sample.length);
  if (!Number.isInteger(frame) || frame < 0 || frame >= g.frames) throw new Error(`frame ${frame} out of range 0..${g.frames - 1}`);
  const { channels, height, width } = g;
  const plane = height * width;
  const base = frame * channels * plane;
  const gOff = channels >= 3 ? plane : 0;
  const bOff = channels >= 3 ? 2 * plane : 0;
  const outW = width * scale;
  const outH = height * scale;
  const out = new Uint8Array(outW * outH * 4);
  // One source row at output width, then copied `scale` times.
  const row = new Uint8Array(outW * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = base + y * width + x;
      const r = toByte(sample[i]!);
      const gr = toByte(sample[i + gOff]!);
      const b = toByte(sample[i + bOff]!);
      for (let s = 0; s < scale; s++) {
        const o = (x * scale + s) * 4;
        row[o] = r;
        row[o + 1] = gr;
        row[o + 2] = b;
        row[o + 3] = 255;
      }
    }
    for (let s = 0; s < scale; s++) out.set(row, (y * scale + s) * outW * 4);
  }
  return { width: outW, height: outH, data: out };
}

/** Every frame of a sample (one for an image) as RGBA, upscaled by `scale`. */
export function toRgbaFrames(sample: Float32Array, shape: readonly number[], scale = 1): RgbaImage[] {
  const g = sampleGeometry(shape, sample.length);
  const frames: RgbaImage[] = [];
  for (let f = 0; f < g.frames; f++) frames.push(frameToRgba8(sample, shape, f, scale));
  return frames;
}

/**
 * A sample as RGBA, nearest-neighbour upscaled by the integer `scale`:
 * an image ([C, H, W]) gives one RgbaImage, a video ([F, C, H, W]) one per frame.
 */
export function toRgba8(sample: Float32Array, shape: readonly [number, number, number], scale?: number): RgbaImage;
export function toRgba8(sample: Float32Array, shape: readonly [number, number, number, number], scale?: number): RgbaImage[];
export function toRgba8(sample: Float32Array, shape: readonly number[], scale?: number): RgbaImage | RgbaImage[];
export function toRgba8(sample: Float32Array, shape: readonly number[], scale = 1): RgbaImage | RgbaImage[] {
  const frames = toRgbaFrames(sample, shape, scale);
  return shape.length === 3 ? frames[0]! : frames;
}

/** PNG bytes of an RGBA image (8-bit RGBA, pngjs). */
export function encodePng(rgba: RgbaImage): Buffer {
  if (rgba.data.length !== rgba.width * rgba.height * 4) {
    throw new Error(`RGBA data has ${rgba.data.length} bytes, ${rgba.width}x${rgba.height} needs ${rgba.width * rgba.height * 4}`);
  }
  const png = new PNG({ width: rgba.width, height: rgba.height });
  png.data = Buffer.from(rgba.data.buffer, rgba.data.byteOffset, rgba.data.byteLength);
  return PNG.sync.write(png);
}

/** A data: URI for bytes of the given MIME type (base64). */
export function dataUri(mime: string, bytes: Uint8Array): string {
  return `data:${mime};base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}`;
}
