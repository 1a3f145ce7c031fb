// The detail view of a device, in a dialog: its history over a range the
// person picks (1 h, 24 h, 7 d, 30 d, 1 y), a chart for each numeric series
// (plot.js) and the changes of each text series, with a CSV download of
// each series and of the whole device; then every entity (or topic) with
// its value, whole state topic and field, command topic, and when it last
// changed. The table shows the device as it was when opened; the charts
// take live values while their range ends now.

import { h } from "./dom.js";
import { asNumbers, exactTime, fetchSeries, HistoryError, historyKept, historyURL, RANGES, withBreaks } from "./series.js";
import { ago } from "./values.js";

const DEFAULT_RANGE = RANGES[1]; // 24 h, as the hub's own default
const MIN_POINTS = 60;
const MAX_POINTS = 2000; // points asked per chart: about one per pixel of its width, within these
const PARALLEL = 4; // series asked at a time (the topics of a device not in the hub's model)
const TEXT_CHANGES = 50; // changes listed per text series, the latest first

let dialog = null;
let shown = null; // the open view's history, ended when the dialog closes

// The charts (plot.js, and uPlot with it: 145 kB) load when a detail view
// first shows one, not with the page.
let plotModule = null;
const loadPlot = () => (plotModule ??= import("/assets/js/plot.js"));

