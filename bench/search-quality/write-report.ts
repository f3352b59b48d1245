/**
 * The search-quality report: tables of means over held-out prompts, paired win counts, the paper's
 * claims checked against the numbers, and PNG plots. Everything in it is computed from the results.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SearchResult } from './measure.js';
import { linePlotPng, type PlotRow } from './plots.js';
import { METHOD_NAMES } from '../../search/machine.js';

const COMPOSITION = 'composition-checker';
const METHOD_ORDER: readonly string[] = METHOD_NAMES;

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const stderr = (xs: readonly number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1) / xs.length));
const pm = (xs: readonly number[], digits: number) => (xs.length === 0 ? '–' : `${mean(xs).toFixed(digits)} ± ${stderr(xs).toFixed(digits)}`);

/** The held-out scorer's metric (the bundle's second ONNX reward), whatever the bundle names it. */
function heldOutScore(r: SearchResult): number | undefined {
  const name = Object.keys(r.heldOut).find((k) => k !== COMPOSITION);
  return name === undefined ? undefined : r.heldOut[name];
}
const composition = (r: SearchResult) => r.heldOut[COMPOSITION];
const defined = (xs: readonly (number | null | undefined)[]) => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    groups.set(k, [...(groups.get(k) ?? []), item]);
  }
  return groups;
}

/** A grid row's searcher: the method, and the EvoSearch settings when they are not the preset's. */
const searcher = (r: SearchResult) => (r.variant === 'default' ? r.method : `${r.method} (${r.variant})`);
const rank = (label: string) => {
  const i = METHOD_ORDER.indexOf(label.split(' ')[0]!);
  return (i < 0 ? METHOD_ORDER.length : i) + (label.includes(' ') ? 0.5 : 0);
};
const byMethod = (a: string, b: string) => rank(a) - rank(b) || a.localeCompare(b);
const BASELINES = ['best-of-n', 'particles'] as const;
/** "All checks pass": the composition checker finds every check of the prompt met (1 or 0). */
const allChecks = (r: SearchResult) => {
  const c = composition(r);
  return c === undefined ? undefined : c >= 1 ? 1 : 0;
};
const uniqueSorted = (xs: readonly number[]) => [...new Set(xs)].sort((a, b) => a - b);

interface Cell {
  readonly runs: readonly SearchResult[];
}

function metricRow(cell: Cell): string[] {
  const { runs } = cell;
  const comp = defined(runs.map(composition));
  return [
    pm(runs.map((r) => r.guidance), 2),
    pm(defined(runs.map(heldOutScore)), 2),
    pm(comp, 3),
    comp.length === 0 ? '–' : `${((100 * comp.filter((c) => c >= 1).length) / comp.length).toFixed(0)}%`,
    pm(defined(runs.map((r) => r.diversity)), 3),
    mean(runs.map((r) => r.spent.nfe)).toFixed(0),
    mean(runs.map((r) => r.spent.decodes)).toFixed(0),
    mean(runs.map((r) => r.spent.rewardCalls)).toFixed(0),
    (mean(runs.map((r) => r.wallMs)) / 1000).toFixed(2),
  ];
}

const METRIC_HEADER = ['guidance reward', 'held-out scorer', 'composition', 'all checks pass', 'diversity', 'NFE', 'decodes', 'reward calls', 'wall s'];

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Wins of `a` over `b` on a metric, paired by budget, prompt and seed. */
function pairedWins(a: readonly SearchResult[], b: readonly SearchResult[], metric: (r: SearchResult) => number | undefined): { wins: number; ties: number; n: number } {
  const key = (r: SearchResult) => `${r.budgetNfe}/${r.promptIndex}/${r.seed}`;
  const other = new Map(b.map((r) => [key(r), r]));
  let wins = 0;
  let ties = 0;
  let n = 0;
  for (const r of a) {
    const o = other.get(key(r));
    const x = metric(r);
    const y = o === undefined ? undefined : metric(o);
    if (x === undefined || y === undefined) continue;
    n += 1;
    if (x > y) wins += 1;
    else if (x === y) ties += 1;
  }
  return { wins, ties, n };
}

