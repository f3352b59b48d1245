/**
 * Writes what the user sees after a run into a folder:
 *   best.png        the best sample (first frame for a video)
 *   population.png  the final population grid, best first
 *   best.gif        (video only) the best sample, animated, looping
 *   best.mp4        (video only) the best sample, H.264 Baseline (I_PCM)
 *   report.html     the self-contained report
 * Every file is written atomically: to a temporary name in the same folder,
 * then renamed over the final name.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurableSync } from '../files/durable-write.js';
import type { PromptReport, RunReportData } from './report-data.js';
import { encodePng, frameToRgba8, sampleGeometry } from './image-encoding.js';
import { bestFirst, renderGrid } from './grid.js';
import { sampleToGif } from './gif.js';
import { sampleToMp4 } from './mp4.js';
import { renderHtmlReport, type HtmlReportOptions } from './html-report.js';

export interface WriteOutputsOptions extends HtmlReportOptions {
  /** Report title (default: the prompt, or "EvoSearch run"). */
  title?: string;
  /** Frames per second of best.mp4 (default 8). */
  fps?: number;
}

export interface WrittenOutputs {
  /** Paths written (the folder joined with each file name), in write order. */
  files: string[];
}

/** Writes `bytes` to `path` atomically and durably (files/durable-write.ts: temp file in the same folder, synced, renamed). */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  writeFileDurableSync(path, bytes);
}

/** best.png, population.png, (video) best.gif + best.mp4, and report.html for one prompt. */
export function writeRunOutputs(folder: string, data: PromptReport, options: WriteOutputsOptions = {}): WrittenOutputs {
  mkdirSync(folder, { recursive: true });
  const files: string[] = [];
  const put = (name: string, bytes: Uint8Array | string): void => {
    const path = join(folder, name);
    writeFileAtomic(path, bytes);
    files.push(path);
  };
  const bestScale = options.bestScale ?? 8;
  const best = data.best.sample;
  if (best) {
    const g = sampleGeometry(best.shape, best.data.length);
    put('best.png', encodePng(frameToRgba8(best.data, best.shape, 0, bestScale)));
    if (g.isVideo) {
      put('best.gif', sampleToGif(best, { scale: bestScale, delayMs: options.gifDelayMs ?? 125 }));
      put('best.mp4', sampleToMp4(best, { scale: bestScale, fps: options.fps ?? 8 }));
    }
  }
  if (data.population.length > 0) {
    const grid = renderGrid(bestFirst(data.population).map((m) => m.sample), { scale: options.gridScale ?? 2 });
    put('population.png', encodePng(grid));
  }
  const title = options.title ?? (data.prompt ?? 'EvoSearch run');
  put('report.html', renderHtmlReport({ title, prompts: [data] }, options));
  return { files };
}

/** report.html with the summary table and one section per prompt (multi-prompt runs). */
export function writeSummaryReport(folder: string, data: RunReportData, options: HtmlReportOptions = {}): WrittenOutputs {
  mkdirSync(folder, { recursive: true });
  const path = join(folder, 'report.html');
  writeFileAtomic(path, renderHtmlReport(data, options));
  return { files: [path] };
}
