/**
 * PNG plots for the report: Vega-Lite specs rendered to SVG by Vega, rasterised by resvg.
 * Each plot takes the per-search rows and lets Vega-Lite aggregate them (mean, standard-error band).
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface Panel {
  readonly field: string;
  readonly title: string;
}

/** Rows of one measurement each: a series, an x value and the panels' fields. */
export type PlotRow = Record<string, string | number | null>;

export interface LinePlot {
  readonly title: string;
  readonly rows: readonly PlotRow[];
  readonly x: { readonly field: string; readonly title: string; readonly log: boolean };
  readonly series: string;
  readonly panels: readonly Panel[];
}

/** One panel per field, side by side: the mean per series and x, with a standard-error band. */
export async function linePlotPng(plot: LinePlot): Promise<Buffer> {
  const panel = (p: Panel) => ({
    width: 230,
    height: 170,
    title: p.title,
    layer: [
      {
        mark: { type: 'errorband', extent: 'stderr', opacity: 0.18 },
        encoding: {
          x: { field: plot.x.field, type: 'quantitative', title: plot.x.title, scale: plot.x.log ? { type: 'log', nice: false } : { zero: false } },
          y: { field: p.field, type: 'quantitative', title: null, scale: { zero: false } },
          color: { field: plot.series, type: 'nominal', title: null },
        },
      },
      {
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: plot.x.field, type: 'quantitative', aggregate: undefined },
          y: { field: p.field, type: 'quantitative', aggregate: 'mean' },
          color: { field: plot.series, type: 'nominal', title: null },
        },
      },
    ],
  });
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: plot.title,
    data: { values: plot.rows },
    hconcat: plot.panels.map(panel),
    config: { legend: { orient: 'bottom', labelLimit: 400 }, font: 'DejaVu Sans' },
  } as unknown as TopLevelSpec;
  return render(spec);
}

async function render(spec: TopLevelSpec): Promise<Buffer> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}