// openDetail shows {title, subtitle, rows, history}: rows [{label, value,
// topic, field, command, time}] for the table; history {device, series:
// [{topic, field, label, unit, numeric, own, live}]} for the charts, where
// device is the id of the hub's model device ("" for another) whose series
// are asked in one query, numeric says a series is charted even when the
// hub keeps it as text (Homie's "21.5"), own says a series is one of that
// device's, and live() returns the series' latest value ({t, v} or {t,
// text}) or null.
// subscribe(fn) has fn called at each change of the page's store and
// returns a function that stops it.
export function openDetail({ title, subtitle, rows, history }, subscribe) {
  if (!dialog) {
    dialog = h("dialog", { class: "detail", "aria-labelledby": "detail-title" });
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close(); // a click on the backdrop
    });
    dialog.addEventListener("close", () => {
      shown?.close();
      shown = null;
    });
    document.body.append(dialog);
  }
  shown?.close();
  shown = history?.series.length ? new HistoryView(history, subscribe) : null;
  const now = Date.now();
  const body = rows.map((r) => h("tr", {},
    h("th", { scope: "row" }, r.label),
    h("td", { class: "detail-value" }, r.value),
    h("td", {}, h("code", { class: "detail-topic" }, r.topic || "—"), r.field ? h("span", { class: "detail-field" }, ` · ${r.field}`) : null),
    h("td", {}, r.command ? h("code", { class: "detail-topic" }, r.command) : "—"),
    h("td", { class: "detail-time", title: Number.isFinite(r.time) ? new Date(r.time).toLocaleString() : "" }, Number.isFinite(r.time) ? ago(Math.min(r.time, now), now) : "—")));
  dialog.replaceChildren(
    h("header", { class: "panel-head" },
      h("h2", { id: "detail-title" }, title),
      h("form", { method: "dialog" }, h("button", { class: "quiet", "aria-label": "Close the details" }, "Close"))),
    h("p", { class: "detail-subtitle" }, subtitle),
    shown?.el ?? null,
    h("div", { class: "detail-scroll" },
      h("table", { class: "detail-table" },
        h("thead", {}, h("tr", {}, ["Entity", "Value", "State topic", "Command topic", "Changed"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, body))));
  if (!dialog.open) dialog.showModal();
  shown?.load(DEFAULT_RANGE);
}

// HistoryView is the history part of the dialog.
class HistoryView {
  #history;
  #subscribe;
  #unsubscribe = null;
  #abort = null;
  #buttons;
  #downloadAll;
  #status;
  #charts;
  #items = []; // what is shown: [{desc, plot} | {desc, list, last}], ≤ the device's series
  #resize = null;

  constructor(history, subscribe) {
    this.#history = history;
    this.#subscribe = subscribe;
    this.#buttons = RANGES.map((r) => h("button", { type: "button", class: "small range", "aria-pressed": "false", dataset: { from: r.from },
      onclick: () => this.load(r) }, r.label));
    this.#downloadAll = history.device
      ? h("a", { class: "download download-all", download: "", title: "Every series of the device over this range, as CSV" }, "Download all (CSV)")
      : null;
    this.#status = h("p", { class: "history-status", role: "status" });
    this.#charts = h("div", { class: "history-charts" });
    this.el = h("section", { class: "history", "aria-label": "History" },
      h("div", { class: "history-tools" },
        h("div", { class: "ranges", role: "group", "aria-label": "Range" }, this.#buttons),
        this.#downloadAll,
        h("a", { class: "history-credit", href: "/assets/vendor/uplot/LICENSE", target: "_blank", title: "The charts are drawn by uPlot, under the MIT licence" }, "uPlot (MIT)")),
      this.#status, this.#charts);
    if (typeof ResizeObserver === "function") {
      this.#resize = new ResizeObserver(() => {
        for (const item of this.#items) item.plot?.resize(this.#width());
      });
      this.#resize.observe(this.#charts);
    }
  }

  // load shows the history over range (one of RANGES).
  async load(range) {
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    for (const b of this.#buttons) b.setAttribute("aria-pressed", String(b.dataset.from === range.from));
    this.#status.textContent = "Loading…";
    this.el.dataset.state = "loading";
    const points = Math.max(MIN_POINTS, Math.min(MAX_POINTS, Math.round(this.#width())));
    let results;
    let Plot;
    try {
      if (!(await historyKept())) throw new HistoryError(503, "no history");
      [results, { Plot }] = await Promise.all([this.#fetch(range, points, abort.signal), loadPlot()]);
    } catch (err) {
      if (abort.signal.aborted) return;
      this.#clear();
      this.#status.textContent = err instanceof HistoryError && err.status === 503
        ? "This hub keeps no history (it records one when started with --data)."
        : `The history could not be loaded: ${err.message}`;
      this.el.dataset.state = "failed";
      return;
    }
    if (abort.signal.aborted) return;
    this.#show(results, range, Plot);
  }

  close() {
    this.#abort?.abort();
    this.#resize?.disconnect();
    this.#clear();
  }

  #clear() {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const item of this.#items) item.plot?.destroy();
    this.#items = [];
    this.#charts.replaceChildren();
  }

  #width() {
    return Math.max(200, this.#charts.clientWidth || 600);
  }

  // fetch asks for every series: the model device's in one query, the
  // others one by one (PARALLEL at a time). It resolves to [{desc,
  // result}], result null for a series the hub has no history of (404).
  async #fetch(range, points, signal) {
    const { device, series } = this.#history;
    const out = [];
    let rest = series;
    if (device) {
      const answer = await fetchSeries({ device, from: range.from, points }, signal);
      for (const result of answer.series ?? []) {
        const desc = series.find((d) => d.topic === result.topic && d.field === (result.field ?? ""));
        out.push({ desc: desc ?? { topic: result.topic, field: result.field ?? "", label: result.name || result.field || result.topic, unit: "" }, result });
      }
      rest = series.filter((d) => !d.own);
      // An entity the answer lacks has no history yet.
      for (const d of series) if (d.own && !out.some((o) => o.desc === d)) out.push({ desc: d, result: null });
    }
    const queue = [...rest];
    const one = async () => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        try {
          out.push({ desc: d, result: await fetchSeries({ topic: d.topic, field: d.field, from: range.from, points }, signal) });
        } catch (err) {
          if (!(err instanceof HistoryError) || err.status !== 404) throw err;
          out.push({ desc: d, result: null });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, one));
    // In the device's order; series it does not name last.
    const order = (o) => {
      const i = series.indexOf(o.desc);
      return i < 0 ? series.length : i;
    };
    return out.sort((a, b) => order(a) - order(b));
  }

  #show(results, range, Plot) {
    this.#clear();
    const width = this.#width();
    let from = "";
    let to = "";
    for (const { desc, result } of results) {
      let el;
      if (result === null) el = this.#none(desc);
      else if (result.kind === "text" && !desc.numeric) el = this.#text(desc, result);
      else el = this.#numeric(desc, asNumbers(result), width, Plot);
      this.#charts.append(el);
      from ||= result?.from ?? "";
      to ||= result?.to ?? "";
    }
    if (this.#downloadAll) {
      this.#downloadAll.href = historyURL({ device: this.#history.device, from: from || range.from, to, format: "csv" });
    }
    this.#status.textContent = results.length ? "" : "Nothing of this device is recorded.";
    this.el.dataset.state = "done";
    this.el.dataset.from = range.from;
    this.#unsubscribe = this.#subscribe?.(() => this.#live()) ?? null;
  }

  #numeric(desc, result, width, Plot) {
    const unit = result.unit || desc.unit || "";
    const plot = new Plot(desc.label, unit);
    const from = Date.parse(result.from);
    const to = Date.parse(result.to);
    const figure = h("figure", { class: "history-chart", dataset: { topic: desc.topic, field: desc.field, kind: "number" } },
      h("figcaption", {},
        h("span", { class: "history-label" }, desc.label), unit ? h("span", { class: "unit" }, ` ${unit}`) : null,
        h("span", { class: "history-resolution" }, resolutionText(result)),
        this.#download(desc, result)),
      plot.el);
    plot.show(withBreaks(result), { resolution: result.resolution, step: Number(result.step_ms) || 0, from, to, live: true, width });
    this.#items.push({ desc, plot });
    return figure;
  }

  #text(desc, result) {
    const changes = (result.points ?? []).slice(-TEXT_CHANGES).reverse();
    const list = h("ol", { class: "history-changes" }, changes.map((p) => change(Date.parse(p.t), p.text)));
    const item = { desc, list, last: changes[0]?.text, seenUntil: Date.parse(result.to) };
    this.#items.push(item);
    return h("section", { class: "history-text", dataset: { topic: desc.topic, field: desc.field, kind: "text" } },
      h("h3", {}, h("span", { class: "history-label" }, desc.label), h("span", { class: "history-resolution" }, changes.length === 1 ? "1 change" : changes.length ? `last ${changes.length} changes` : "no change in this range"), this.#download(desc, result)),
      list);
  }

  #none(desc) {
    return h("p", { class: "history-none", dataset: { topic: desc.topic, field: desc.field } }, `${desc.label}: no history recorded yet.`);
  }

  // download links the CSV of one series over the range shown.
  #download(desc, result) {
    return h("a", {
      class: "download", download: "", title: `${desc.label} over this range, as CSV`,
      href: historyURL({ topic: desc.topic, field: desc.field, from: result.from, to: result.to, resolution: result.resolution, format: "csv" }),
    }, "CSV");
  }

  // live takes the latest values into the charts and lists.
  #live() {
    for (const item of this.#items) {
      const p = item.desc.live?.();
      if (!p) continue;
      if (item.plot) item.plot.add(p.t, p.v);
      else if (typeof p.text === "string" && p.t > item.seenUntil && p.text !== item.last) {
        item.seenUntil = p.t;
        item.last = p.text;
        item.list.prepend(change(p.t, p.text));
        if (item.list.children.length > TEXT_CHANGES) item.list.lastChild.remove();
      }
    }
  }
}

function change(t, text) {
  return h("li", {}, h("time", { datetime: new Date(t).toISOString() }, exactTime(t)), " ", h("span", { class: "history-value" }, text));
}

// resolutionText says what a chart's points are.
function resolutionText(result) {
  switch (result.resolution) {
    case "5m":
      return "5-minute means, min–max band";
    case "1h":
      return "hourly means, min–max band";
    default:
      return "readings";
  }
}
