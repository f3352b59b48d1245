/**
 * `GET /api/runs/:id/thumbnails/:round/:candidate.png`: one scored sample as a small PNG (its first
 * frame for a video), at most 64 pixels a side, encoded once and kept (a bounded cache of the latest
 * encoded ones). A sample that is not an image (the analytic model's vectors) has none.
 */
import { encodePng, frameToRgba8, sampleGeometry, type RgbaImage } from '../report/image-encoding.js';
import type { ThumbnailData } from './run-source.js';

export const THUMBNAIL_MAX_SIDE = 64;

/** PNG bytes of `sample`, or null when it is not an image. */
export function thumbnailPng(sample: ThumbnailData): Buffer | null {
  if (sample.shape.length !== 3 && sample.shape.length !== 4) return null;
  try {
    sampleGeometry(sample.shape, sample.data.length);
  } catch {
    return null;
  }
  return encodePng(shrink(frameToRgba8(sample.data, sample.shape, 0, 1)));
}

/** Every `stride`-th pixel, so that neither side passes THUMBNAIL_MAX_SIDE. */
function shrink(image: RgbaImage): RgbaImage {
  const stride = Math.ceil(Math.max(image.width, image.height) / THUMBNAIL_MAX_SIDE);
  if (stride <= 1) return image;
  const width = Math.ceil(image.width / stride);
  const height = Math.ceil(image.height / stride);
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(image.data.subarray(((y * stride) * image.width + x * stride) * 4, ((y * stride) * image.width + x * stride) * 4 + 4), (y * width + x) * 4);
  return { width, height, data };
}

/** The latest `capacity` encoded thumbnails (a Map keeps insertion order: the oldest goes first). */
export class ThumbnailCache {
  private readonly entries = new Map<string, Buffer>();

  constructor(private readonly capacity = 4096) {}

  /** The PNG under `key`, made once. None is not kept: a round's journal line may not be written yet. */
  async get(key: string, make: () => Promise<Buffer | null>): Promise<Buffer | null> {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const made = await make();
    if (made === null) return null;
    this.entries.set(key, made);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return made;
  }
}
