// A small line chart of a numeric series, in SVG: the line, a soft area under
// it, a dot on the latest value, and the range and time span as text. The
// line breaks where the series has a null (the hub was down, the device
// silent: see withBreaks in series.js). It
// scales to its box (the SVG stretches; the stroke keeps its width). A
// chart out of view keeps its series and draws it when it comes into view:
// 500 charts off-screen cost nothing per update. Whoever places the chart
// says when it is in view (seen): the board does, for the charts of each
// card (board.js), which costs less than an observer of its own for each
// of 1,500 charts.

import { formatNumber } from "./values.js";

const NS = "http://www.w3.org/2000/svg";
const W = 300;
const H = 60;
const PAD = 4; // vertical room so that the line never touches the edges

export class Chart {
  // Out of view until told otherwise; without IntersectionObserver, where
  // nobody can tell, every chart draws.
  #visible = typeof IntersectionObserver !== "function";
  #waiting = null; // the arguments of the last update, while out of view

  // onDraw(), when given, is called each time the chart draws (in view).
  constructor(label, onDraw = null) {
    this.label = label;
    this.onDraw = onDraw;
    this.el = document.createElement("figure");
    this.el.className = "chart";
    this.svg = document.createElementNS(NS, "svg");
    this.svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    this.svg.setAttribute("preserveAspectRatio", "none");
    this.svg.setAttribute("aria-hidden", "true");
    this.area = document.createElementNS(NS, "path");
    this.area.setAttribute("class", "chart-area");
    this.line = document.createElementNS(NS, "path");
    this.line.setAttribute("class", "chart-line");
    this.svg.append(this.area, this.line);
    this.dot = document.createElement("span");
    this.dot.className = "chart-dot";
    const plot = document.createElement("div");
    plot.className = "chart-plot";
    plot.append(this.svg, this.dot);
    this.caption = document.createElement("figcaption");
    this.el.append(plot, this.caption);
    this.el.setAttribute("role", "img");
    this.el.chart = this; // for seen (board.js)
  }

  // seen is told when the chart comes into or goes out of view.
  seen(visible) {
    if (typeof IntersectionObserver !== "function") return;
    this.#visible = visible;
    if (visible && this.#waiting) this.#draw(...this.#waiting);
  }

  // update draws series ([{t, v}], oldest first, v null for a break) with
  // unit for the caption; seeded is how many points came from the hub's
  // history. Out of view, only the counts change until it is seen.
  update(series, unit, seeded) {
    let n = 0;
    for (const p of series) if (p.v !== null) n++;
    this.el.dataset.points = String(n);
    this.el.dataset.seeded = String(seeded);
    if (this.#visible) this.#draw(series, unit, seeded);
    else this.#waiting = [series, unit, seeded];
  }

  #draw(all, unit) {
    this.#waiting = null;
    this.onDraw?.();
    // Breaks at the ends draw nothing.
    let first = 0;
    let end = all.length;
    while (first < end && all[first].v === null) first++;
    while (end > first && all[end - 1].v === null) end--;
    const series = first === 0 && end === all.length ? all : all.slice(first, end);
    if (series.length === 0) {
      this.line.setAttribute("d", "");
      this.area.setAttribute("d", "");
      this.dot.hidden = true;
      this.caption.textContent = "";
      return;
    }
    let lo = Infinity;
    let hi = -Infinity;
    let readings = 0;
    for (const p of series) {
      if (p.v === null) continue;
      readings++;
      lo = Math.min(lo, p.v);
      hi = Math.max(hi, p.v);
    }
    const [min, max] = [lo, hi];
    // A calm scale: at least four steps of the series' resolution tall (a
    // thermometer that reports tenths moves within 0.4 °C, not edge to edge).
    const minSpan = 4 * resolution(series);
    if (hi - lo < minSpan) {
      const mid = (hi + lo) / 2;
      lo = mid - minSpan / 2;
      hi = mid + minSpan / 2;
    }
    const t0 = series[0].t;
    const span = series[series.length - 1].t - t0;
    const x = (t) => (span > 0 ? ((t - t0) / span) * W : W);
    const y = (v) => (hi > lo ? PAD + (1 - (v - lo) / (hi - lo)) * (H - 2 * PAD) : H / 2);
    let d = "";
    let area = "";
    if (series.length === 1) {
      d = `M0,${y(series[0].v).toFixed(1)}L${W},${y(series[0].v).toFixed(1)}`; // one reading: a level line
      area = `${d}L${W},${H}L0,${H}Z`;
    } else {
      // A run of points between breaks is a stretch of line with its area.
      let run = "";
      let start = 0;
      const close = (end) => {
        if (run) area += `${run}L${end.toFixed(1)},${H}L${start.toFixed(1)},${H}Z`;
        d += run;
        run = "";
      };
      let prevX = 0;
      for (const p of series) {
        if (p.v === null) {
          close(prevX);
          continue;
        }
        prevX = x(p.t);
        if (!run) start = prevX;
        run += `${run ? "L" : "M"}${prevX.toFixed(1)},${y(p.v).toFixed(1)}`;
      }
      close(prevX);
    }
    this.line.setAttribute("d", d);
    this.area.setAttribute("d", area);
    const last = series[series.length - 1];
    this.dot.hidden = false;
    this.dot.style.left = `${(x(last.t) / W) * 100}%`;
    this.dot.style.top = `${(y(last.v) / H) * 100}%`;

    const u = unit ? ` ${unit}` : "";
    const range = max > min ? `${formatNumber(min)} – ${formatNumber(max)}${u}` : `${formatNumber(min)}${u}`;
    const when = readings > 1 ? `over ${duration(span)}` : "one reading";
    // A range of long numbers (counters) does not fit: it goes in the tooltip.
    this.caption.textContent = range.length > 20 ? when : `${range} · ${when}`;
    this.el.title = `${range}, ${when}, ${readings} readings`;
    this.el.setAttribute("aria-label", `${this.label}: ${range}, ${when}, ${readings} readings`);
  }
}

// resolution is the smallest change between two readings of the series.
function resolution(series) {
  let step = Infinity;
  for (let i = 1; i < series.length; i++) {
    if (series[i].v === null || series[i - 1].v === null) continue;
    const d = Math.abs(series[i].v - series[i - 1].v);
    if (d > 0 && d < step) step = d;
  }
  return Number.isFinite(step) ? step : 0;
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 1) return "<1 s";
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  return `${Math.round(m / 60)} h`;
}
