/**
 * A small picture of a decoded sample for reports: the first frame of a video, box-filtered down so
 * that neither side exceeds `maxSide` (samples already that small pass unchanged). Channels first.
 */
export function thumbnail(sample: Float32Array, shape: readonly number[], maxSide: number): { data: Float32Array; shape: number[] } {
  // Not an image (the analytic model's vectors): the sample is its own thumbnail.
  if (shape.length < 3) return { data: sample.slice(), shape: [...shape] };
  const [channels, height, width] = shape.slice(-3) as [number, number, number];
  const frame = sample.subarray(0, channels * height * width);
  const factor = Math.max(1, Math.ceil(Math.max(height, width) / Math.max(1, maxSide)));
  if (factor === 1) return { data: frame.slice(), shape: [channels, height, width] };
  const h = Math.floor(height / factor);
  const w = Math.floor(width / factor);
  const out = new Float32Array(channels * h * w);
  const area = factor * factor;
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) {
          const row = (c * height + y * factor + dy) * width + x * factor;
          for (let dx = 0; dx < factor; dx++) sum += frame[row + dx]!;
        }
        out[(c * h + y) * w + x] = sum / area;
      }
    }
  }
  return { data: out, shape: [channels, h, w] };
}
