// SVG line charts with no dependency: one figure = panels stacked vertically, each with its own y axis
// (linear or log10), a shared x axis (1..n, e.g. epochs), a legend and optional vertical markers.
// Points that cannot be drawn (NaN, ±Infinity, and values ≤ 0 on a log axis) break the line.

export interface Series {
  name: string;
  /** y values at x = xStart, xStart+1, … */
  values: ArrayLike<number>;
  color?: string;
}

export interface Marker {
  x: number;
  label: string;
}

export interface Panel {
  title: string;
  yLabel?: string;
  yScale?: "linear" | "log";
  series: Series[];
  markers?: Marker[];
  /** Fixed y range (linear axes), e.g. [0, 1] for an accuracy; default: fitted to the data. */
  yRange?: [number, number];
  /** Corner of the legend (default "top"-right). */
  legend?: "top" | "bottom";
}

export interface Figure {
  title: string;
  /** A second, smaller title line (settings). */
  subtitle?: string;
  xLabel: string;
  /** x of the first value (default 1). */
  xStart?: number;
  /** Last x of the axis (default: that of the longest series), e.g. the planned epochs of a run cut short. */
  xEnd?: number;
  panels: Panel[];
  /** Width of the whole figure in px (default 720). */
  width?: number;
  /** Height of each panel's plot area in px (default 200). */
  panelHeight?: number;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const MARGIN = { left: 72, right: 16, top: 28, bottom: 36 }; // px around each panel's plot area
const TITLE_H = 44; //                                          px for the figure title and subtitle

/** Renders the figure as a standalone SVG document. */
export function renderSvg(fig: Figure): string {
  const width = fig.width ?? 720;
  const plotH = fig.panelHeight ?? 200;
  const panelH = MARGIN.top + plotH + MARGIN.bottom;
  const height = TITLE_H + panelH * fig.panels.length;
  const xStart = fig.xStart ?? 1;
  const n = Math.max(1, ...fig.panels.flatMap((p) => p.series.map((s) => s.values.length)));
  const xEnd = Math.max(xStart + 1, fig.xEnd ?? xStart + n - 1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(fig.title)}</text>`);
  if (fig.subtitle) out.push(`<text x="${width / 2}" y="36" text-anchor="middle" fill="#444">${esc(fig.subtitle)}</text>`);
  fig.panels.forEach((panel, i) => {
    const box = { x: MARGIN.left, y: TITLE_H + i * panelH + MARGIN.top, w: width - MARGIN.left - MARGIN.right, h: plotH };
    out.push(renderPanel(panel, box, xStart, xEnd, fig.xLabel));
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

interface Box { x: number; y: number; w: number; h: number }

function renderPanel(panel: Panel, box: Box, xStart: number, xEnd: number, xLabel: string): string {
  const log = panel.yScale === "log";
  const ok = (v: number) => Number.isFinite(v) && (!log || v > 0);
  const ys: number[] = [];
  for (const s of panel.series) for (let i = 0; i < s.values.length; i++) if (ok(s.values[i]!)) ys.push(log ? Math.log10(s.values[i]!) : s.values[i]!);
  let lo = ys.length ? Math.min(...ys) : 0;
  let hi = ys.length ? Math.max(...ys) : 1;
  if (panel.yRange && !log) { lo = Math.min(lo, panel.yRange[0]); hi = Math.max(hi, panel.yRange[1]); }
  if (hi - lo < 1e-12) { lo -= log ? 1 : Math.max(1e-3, Math.abs(lo) * 0.1); hi += log ? 1 : Math.max(1e-3, Math.abs(hi) * 0.1); }
  const yTicks = log ? logTicks(lo, hi) : niceTicks(lo, hi);
  if (!log) { lo = Math.min(lo, yTicks[0]!); hi = Math.max(hi, yTicks[yTicks.length - 1]!); }
  else { lo = Math.floor(lo); hi = Math.ceil(hi); }
  const px = (x: number) => box.x + ((x - xStart) / (xEnd - xStart)) * box.w;
  const py = (v: number) => box.y + box.h - ((v - lo) / (hi - lo)) * box.h; //  v is log10(y) on a log axis
  const out: string[] = [];
  out.push(`<g>`);
  out.push(`<text x="${box.x}" y="${box.y - 8}" font-size="12" font-weight="bold">${esc(panel.title)}${log ? " (log scale)" : ""}</text>`);
  out.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="none" stroke="#888"/>`);
  for (const t of yTicks) {
    if (t < lo - 1e-9 || t > hi + 1e-9) continue;
    const y = py(t).toFixed(1);
    out.push(`<line x1="${box.x}" x2="${box.x + box.w}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${box.x - 4}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(log ? fmtPow10(t) : fmtNum(t))}</text>`);
  }
  // x is an index (epoch, step): integer ticks only
  let xTicks = niceTicks(xStart, xEnd).filter((t) => Number.isInteger(t));
  if (xTicks.length < 2) xTicks = [xStart, xEnd];
  for (const t of xTicks) {
    if (t < xStart || t > xEnd) continue;
    const x = px(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${box.y + box.h}" y2="${box.y + box.h + 4}" stroke="#888"/>`);
    out.push(`<text x="${x}" y="${box.y + box.h + 15}" text-anchor="middle">${esc(fmtNum(t))}</text>`);
  }
  out.push(`<text x="${box.x + box.w / 2}" y="${box.y + box.h + 30}" text-anchor="middle">${esc(xLabel)}</text>`);
  if (panel.yLabel) {
    const cy = box.y + box.h / 2;
    out.push(`<text x="14" y="${cy}" text-anchor="middle" transform="rotate(-90 14 ${cy})">${esc(panel.yLabel)}</text>`);
  }
  for (const m of panel.markers ?? []) {
    const x = px(m.x).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${box.y}" y2="${box.y + box.h}" stroke="#000" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${Number(x) - 4}" y="${box.y + box.h - 6}" text-anchor="end">${esc(m.label)}</text>`);
  }
  panel.series.forEach((s, si) => {
    const color = s.color ?? PALETTE[si % PALETTE.length]!;
    // Runs of drawable points become separate polylines (a gap where a value is NaN/Inf or ≤ 0 on log).
    let run: string[] = [];
    const flush = () => {
      if (run.length === 1) out.push(`<circle cx="${run[0]!.split(",")[0]}" cy="${run[0]!.split(",")[1]}" r="2" fill="${color}"/>`);
      else if (run.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${run.join(" ")}"/>`);
      run = [];
    };
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i]!;
      if (!ok(v)) { flush(); continue; }
      run.push(`${px(xStart + i).toFixed(1)},${py(log ? Math.log10(v) : v).toFixed(1)}`);
    }
    flush();
    const ly = panel.legend === "bottom" ? box.y + box.h - 8 - (panel.series.length - 1 - si) * 14 : box.y + 14 + si * 14;
    const lx = box.x + box.w - 110;
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 22}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push(`</g>`);
  return out.join("\n");
}

/** About 5 round-numbered ticks covering [lo, hi] (1, 2 or 5 × 10^k apart). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1]! < hi) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/** Integer decades between lo and hi (log10 units), thinned to at most ~8. */
function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(lo);
  const b = Math.ceil(hi);
  const every = Math.max(1, Math.ceil((b - a) / 8));
  const ticks: number[] = [];
  for (let k = a; k <= b; k += every) ticks.push(k);
  return ticks;
}

function fmtPow10(k: number): string {
  if (k >= -2 && k <= 3) return fmtNum(10 ** k);
  return `1e${k}`;
}

function fmtNum(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
