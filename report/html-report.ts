/**
 * One self-contained HTML report of a search run: no external assets, no
 * JavaScript. Images are data: URIs (PNG; GIF for the best video sample),
 * CSS is inline, charts are inline SVG. All text from the data (prompts,
 * labels, ids, metric names) is HTML-escaped.
 *
 * Per prompt: the prompt, method, model, budget and compute spent; the best
 * sample large with its guidance reward and held-out metrics, and whether the
 * held-out metrics agree with the guidance reward (held-out-check.ts); an SVG
 * chart of reward per generation (one point per generation; best so far,
 * population max, population mean: one <polyline> per series that has at
 * least one value, nulls skipped); the
 * final population grid (best first); the winner's lineage from x_T to the
 * final sample. With several prompts, a summary table comes first.
 */
import type { LineageStep, PromptReport, RoundReport, RunReportData, SampleData } from './report-data.js';
import { dataUri, encodePng, frameToRgba8, sampleGeometry } from './image-encoding.js';
import { bestFirst, renderGrid } from './grid.js';
import { sampleToGif } from './gif.js';
import { checkHeldOut, describeHeldOutCheck, type HeldOutCheck } from './held-out-check.js';

export interface HtmlReportOptions {
  /** Upscale of the best sample (default 8: 32 px -> 256 px). */
  bestScale?: number;
  /** Upscale of each population grid tile (default 2). */
  gridScale?: number;
  /** Upscale of lineage thumbnails (default 2). */
  thumbScale?: number;
  /** GIF frame delay for the best video sample in ms (default 125). */
  gifDelayMs?: number;
}

/** Escapes text for HTML element content and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const esc = escapeHtml;

export function formatNumber(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (Number.isInteger(v)) return v.toString();
  const a = Math.abs(v);
  if (a >= 1000 || a < 1e-3) return v.toPrecision(4);
  return v.toFixed(4);
}

export function formatCount(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - 60 * m)} s`;
}

function promptText(prompt: string | null): string {
  return prompt === null ? '(unconditional)' : prompt;
}

function pngUri(sample: SampleData, scale: number): string {
  return dataUri('image/png', encodePng(frameToRgba8(sample.data, sample.shape, 0, scale)));
}

// ---------------------------------------------------------------- chart

interface Series {
  key: 'best' | 'population-max' | 'population-mean';
  label: string;
  color: string;
  dash: string | null;
  value: (r: RoundReport) => number | null;
}

const SERIES: readonly Series[] = [
  { key: 'best', label: 'best so far', color: '#d62728', dash: null, value: (r) => r.bestReward },
  { key: 'population-max', label: 'population max', color: '#1f77b4', dash: null, value: (r) => r.populationMax },
  { key: 'population-mean', label: 'population mean', color: '#7f7f7f', dash: '5 4', value: (r) => r.populationMean },
];

const finite = (v: number | null): v is number => v !== null && Number.isFinite(v);

function niceStep(range: number, target: number): number {
  const raw = range / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
  return nice * mag;
}

function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/**
 * The chart's points: one per generation. A search reports one entry per round, and a generation can
 * take several rounds (EvoSearch's last generation is the round that takes the population to x0 and
 * the one that frees the samples it overtook; particles advance-and-score, then resample, in each):
 * charted per round, such a generation came twice on the x-axis. A round that scores nothing repeats
 * the population figures of the round before it (the search reports its latest scored round), so a
 * round whose figures equal its predecessor's adds none. Each generation's point takes the best so far
 * of its last round, and the population figures and label of its last round that scored. Generations
 * with no value at all (an init round) have no point.
 */
