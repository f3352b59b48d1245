/**
 * Animated GIF of a video sample (gifenc). By default every frame gets its
 * own 256-colour palette (a local colour table; the first frame's is the
 * global one): a 32x32 frame has only 1024 pixels, so 256 colours keep it
 * close to exact, whereas one palette for all frames posterizes gradients.
 * `palette: 'global'` quantizes all frames together instead (no palette
 * changes between frames, smaller file). Frames are quantized and mapped at
 * the sample's own resolution and the index bitmap is then upscaled (nearest
 * neighbour), which is exact and cheap. Frame delay defaults to 125 ms (GIF
 * stores hundredths, so 130 ms); the animation loops forever (NETSCAPE2.0
 * extension, repeat 0).
 */
import gifenc from 'gifenc';
import type { SampleData } from './report-data.js';
import { sampleGeometry, toRgbaFrames, type RgbaImage } from './image-encoding.js';

export interface GifOptions {
  /** Integer nearest-neighbour upscale (default 1 for encodeGif, 8 for sampleToGif). */
  scale?: number;
  /** Per-frame delay in ms (default 125). */
  delayMs?: number;
  /** 0 = loop forever (default), -1 = play once, n = repeat n times. */
  repeat?: number;
  /** One palette per frame (default) or one for the whole animation. */
  palette?: 'per-frame' | 'global';
}

function upscaleIndex(index: Uint8Array, width: number, height: number, scale: number): Uint8Array {
  if (scale === 1) return index;
  const outW = width * scale;
  const out = new Uint8Array(outW * height * scale);
  const row = new Uint8Array(outW);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) row.fill(index[y * width + x]!, x * scale, (x + 1) * scale);
    for (let s = 0; s < scale; s++) out.set(row, (y * scale + s) * outW);
  }
  return out;
}

/** An animated GIF of same-size RGBA frames, with one global palette. */
export function encodeGif(frames: readonly RgbaImage[], options: GifOptions = {}): Uint8Array {
  if (frames.length === 0) throw new Error('encodeGif needs at least one frame');
  const scale = options.scale ?? 1;
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`scale must be a positive integer, got ${scale}`);
  const { width, height } = frames[0]!;
  for (const f of frames) {
    if (f.width !== width || f.height !== height) throw new Error('all GIF frames must have the same size');
  }
  let global: number[][] | null = null;
  if (options.palette === 'global') {
    const all = new Uint8Array(width * height * 4 * frames.length);
    frames.forEach((f, i) => all.set(f.data, i * width * height * 4));
    global = gifenc.quantize(all, 256);
  }
  const gif = gifenc.GIFEncoder();
  const delay = options.delayMs ?? 125;
  const repeat = options.repeat ?? 0;
  frames.forEach((f, i) => {
    const palette = global ?? gifenc.quantize(f.data, 256);
    const index = upscaleIndex(gifenc.applyPalette(f.data, palette), width, height, scale);
    // The first frame's palette becomes the global colour table; later frames
    // carry a local one unless a single global palette is used.
    const framePalette = i === 0 || global === null ? palette : null;
    gif.writeFrame(index, width * scale, height * scale, i === 0 ? { palette, delay, repeat } : { palette: framePalette, delay });
  });
  gif.finish();
  return gif.bytes();
}

/**
 * An animated GIF of a sample: every frame of a video [F, C, H, W]; an image
 * [C, H, W] gives a one-frame GIF. Default scale 8 (32 px -> 256 px).
 */
export function sampleToGif(sample: SampleData, options: GifOptions = {}): Uint8Array {
  sampleGeometry(sample.shape, sample.data.length);
  return encodeGif(toRgbaFrames(sample.data, sample.shape, 1), { ...options, scale: options.scale ?? 8 });
}