/** P(at least `wins` of n | no advantage), ties split evenly: the one-sided sign test. */
function signTestP(wins: number, ties: number, n: number): number {
  const m = n - ties;
  const k = wins;
  if (m === 0) return 1;
  let p = 0;
  for (let i = k; i <= m; i++) p += binomial(m, i) / 2 ** m;
  return Math.min(1, p);
}
function binomial(n: number, k: number): number {
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
  return c;
}

export interface ReportOptions {
  readonly folder: string;
  readonly notes?: string;
}

export async function writeQualityReport(results: readonly SearchResult[], options: ReportOptions): Promise<string[]> {
  mkdirSync(options.folder, { recursive: true });
  const written: string[] = [];
  const png = async (name: string, data: Promise<Buffer>) => {
    const path = join(options.folder, name);
    writeFileSync(path, await data);
    written.push(path);
    return name;
  };
  const out: string[] = ['# Search quality on the shipped bundles', ''];
  if (options.notes) out.push(options.notes.trim(), '');

  const grid = results.filter((r) => r.study === 'grid');
  const claims: string[][] = [];
  for (const [bundle, runs] of groupBy(grid, (r) => r.bundle)) {
    const prompts = new Set(runs.map((r) => r.promptIndex)).size;
    const seeds = new Set(runs.map((r) => r.seed)).size;
    const budgets = uniqueSorted(runs.map((r) => r.budgetNfe));
    out.push(`## ${bundle}`, '', `${prompts} held-out prompts × ${seeds} seed(s) per cell; mean ± standard error over them. Guidance reward: what the search maximised; held-out scorer, composition (the world's pixel-level checker: fraction of the prompt's checks passed) and "all checks pass" judge the returned sample; diversity: mean squared distance between the unit-normalised held-out-scorer embeddings of the final samples. NFE, decodes, reward calls and wall time are per search.`, '');
    const rows: string[][] = [];
    const cells = groupBy(runs, (r) => `${r.budgetNfe}|${searcher(r)}`);
    const searchers = [...new Set(runs.map(searcher))].sort(byMethod);
    for (const budget of budgets) {
      for (const method of searchers) {
        const cell = cells.get(`${budget}|${method}`);
        if (cell) rows.push([String(budget), method, ...metricRow({ runs: cell })]);
      }
    }
    out.push(table(['budget (NFE)', 'method', ...METRIC_HEADER], rows), '');

    // Paired comparisons: each EvoSearch variant against each baseline, per budget and pooled.
    const challengers = searchers.filter((m) => !(BASELINES as readonly string[]).includes(m));
    const verdict = (w: { wins: number; ties: number; n: number }) => {
      const p = signTestP(w.wins, w.ties, w.n);
      return `${w.wins}/${w.n - w.ties}${w.ties > 0 ? ` (${w.ties} ties)` : ''} p=${p.toFixed(3)}${p < 0.05 ? ' ✓' : ''}`;
    };
    const metrics = [(r: SearchResult) => r.guidance, heldOutScore, composition, allChecks] as const;
    for (const challenger of challengers) {
      const pairs: string[][] = [];
      for (const baseline of BASELINES) {
        for (const budget of budgets) {
          const a = cells.get(`${budget}|${challenger}`) ?? [];
          const b = cells.get(`${budget}|${baseline}`) ?? [];
          pairs.push([String(budget), baseline, ...metrics.map((f) => verdict(pairedWins(a, b, f)))]);
        }
        const all = (searcher: string) => budgets.flatMap((budget) => cells.get(`${budget}|${searcher}`) ?? []);
        pairs.push(['all', baseline, ...metrics.map((f) => verdict(pairedWins(all(challenger), all(baseline), f)))]);
      }
      out.push(`**${challenger}** against each baseline, paired by prompt and seed: searches where it returned the better sample, of those not tied (p: one-sided sign test, ties dropped; ✓ p < 0.05). "all" pools every budget (pairs of one prompt at several budgets are not independent, so read its p as a summary).`, '');
      out.push(table(['budget (NFE)', 'baseline', 'guidance reward', 'held-out scorer', 'composition', 'all checks pass'], pairs), '');
    }

    out.push(...agreementLines(runs), '');

    const rowsForPlot: PlotRow[] = runs.map((r) => ({ method: searcher(r), budget: r.budgetNfe, guidance: r.guidance, heldOut: heldOutScore(r) ?? null, composition: composition(r) ?? null, diversity: r.diversity }));
    const plot = await png(`${bundle}.png`, linePlotPng({
      title: `${bundle}: held-out prompts, equal NFE budgets`,
      rows: rowsForPlot,
      x: { field: 'budget', title: 'NFE budget', log: true },
      series: 'method',
      panels: [
        { field: 'guidance', title: 'guidance reward' },
        { field: 'heldOut', title: 'held-out scorer' },
        { field: 'composition', title: 'composition checker' },
        { field: 'diversity', title: 'diversity of final samples' },
      ],
    }));
    out.push(`![${bundle}](${plot})`, '');
    claims.push(...claimRows(bundle, budgets, cells));
  }

  if (claims.length > 0) {
    out.push('## The paper\'s claims on these models', '', 'Computed from the tables above (means over prompts; "yes" needs EvoSearch strictly ahead of both baselines).', '');
    out.push(table(['bundle', 'claim', 'held?', 'figures'], claims), '');
  }

  const sweep = results.filter((r) => r.study === 'sweep');
  if (sweep.length > 0) {
    for (const [key, runs] of groupBy(sweep, (r) => `${r.bundle}|${r.budgetNfe}`)) {
      const [bundle, budget] = key.split('|');
      out.push(`## EvoSearch settings at ${budget} NFEs (${bundle})`, '', 'The preset\'s settings ("default") against one change at a time. Variants ran on some or all of the default\'s prompts and seeds ("searches"); "wins vs default" pairs each with the default\'s search of the same prompt and seed (guidance reward, ties not counted).', '');
      const variants = groupBy(runs, (r) => r.variant);
      const reference = variants.get('default') ?? [];
      const rows: string[][] = [];
      for (const [variant, vr] of variants) {
        const w = pairedWins(vr, reference, (r) => r.guidance);
        rows.push([variant, vr[0]!.schedule, String(vr.length), ...metricRow({ runs: vr }), variant === 'default' ? '–' : `${w.wins}/${w.n}`]);
      }
      out.push(table(['settings', 'schedule', 'searches', ...METRIC_HEADER, 'wins vs default'], rows), '');
    }
  }

  const equal = results.filter((r) => r.study === 'equal-time');
  if (equal.length > 0) out.push(...(await equalTimeSection(equal, png)));

  const report = join(options.folder, 'README.md');
  writeFileSync(report, `${out.join('\n')}\n`);
  written.push(report);
  return written;
}

