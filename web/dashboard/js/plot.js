// A chart of one numeric series over a time range, for the detail view
// (detail.js), drawn by uPlot (vendored in ../vendor/uplot: a canvas chart
// made for time series). A time axis in the page's time zone, a value axis
// with the unit, the mean as a line and, at the hub's coarser resolutions
// (5 min, 1 h), the band from min to max so that spikes still show; the
// line breaks at the series' breaks (see withBreaks in series.js). Hovering
// shows the exact time and values in the legend. Live values from the
// stream are appended (or folded into the latest bucket) by add.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { exactTime } from "./series.js";
import { formatNumber } from "./values.js";

const HEIGHT = 190; // px of the plot, axes included
const MAX_KEPT = 20_000; // points a chart keeps as live values come in (default): the oldest go first

// The time axis: hours and minutes within a day (and seconds within a
// minute; the date under the first tick of each day), days within a
// month, months beyond.
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const secondFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const monthFormat = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric" });
const DAY = 86_400; // s

function timeTicks(u, splits, axis, space, incr) {
  if (incr >= 28 * DAY) return splits.map((s) => monthFormat.format(s * 1000));
  if (incr >= DAY) return splits.map((s) => dayFormat.format(s * 1000));
  const clock = incr < 60 ? secondFormat : timeFormat;
  let prevDay = "";
  return splits.map((s) => {
    const day = dayFormat.format(s * 1000);
    const time = clock.format(s * 1000);
    const label = day !== prevDay ? `${time}\n${day}` : time;
    prevDay = day;
    return label;
  });
}

// valueAxisSize is the value axis' width: room for its longest label.
function valueAxisSize(u, values) {
  const longest = Math.max(3, ...(values ?? []).map((v) => v.length));
  return 14 + 7 * longest;
}

export class Plot {
  #u = null;
  #data = null; // [x (s), mean, min, max]: the plot's columns (the last two drawn as a band only)
  #band = false;
  #lastCount = 0; // readings in the latest bucket, for folding live values in
  #unit;
  #label;
  #step = 0; // ms: the width of a bucket; 0 for raw points
  #range = null; // {from, to} in ms
  #live = false;
  #seenUntil = 0; // ms: live values up to this time are in the data already
  #maxKept;

  // label names the series (the legend), unit its values (the value axis);
  // maxKept bounds the points kept as live values come in.
  constructor(label, unit, maxKept = MAX_KEPT) {
    this.#label = label;
    this.#unit = unit;
    this.#maxKept = maxKept;
    this.el = document.createElement("div");
    this.el.className = "plot";
    this.el.plot = this; // for the tests
  }

  get data() {
    return this.#data;
  }

  get uplot() {
    return this.#u;
  }

  // show draws points (withBreaks' list) at resolution ("raw", "5m", "1h")
  // with step (ms) over [from, to] (ms), width px wide; live says that
  // the range ends now and follows the clock (see add).
  show(points, { resolution, step, from, to, live, width }) {
    this.#step = step;
    this.#range = { from, to };
    this.#live = live;
    this.#seenUntil = to;
    const x = [];
    const mean = [];
    const min = [];
    const max = [];
    for (const p of points) {
      x.push(p.t / 1000);
      mean.push(p.gap ? null : p.mean);
      min.push(p.gap ? null : p.min);
      max.push(p.gap ? null : p.max);
    }
    this.#data = [x, mean, min, max];
    this.#lastCount = points.length && !points[points.length - 1].gap ? points[points.length - 1].count || 1 : 0;
    const band = resolution === "5m" || resolution === "1h";
    this.#band = band;
    this.#u?.destroy();
    this.#u = new uPlot(this.#options(band, width), this.#drawn(), this.el);
    this.el.dataset.resolution = resolution;
    this.el.dataset.band = String(band);
  }

  // add takes a live value (t in ms) while the range ends now, once (a
  // value no later than the last one taken, or than the answer shown, is
  // not taken again): a new point for raw series, else folded into the
  // latest bucket (or a new one). The range slides with the clock.
  add(t, v) {
    if (!this.#u || !this.#live || typeof v !== "number" || !Number.isFinite(v) || !(t > this.#seenUntil)) return;
    this.#seenUntil = t;
    const [x, mean, min, max] = this.#data;
    const last = x.length - 1;
    const lastT = last >= 0 ? x[last] * 1000 : -Infinity;
    if (t < lastT) return; // older than what is shown
    const shift = Math.max(0, t - this.#range.to);
    this.#range = { from: this.#range.from + shift, to: this.#range.to + shift };
    if (this.#step > 0 && mean[last] !== null && t < lastT + this.#step) {
      // Within the latest bucket: its mean, min and max take the value in.
      mean[last] = (mean[last] * this.#lastCount + v) / (this.#lastCount + 1);
      this.#lastCount++;
      min[last] = Math.min(min[last], v);
      max[last] = Math.max(max[last], v);
    } else {
      const start = this.#step > 0 ? Math.floor(t / this.#step) * this.#step : t;
      x.push(start / 1000);
      mean.push(v);
      min.push(v);
      max.push(v);
      this.#lastCount = 1;
    }
    let drop = 0;
    while (drop < x.length && (x[drop] * 1000 < this.#range.from - this.#step || x.length - drop > this.#maxKept)) drop++;
    if (drop) for (const col of this.#data) col.splice(0, drop);
    this.#u.setData(this.#drawn());
  }

  // drawn is the columns uPlot draws: min and max only as a band.
  #drawn() {
    return this.#band ? this.#data : this.#data.slice(0, 2);
  }

  resize(width) {
    this.#u?.setSize({ width, height: HEIGHT });
  }

  destroy() {
    this.#u?.destroy();
    this.#u = null;
  }

  #options(band, width) {
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const unit = this.#unit;
    const value = (u, v) => (v === null || v === undefined ? "—" : `${formatNumber(v)}${unit ? ` ${unit}` : ""}`);
    const series = [
      { label: "Time", value: (u, s) => (s === null || s === undefined ? "—" : exactTime(s * 1000)) },
      { label: band ? `${this.#label} (mean)` : this.#label, stroke: color("--accent"), width: 1.75, value, spanGaps: false, points: { size: 5 } },
    ];
    if (band) {
      const edge = { stroke: color("--accent-soft"), width: 1, value, spanGaps: false, points: { show: false } };
      series.push({ ...edge, label: "min" }, { ...edge, label: "max" });
    }
    const axis = { stroke: color("--muted"), grid: { stroke: color("--line"), width: 1 }, ticks: { stroke: color("--line"), width: 1 } };
    return {
      width,
      height: HEIGHT,
      series,
      bands: band ? [{ series: [3, 2], fill: color("--accent-soft") }] : [],
      scales: {
        // The range asked, or from the series' first point when it is
        // younger (a day's chart of ten minutes of data shows those), and
        // a minute at least.
        x: { time: true, range: (u) => {
          const to = this.#range.to / 1000;
          return [Math.min(to - 60, Math.max(this.#range.from / 1000, u.data[0][0] ?? -Infinity)), to];
        } },
      },
      axes: [
        { ...axis, values: timeTicks, size: 46, space: 90 }, // a tick per 90 px: room for "11:55:00 AM"
        { ...axis, label: unit, labelSize: unit ? 18 : 0, size: valueAxisSize, values: (u, splits) => splits.map((v) => formatNumber(v)) },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
  }
}
