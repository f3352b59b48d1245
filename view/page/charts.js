// The reward chart: inline SVG drawn here, no library. One point per generation: the best reward so
// far, and the population's maximum and mean in that generation's last scoring round.
import { s } from './dom.js';
import { reward } from './format.js';

const H = 250;
const M = { left: 56, right: 14, top: 12, bottom: 32 };

const SERIES = [
  { key: 'mean', label: 'population mean' },
  { key: 'max', label: 'population max' },
  { key: 'best', label: 'best so far' },
];

/**
 * An <svg> of `points` ({ generation, best, max, mean }, any of the three may be null) over
 * `generations`, `width` units wide (the box it is drawn in, so its text stays readable on a phone).
 */
export function rewardChart(points, generations, width = 640) {
  const W = Math.max(300, Math.min(900, Math.round(width)));
  const svg = s('svg', { id: 'reward-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'reward per generation' });
  const values = points.flatMap((p) => SERIES.map(({ key }) => p[key]).filter((v) => v !== null && v !== undefined && Number.isFinite(v)));
  if (points.length === 0 || values.length === 0) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no scored generation yet'));
    return svg;
  }
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.06;
  lo -= pad;
  hi += pad;
  const lastGen = Math.max(generations || 1, ...points.map((p) => p.generation));
  const firstGen = Math.min(1, ...points.map((p) => p.generation));
  const x = (g) => (lastGen === firstGen ? (M.left + W - M.right) / 2 : M.left + ((g - firstGen) / (lastGen - firstGen)) * (W - M.left - M.right));
  const y = (v) => M.top + (1 - (v - lo) / (hi - lo)) * (H - M.top - M.bottom);
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    svg.append(s('line', { class: 'grid', x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    svg.append(s('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, reward(v)));
  }
  svg.append(s('line', { class: 'axis', x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
  svg.append(s('line', { class: 'axis', x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }));
  const step = Math.max(1, Math.ceil((lastGen - firstGen + 1) / 12));
  for (let g = firstGen; g <= lastGen; g += step) svg.append(s('text', { x: x(g), y: H - M.bottom + 16, 'text-anchor': 'middle' }, String(g)));
  svg.append(s('text', { x: (M.left + W - M.right) / 2, y: H - 4, 'text-anchor': 'middle' }, 'generation'));
  for (const { key, label } of SERIES) {
    const pts = points.filter((p) => p[key] !== null && p[key] !== undefined && Number.isFinite(p[key]));
    if (pts.length === 0) continue;
    if (pts.length > 1) svg.append(s('polyline', { class: `series ${key}`, points: pts.map((p) => `${x(p.generation).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ') }));
    for (const p of pts) svg.append(s('circle', { class: `dot ${key}`, cx: x(p.generation), cy: y(p[key]), r: 3.5 }, s('title', {}, `generation ${p.generation}: ${label} ${reward(p[key])}`)));
  }
  return svg;
}