/**
 * Does a scorer order generated samples as the composition checker does? Over every two returned
 * samples of one prompt (any method, budget or variant) that the checker tells apart, the share the
 * scorer puts in the same order. 0.5 is chance. The scorers' training figures (models/README.md) are on
 * the world's renders; this is the same question on what the generator actually draws.
 */
function agreementLines(runs: readonly SearchResult[]): string[] {
  const scorers: [string, (r: SearchResult) => number | undefined][] = [['guidance reward', (r) => r.guidance], ['held-out scorer', heldOutScore]];
  const cells = scorers.map(([name, score]) => {
    let agree = 0;
    let pairs = 0;
    for (const same of groupBy(runs, (r) => `${r.promptIndex}`).values()) {
      for (let i = 0; i < same.length; i++) {
        for (let j = i + 1; j < same.length; j++) {
          const [a, b] = [same[i]!, same[j]!];
          const [ca, cb, sa, sb] = [composition(a), composition(b), score(a), score(b)];
          if (ca === undefined || cb === undefined || sa === undefined || sb === undefined || ca === cb || sa === sb) continue;
          pairs += 1;
          if (sa > sb === ca > cb) agree += 1;
        }
      }
    }
    return `${name} ${pairs === 0 ? '–' : (agree / pairs).toFixed(3)} of ${pairs} pairs`;
  });
  return [`Agreement with the composition checker on the returned samples (two samples of one prompt that the checker tells apart, ordered the same way by the scorer; 0.5 is chance): ${cells.join('; ')}.`];
}

