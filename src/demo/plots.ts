// Plain SVG charts (labeled axes, ticks, legend) written by hand, and PNG copies rendered with
// @resvg/resvg-js (a prebuilt renderer shipped in its npm package; it uses the system's fonts).

import { requireOptional } from '../io/optional-deps.js';

export const PALETTE = ['#444444', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b'];
const FONT = 'DejaVu Sans, Arial, Helvetica, sans-serif';

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** About 5 round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi - lo < 1e-12) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  if (out[out.length - 1]! < hi) out.push(out[out.length - 1]! + step);
  return out;
}

function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
  dashed?: boolean;
  /** Draw markers at the points. */
  markers?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

interface Frame {
  svg: string[];
  x: (v: number) => number;
  y: (v: number) => number;
  width: number;
  height: number;
  plot: { left: number; top: number; right: number; bottom: number };
}

function frame(o: ChartOptions, xs: number[], ys: number[], legend: { name: string; color: string; dashed?: boolean }[]): Frame {
  const width = o.width ?? 640, height = o.height ?? 400;
  const plot = { left: 72, top: 44, right: width - 20, bottom: height - 58 };
  const xt = niceTicks(Math.min(...xs), Math.max(...xs));
  const yt = niceTicks(Math.min(...ys), Math.max(...ys));
  const x0 = xt[0]!, x1 = xt[xt.length - 1]!, y0 = yt[0]!, y1 = yt[yt.length - 1]!;
  const x = (v: number): number => plot.left + ((v - x0) / (x1 - x0 || 1)) * (plot.right - plot.left);
  const y = (v: number): number => plot.bottom - ((v - y0) / (y1 - y0 || 1)) * (plot.bottom - plot.top);
  const svg: string[] = [];
  svg.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">`);
  svg.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  svg.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" fill="#222">${escapeXml(o.title)}</text>`);
  for (const t of xt) {
    const px = x(t).toFixed(1);
    svg.push(`<line x1="${px}" y1="${plot.top}" x2="${px}" y2="${plot.bottom}" stroke="#e6e6e6"/>`);
    svg.push(`<text x="${px}" y="${plot.bottom + 18}" text-anchor="middle" font-size="12" fill="#444">${fmtTick(t)}</text>`);
  }
  for (const t of yt) {
    const py = y(t).toFixed(1);
    svg.push(`<line x1="${plot.left}" y1="${py}" x2="${plot.right}" y2="${py}" stroke="#e6e6e6"/>`);
    svg.push(`<text x="${plot.left - 8}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" font-size="12" fill="#444">${fmtTick(t)}</text>`);
  }
  svg.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#888"/>`);
  svg.push(`<text x="${(plot.left + plot.right) / 2}" y="${height - 16}" text-anchor="middle" font-size="13" fill="#222">${escapeXml(o.xLabel)}</text>`);
  svg.push(`<text transform="translate(18 ${(plot.top + plot.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">${escapeXml(o.yLabel)}</text>`);
  // Legend, top-left inside the plot, on a translucent box.
  if (legend.length) {
    const lw = 24 + 7.5 * Math.max(...legend.map((l) => l.name.length));
    svg.push(`<rect x="${plot.left + 8}" y="${plot.top + 8}" width="${lw.toFixed(0)}" height="${legend.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#ccc"/>`);
    legend.forEach((l, i) => {
      const ly = plot.top + 22 + i * 18;
      svg.push(`<line x1="${plot.left + 14}" y1="${ly - 4}" x2="${plot.left + 30}" y2="${ly - 4}" stroke="${l.color}" stroke-width="2.5"${l.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      svg.push(`<text x="${plot.left + 36}" y="${ly}" font-size="12" fill="#222">${escapeXml(l.name)}</text>`);
    });
  }
  return { svg, x, y, width, height, plot };
}

/** Lines over x (training curves). */
export function lineChart(o: ChartOptions, series: readonly Series[]): string {
  const pts = series.flatMap((s) => s.points).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
  if (pts.length === 0) throw new Error(`lineChart "${o.title}": no finite points to plot`);
  const colored = series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length]! }));
  const f = frame(o, pts.map((p) => p[0]), pts.map((p) => p[1]), colored);
  for (const s of colored) {
    const ok = s.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
    if (ok.length === 0) continue;
    const d = ok.map(([a, b], i) => `${i ? 'L' : 'M'}${f.x(a).toFixed(1)} ${f.y(b).toFixed(1)}`).join(' ');
    f.svg.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    if (s.markers || ok.length === 1) for (const [a, b] of ok) f.svg.push(`<circle cx="${f.x(a).toFixed(1)}" cy="${f.y(b).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  f.svg.push('</svg>');
  return f.svg.join('\n');
}

export interface ScatterPoint {
  name: string;
  x: number;
  y: number;
  /** Standard errors (drawn as error bars). */
  xErr?: number;
  yErr?: number;
  color?: string;
  /** Points of one group (method) are joined by their own line; default: all in one group. */
  group?: string;
}

/** Labeled points with error bars, each group joined in order of x by a thin line (the reward–KL frontier). */
export function frontierChart(o: ChartOptions, points: readonly ScatterPoint[]): string {
  if (points.length === 0) throw new Error(`frontierChart "${o.title}": no points`);
  const cp = points.map((p, i) => ({ ...p, color: p.color ?? PALETTE[i % PALETTE.length]! }));
  const xs = cp.flatMap((p) => [p.x - (p.xErr ?? 0), p.x + (p.xErr ?? 0)]);
  const ys = cp.flatMap((p) => [p.y - (p.yErr ?? 0), p.y + (p.yErr ?? 0)]);
  // Points carry their own labels: no legend box to hide them.
  const f = frame(o, xs, ys, []);
  for (const g of new Set(cp.map((p) => p.group ?? ''))) {
    const sorted = cp.filter((p) => (p.group ?? '') === g).sort((a, b) => a.x - b.x);
    if (sorted.length < 2) continue;
    const stroke = g === '' ? '#999' : sorted[0]!.color;
    f.svg.push(`<path d="${sorted.map((p, i) => `${i ? 'L' : 'M'}${f.x(p.x).toFixed(1)} ${f.y(p.y).toFixed(1)}`).join(' ')}" fill="none" stroke="${stroke}" stroke-width="1" stroke-dasharray="3 3"/>`);
  }
  for (const p of cp) {
    const px = f.x(p.x), py = f.y(p.y);
    if (p.yErr) f.svg.push(`<line x1="${px.toFixed(1)}" y1="${f.y(p.y - p.yErr).toFixed(1)}" x2="${px.toFixed(1)}" y2="${f.y(p.y + p.yErr).toFixed(1)}" stroke="${p.color}" stroke-width="1.5"/>`);
    if (p.xErr) f.svg.push(`<line x1="${f.x(p.x - p.xErr).toFixed(1)}" y1="${py.toFixed(1)}" x2="${f.x(p.x + p.xErr).toFixed(1)}" y2="${py.toFixed(1)}" stroke="${p.color}" stroke-width="1.5"/>`);
    f.svg.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="5" fill="${p.color}" stroke="#fff"/>`);
    // Labels that would run past the right edge end at the point instead.
    const flip = px + 8 + 7 * p.name.length > f.width - 4;
    f.svg.push(`<text x="${(flip ? px - 8 : px + 8).toFixed(1)}" y="${(py - 8).toFixed(1)}" font-size="12" fill="#222"${flip ? ' text-anchor="end"' : ''}>${escapeXml(p.name)}</text>`);
  }
  f.svg.push('</svg>');
  return f.svg.join('\n');
}

interface ResvgModule {
  Resvg: new (svg: string, opts: Record<string, unknown>) => { render(): { asPng(): Uint8Array } };
}

/** PNG bytes of an SVG (2× scale for sharp text), or an Error when the renderer is unavailable. */
export function svgToPng(svg: string): Uint8Array | Error {
  let mod: ResvgModule;
  try {
    mod = requireOptional<ResvgModule>('@resvg/resvg-js');
  } catch (e) {
    return e as Error;
  }
  const r = new mod.Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
    background: '#ffffff',
  });
  return r.render().asPng();
}