export function generationPoints(rounds: readonly RoundReport[]): RoundReport[] {
  const byGeneration = new Map<number, RoundReport>();
  rounds.forEach((r, i) => {
    const previous = rounds[i - 1];
    const repeated = previous !== undefined && r.populationMean === previous.populationMean && r.populationMax === previous.populationMax;
    const scored = !repeated && (finite(r.populationMean) || finite(r.populationMax));
    const before = byGeneration.get(r.generation) ?? { label: r.label, generation: r.generation, bestReward: null, populationMean: null, populationMax: null };
    byGeneration.set(r.generation, {
      label: scored ? r.label : before.label,
      generation: r.generation,
      bestReward: finite(r.bestReward) ? r.bestReward : before.bestReward,
      populationMean: scored ? r.populationMean : before.populationMean,
      populationMax: scored ? r.populationMax : before.populationMax,
    });
  });
  return [...byGeneration.values()].filter((r) => SERIES.some((s) => finite(s.value(r)))).sort((a, b) => a.generation - b.generation);
}

/** Inline SVG line chart of reward per generation; one <polyline> per series with data. */
export function renderRewardChart(allRounds: readonly RoundReport[]): string {
  const rounds = generationPoints(allRounds);
  const active = SERIES.filter((s) => rounds.some((r) => finite(s.value(r))));
  if (rounds.length === 0 || active.length === 0) return '<p class="muted">No rewards recorded.</p>';
  const values = active.flatMap((s) => rounds.map(s.value).filter(finite));
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-12) {
    const pad = Math.abs(hi) > 0 ? Math.abs(hi) * 0.1 : 0.5;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, 5);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;

  const W = 640;
  const H = 296;
  const m = { left: 64, right: 16, top: 32, bottom: 44 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const n = rounds.length;
  // x is the generation itself, so a generation without a point leaves its gap.
  const first = rounds[0]!.generation;
  const span = rounds[n - 1]!.generation - first;
  const xOf = (i: number): number => m.left + (span === 0 ? pw / 2 : ((rounds[i]!.generation - first) * pw) / span);
  const yOf = (v: number): number => m.top + ph - ((v - lo) / (hi - lo)) * ph;
  const f1 = (v: number): string => v.toFixed(1);

  const parts: string[] = [];
  parts.push(`<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Reward per generation">`);
  // y grid and ticks
  for (let t = 0; lo + t * step <= hi + step * 1e-6; t++) {
    const v = lo + t * step;
    const y = f1(yOf(v));
    parts.push(`<line x1="${m.left}" y1="${y}" x2="${W - m.right}" y2="${y}" stroke="#e6e6e6"/>`);
    parts.push(`<text x="${m.left - 6}" y="${y}" font-size="11" fill="#555" text-anchor="end" dominant-baseline="middle">${esc(tickLabel(v, step))}</text>`);
  }
  // x ticks (at most ~10 labels)
  const every = Math.max(1, Math.ceil(n / 10));
  rounds.forEach((r, i) => {
    // The last generation always gets its label; a regular one too close before it gives way.
    if (i !== n - 1 && (i % every !== 0 || n - 1 - i < every)) return;
    const x = f1(xOf(i));
    parts.push(`<line x1="${x}" y1="${m.top + ph}" x2="${x}" y2="${m.top + ph + 4}" stroke="#888"/>`);
    parts.push(`<text x="${x}" y="${m.top + ph + 16}" font-size="11" fill="#555" text-anchor="middle">${esc(String(r.generation))}</text>`);
  });
  parts.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${W - m.right}" y2="${m.top + ph}" stroke="#888"/>`);
  parts.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#888"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 6}" font-size="12" fill="#333" text-anchor="middle">generation</text>`);
  parts.push(`<text x="14" y="${m.top + ph / 2}" font-size="12" fill="#333" text-anchor="middle" transform="rotate(-90 14 ${m.top + ph / 2})">reward</text>`);

  // Drawn bottom-up so 'best so far' ends on top; the legend keeps SERIES order.
  for (const s of [...active].reverse()) {
    const pts = rounds
      .map((r, i) => ({ r, i, v: s.value(r) }))
      .filter((p): p is { r: RoundReport; i: number; v: number } => finite(p.v));
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    parts.push(`<polyline data-series="${s.key}" fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${pts.map((p) => `${f1(xOf(p.i))},${f1(yOf(p.v))}`).join(' ')}"/>`);
    for (const p of pts) {
      parts.push(`<circle cx="${f1(xOf(p.i))}" cy="${f1(yOf(p.v))}" r="2.5" fill="${s.color}"><title>${esc(`${p.r.label} (generation ${p.r.generation}): ${s.label} ${formatNumber(p.v)}`)}</title></circle>`);
    }
  }
  // legend
  active.forEach((s, k) => {
    const x = m.left + k * 150;
    const y = 12;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    parts.push(`<line x1="${x}" y1="${y}" x2="${x + 20}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${x + 26}" y="${y}" font-size="12" fill="#333" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

// ---------------------------------------------------------------- sections

function metricsTable(reward: number, metrics: Record<string, number>): string {
  const rows = [`<tr><th>guidance reward</th><td>${esc(formatNumber(reward))}</td></tr>`];
  for (const [k, v] of Object.entries(metrics)) rows.push(`<tr><th>${esc(k)}</th><td>${esc(formatNumber(v))}</td></tr>`);
  return `<table class="kv">${rows.join('')}</table>`;
}

function factsList(p: PromptReport): string {
  const pct = p.budgetNfe > 0 ? ` (${((100 * p.spent.nfe) / p.budgetNfe).toFixed(1)}% of budget)` : '';
  const facts: [string, string][] = [
    ['method', p.method],
    ['model', p.model],
    ['budget', `${formatCount(p.budgetNfe)} NFEs`],
    ['NFEs spent', `${formatCount(p.spent.nfe)}${pct}`],
    ['forward passes', formatCount(p.spent.forwardPasses)],
    ['decodes', formatCount(p.spent.decodes)],
    ['reward calls', formatCount(p.spent.rewardCalls)],
    ['wall time', formatDuration(p.wallMs)],
    ['bytes moved', formatBytes(p.bytesMoved)],
  ];
  return `<dl class="facts">${facts.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('')}</dl>`;
}

function bestSection(p: PromptReport, o: Required<HtmlReportOptions>): string {
  const s = p.best.sample;
  let media = '<p class="muted">No sample kept for the best candidate.</p>';
  if (s) {
    const g = sampleGeometry(s.shape, s.data.length);
    const w = g.width * o.bestScale;
    const h = g.height * o.bestScale;
    const src = g.isVideo
      ? dataUri('image/gif', sampleToGif(s, { scale: o.bestScale, delayMs: o.gifDelayMs }))
      : pngUri(s, o.bestScale);
    const kind = g.isVideo ? `video, ${g.frames} frames` : 'image';
    media = `<img class="best-img" src="${src}" width="${w}" height="${h}" alt="best sample (${kind})">`;
  }
  return `<div class="best">${media}<div><h4>Best sample</h4>${metricsTable(p.best.reward, p.best.metrics)}${heldOutNote(p)}</div></div>`;
}

/** The held-out check of the winner (held-out-check.ts); null without the scored samples or metrics. */
export function heldOutCheckOf(p: PromptReport): HeldOutCheck | null {
  return p.scored === undefined ? null : checkHeldOut(p.best, p.scored);
}

function heldOutNote(p: PromptReport): string {
  const check = heldOutCheckOf(p);
  if (check === null) return '';
  const text = describeHeldOutCheck(check);
  const sentence = text.charAt(0).toUpperCase() + text.slice(1);
  const detail = check.metrics.map((m) => `${m.name}: ${m.higher} of ${m.samples} higher, median ${formatNumber(m.median)}`).join('; ');
  return `<p class="held-out ${check.verdict}" data-verdict="${check.verdict}">${check.verdict === 'disagree' ? '<strong>Warning:</strong> ' : ''}${esc(sentence)}.`
    + `<br><span class="muted">${esc(`Against the ${check.samples} samples this run scored (${detail}). A disagreement: the winner below the median of those samples on a held-out metric.`)}</span></p>`;
}

function populationSection(p: PromptReport, o: Required<HtmlReportOptions>): string {
  if (p.population.length === 0) return '<p class="muted">No final population recorded.</p>';
  const ordered = bestFirst(p.population);
  const grid = renderGrid(ordered.map((m) => m.sample), { scale: o.gridScale });
  const layout = ordered.some((m) => m.sample.shape.length === 4)
    ? 'one row of frames per sample, best at the top'
    : 'best first, left to right, top to bottom';
  const rewards = ordered.slice(0, 64).map((m) => formatNumber(m.reward)).join(', ') + (ordered.length > 64 ? ', …' : '');
  return `<figure class="population"><img src="${dataUri('image/png', encodePng(grid))}" width="${grid.width}" height="${grid.height}" alt="final population grid">`
    + `<figcaption>${esc(`${ordered.length} samples, ${layout}. Rewards: ${rewards}`)}</figcaption></figure>`;
}

const OP_LABEL: Record<string, string> = {
  init: 'init',
  'mutate-xT': 'mutate x_T',
  'mutate-sde': 'mutate (SDE)',
  archive: 'archive',
  copy: 'copy',
  rollout: 'rollout',
};

function lineageSection(lineage: readonly LineageStep[], o: Required<HtmlReportOptions>): string {
  if (lineage.length === 0) return '<p class="muted">No lineage recorded.</p>';
  const items = lineage.map((st, i) => {
    const thumb = st.thumbnail
      ? `<img src="${pngUri(st.thumbnail, o.thumbScale)}" alt="">`
      : '<div class="no-thumb">no image</div>';
    const where = i === 0 ? 'x_T' : i === lineage.length - 1 ? 'final' : '';
    return `<li class="lineage-step" data-id="${esc(String(st.id))}" data-op="${esc(st.op)}">${thumb}`
      + `<div class="op">${esc(OP_LABEL[st.op] ?? st.op)}</div>`
      + `<div class="meta">${esc(`gen ${st.generation} · step ${st.step}`)}</div>`
      + `<div class="meta">${esc(`reward ${formatNumber(st.reward)}`)}</div>`
      + `<div class="meta id">${esc(`#${String(st.id)}${where ? ` (${where})` : ''}`)}</div></li>`;
  });
  return `<ol class="lineage">${items.join('')}</ol>`;
}

function promptSection(p: PromptReport, index: number, o: Required<HtmlReportOptions>, multi: boolean): string {
  const heading = multi ? `Prompt ${index + 1}: ${promptText(p.prompt)}` : promptText(p.prompt);
  return `<section class="prompt" id="prompt-${index + 1}">`
    + `<h2>${esc(heading)}</h2>`
    + factsList(p)
    + bestSection(p, o)
    + `<h3>Reward per generation</h3>${renderRewardChart(p.rounds)}`
    + `<h3>Final population</h3>${populationSection(p, o)}`
    + `<h3>Lineage of the winner</h3><p class="muted">From x_T (left) to the final sample (right).</p>${lineageSection(p.lineage, o)}`
    + '</section>';
}

/** The multi-prompt summary table: prompt, method, best reward, held-out metrics, NFEs, wall time. */
export function renderSummaryTable(prompts: readonly PromptReport[]): string {
  const metricNames = [...new Set(prompts.flatMap((p) => Object.keys(p.best.metrics)))].sort();
  const head = ['#', 'prompt', 'method', 'best reward', ...metricNames, 'held-out check', 'NFEs', 'wall time']
    .map((h) => `<th>${esc(h)}</th>`).join('');
  const rows = prompts.map((p, i) => {
    const cells = [
      `<td>${i + 1}</td>`,
      `<td class="prompt-cell"><a href="#prompt-${i + 1}">${esc(promptText(p.prompt))}</a></td>`,
      `<td>${esc(p.method)}</td>`,
      `<td>${esc(formatNumber(p.best.reward))}</td>`,
      ...metricNames.map((k) => `<td>${esc(formatNumber(p.best.metrics[k]))}</td>`),
      `<td>${esc(verdictCell(heldOutCheckOf(p)))}</td>`,
      `<td>${esc(`${formatCount(p.spent.nfe)} / ${formatCount(p.budgetNfe)}`)}</td>`,
      `<td>${esc(formatDuration(p.wallMs))}</td>`,
    ];
    return `<tr>${cells.join('')}</tr>`;
  });
  return `<table class="summary"><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function verdictCell(check: HeldOutCheck | null): string {
  if (check === null) return '—';
  return check.verdict === 'agree' ? 'agrees' : `disagrees (${check.disagreeing.join(', ')})`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa;margin:0;padding:24px;max-width:1100px}
h1{font-size:22px;margin:0 0 16px}h2{font-size:18px;margin:0 0 12px;word-break:break-word}h3{font-size:15px;margin:20px 0 8px}h4{margin:0 0 8px}
section.prompt{background:#fff;border:1px solid #ddd;border-radius:8px;padding:16px 20px;margin:0 0 24px}
.muted{color:#777}
dl.facts{display:flex;flex-wrap:wrap;gap:8px 24px;margin:0 0 16px}dl.facts div{min-width:110px}dt{color:#777;font-size:12px}dd{margin:0;font-weight:600}
.best{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
img{image-rendering:pixelated;image-rendering:crisp-edges}.best-img{border:1px solid #ccc}
table{border-collapse:collapse}table.kv th{text-align:left;font-weight:normal;color:#555;padding:2px 16px 2px 0}table.kv td{font-variant-numeric:tabular-nums}
table.summary{width:100%;background:#fff;margin:0 0 24px}table.summary th,table.summary td{border:1px solid #ddd;padding:4px 8px;text-align:left;font-variant-numeric:tabular-nums}
table.summary th{background:#f0f0f0}.prompt-cell{max-width:420px;word-break:break-word}
svg.chart{max-width:100%;height:auto;background:#fff;font-family:inherit}
figure{margin:0}figcaption{color:#666;font-size:12px;margin-top:6px;max-width:900px}
ol.lineage{list-style:none;display:flex;flex-wrap:wrap;gap:6px;padding:0;margin:0}
ol.lineage li{display:flex;flex-direction:column;align-items:center;border:1px solid #ddd;border-radius:6px;padding:6px;min-width:76px;background:#fcfcfc;position:relative}
ol.lineage li+li{margin-left:14px}ol.lineage li+li::before{content:"→";position:absolute;left:-17px;top:40%;color:#999}
ol.lineage .op{font-weight:600;font-size:12px;margin-top:4px}ol.lineage .meta{font-size:11px;color:#666}
p.held-out{max-width:520px;margin:12px 0 0;padding:8px 10px;border-radius:6px;font-size:13px}p.held-out.agree{background:#eef7ee;border:1px solid #b9dcb9}p.held-out.disagree{background:#fff4e5;border:1px solid #f0b45a}
.no-thumb{width:64px;height:64px;display:flex;align-items:center;justify-content:center;background:#eee;color:#999;font-size:10px}
`;

/** The whole report: one self-contained HTML document. */
export function renderHtmlReport(data: RunReportData, options: HtmlReportOptions = {}): string {
  const o: Required<HtmlReportOptions> = {
    bestScale: options.bestScale ?? 8,
    gridScale: options.gridScale ?? 2,
    thumbScale: options.thumbScale ?? 2,
    gifDelayMs: options.gifDelayMs ?? 125,
  };
  const multi = data.prompts.length > 1;
  const body: string[] = [`<h1>${esc(data.title)}</h1>`];
  if (multi) body.push(`<h2>Summary</h2>${renderSummaryTable(data.prompts)}`);
  if (data.prompts.length === 0) body.push('<p class="muted">No prompts were run.</p>');
  data.prompts.forEach((p, i) => body.push(promptSection(p, i, o, multi)));
  return '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    + '<meta name="viewport" content="width=device-width, initial-scale=1">'
    + `<title>${esc(data.title)}</title><style>${CSS}</style></head>`
    + `<body>${body.join('\n')}</body></html>\n`;
}