function claimRows(bundle: string, budgets: readonly number[], cells: Map<string, SearchResult[]>): string[][] {
  const m = (budget: number, method: string, f: (r: SearchResult) => number | null | undefined) => {
    const xs = defined((cells.get(`${budget}|${method}`) ?? []).map(f));
    return xs.length === 0 ? Number.NaN : mean(xs);
  };
  const ahead = (f: (r: SearchResult) => number | null | undefined) => budgets.map((b) => ({ b, evo: m(b, 'evosearch', f), bon: m(b, 'best-of-n', f), par: m(b, 'particles', f) }));
  const verdict = (xs: { evo: number; bon: number; par: number }[]) => {
    const held = xs.filter((x) => x.evo > x.bon && x.evo > x.par).length;
    return held === xs.length ? 'yes' : held === 0 ? 'no' : `at ${held} of ${xs.length} budgets`;
  };
  const fmt = (xs: { b: number; evo: number; bon: number; par: number }[], d: number) => xs.map((x) => `${x.b}: ${x.evo.toFixed(d)} / ${x.bon.toFixed(d)} / ${x.par.toFixed(d)}`).join('; ');
  const g = ahead((r) => r.guidance);
  const h = ahead(heldOutScore);
  const c = ahead(composition);
  const d = ahead((r) => r.diversity);
  const lo = budgets[0]!;
  const hi = budgets.at(-1)!;
  const gain = (method: string) => m(hi, method, (r) => r.guidance) - m(lo, method, (r) => r.guidance);
  const rising = gain('evosearch') > gain('best-of-n') && gain('evosearch') > gain('particles');
  return [
    [bundle, 'EvoSearch above both baselines at equal NFEs (guidance reward)', verdict(g), `evo / best-of-n / particles by budget: ${fmt(g, 2)}`],
    [bundle, `keeps rising with compute where the baselines flatten (gain ${lo}→${hi} NFEs)`, rising ? 'yes' : 'no', `evo +${gain('evosearch').toFixed(2)}, best-of-n +${gain('best-of-n').toFixed(2)}, particles +${gain('particles').toFixed(2)}`],
    [bundle, 'holds up on the held-out scorer', verdict(h), fmt(h, 2)],
    [bundle, 'holds up on the composition checker', verdict(c), fmt(c, 3)],
    [bundle, 'highest diversity of final samples', verdict(d), fmt(d, 3)],
  ];
}

async function equalTimeSection(equal: readonly SearchResult[], png: (name: string, data: Promise<Buffer>) => Promise<string>): Promise<string[]> {
  const out: string[] = ['## A small model with search against a large one without, at equal wall time', ''];
  const host = equal[0]!.host;
  out.push(`Measured on one machine (${host}), the model already loaded; wall time is the search's own. "no search" = one sample (a budget of one trajectory), averaged over several seeds per prompt.`, '');
  const groups = groupBy(equal, (r) => `${r.bundle}|${r.variant === 'no search' ? 'no search' : r.method}|${r.budgetNfe}`);
  const rows: string[][] = [];
  const plotRows: PlotRow[] = [];
  for (const [key, runs] of [...groups].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
    const [bundle, method, budget] = key.split('|');
    rows.push([bundle!, method!, budget!, ...metricRow({ runs })]);
    // One plot point per group: wall time and quality are both means over the same prompts.
    plotRows.push({ series: `${bundle} ${method}`, wall: mean(runs.map((r) => r.wallMs)) / 1000, heldOut: mean(defined(runs.map(heldOutScore))), composition: mean(defined(runs.map(composition))), guidance: mean(runs.map((r) => r.guidance)) });
  }
  out.push(table(['model', 'method', 'budget (NFE)', ...METRIC_HEADER], rows), '');
  const plot = await png('equal-time.png', linePlotPng({
    title: 'quality against wall time (2-core machine)',
    rows: plotRows,
    x: { field: 'wall', title: 'wall time per search, s', log: true },
    series: 'series',
    panels: [
      { field: 'guidance', title: 'guidance reward' },
      { field: 'heldOut', title: 'held-out scorer' },
      { field: 'composition', title: 'composition checker' },
    ],
  }));
  out.push(`![equal wall time](${plot})`, '');
  return out;
}
