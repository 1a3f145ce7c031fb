// The hub's history of a series, in its series form (GET /api/history with
// from/to/points: docs/history.md): the address of a query, and the answer
// as a list of points with a break wherever the line must not be drawn
// (the hub was down, the device silent, a bucket missing).

import { fieldOf, numberOf } from "./model.js";
import { classify } from "./values.js";

// RANGES are the detail view's ranges, each a query relative to now.
export const RANGES = [
  { label: "1 h", from: "-1h", ms: 3_600_000 },
  { label: "24 h", from: "-24h", ms: 86_400_000 },
  { label: "7 d", from: "-7d", ms: 7 * 86_400_000 },
  { label: "30 d", from: "-30d", ms: 30 * 86_400_000 },
  { label: "1 y", from: "-365d", ms: 365 * 86_400_000 },
];

// exactTime is a time (ms) to the second, with its date, as the charts'
// legends and the lists of changes show it.
const exactFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
export const exactTime = (ms) => exactFormat.format(ms);

const PARAMS = ["device", "topic", "field", "from", "to", "points", "resolution", "format"];

// historyURL is the address of a query {device | topic, field, from, to,
// points, resolution, format}; what is empty is left out (the hub's
// defaults).
export function historyURL(q) {
  const p = new URLSearchParams();
  for (const k of PARAMS) if (q[k] !== undefined && q[k] !== null && q[k] !== "") p.set(k, String(q[k]));
  return `/api/history?${p}`;
}

// HistoryError is a refused query: status is the HTTP status (503: the hub
// keeps no history), message the hub's words.
export class HistoryError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// fetchSeries asks the hub for a query and resolves to its JSON answer.
export async function fetchSeries(q, signal) {
  const res = await fetch(historyURL(q), { signal });
  if (!res.ok) {
    let message = `HTTP ${res.status}`;
    try {
      message = (await res.json()).error?.message || message;
    } catch {
      // not JSON: the status says enough
    }
    throw new HistoryError(res.status, message);
  }
  return res.json();
}

// withBreaks is the points of a numeric series ({points, gaps, step_ms}
// as the hub answers) as [{t, min, max, mean, last}] (t in ms), oldest
// first (count: the readings of the bucket), with a break {t, gap: true} between two points that a gap of the
// answer separates, or that are two buckets or more apart (the buckets
// between have no data). A break is placed half way between its points.
export function withBreaks(result) {
  const points = result.points ?? [];
  const gaps = (result.gaps ?? []).map((g) => ({ from: Date.parse(g.from), to: Date.parse(g.to) }))
    .filter((g) => g.to > g.from).sort((a, b) => a.from - b.from);
  const step = Number(result.step_ms) || 0;
  const out = [];
  let prev = null;
  let g = 0;
  for (const p of points) {
    const t = Date.parse(p.t);
    if (!Number.isFinite(t)) continue;
    if (prev !== null) {
      while (g < gaps.length && gaps[g].to <= prev) g++;
      const gap = g < gaps.length && gaps[g].from < t;
      const missing = step > 0 && t - prev >= 2 * step;
      if (gap || missing) out.push({ t: (prev + t) / 2, gap: true });
    }
    out.push({ t, min: p.min, max: p.max, mean: p.mean, last: p.last, count: p.count });
    prev = t;
  }
  return out;
}

// cardPoints is a series' history as a card's chart keeps it: [{t, v}],
// v the bucket's mean, null where the line breaks.
export function cardPoints(result) {
  return withBreaks(asNumbers(result)).map((p) => ({ t: p.t, v: p.gap ? null : numberOf(p.mean) }));
}

// asNumbers is a series' answer as numbers: a text series (the hub keeps
// plain-text payloads, such as Homie's "21.5", as texts) becomes the raw
// points of the texts that are numbers; a numeric one is itself.
export function asNumbers(result) {
  if (result.kind !== "text") return result;
  const points = [];
  for (const p of result.points ?? []) {
    const v = numberOf(p.text);
    if (v !== null) points.push({ t: p.t, min: v, max: v, mean: v, last: v, count: 1 });
  }
  return { ...result, kind: "number", resolution: "raw", step_ms: 0, points };
}

let kept = null; // the promise of historyKept's answer, asked once per page

// historyKept resolves to whether the hub keeps a history (GET /api/me
// says so: a hub started without --data does not): only then is its
// series form asked, so that the page makes no request the hub refuses.
export function historyKept() {
  kept ??= fetch("/api/me", { headers: { Accept: "application/json" }, cache: "no-store" })
    .then((res) => (res.ok ? res.json() : null))
    .then((body) => body?.history === true, () => false);
  return kept;
}

// recentPoints reads a topic's recent messages (the old form,
// /api/history?topic=T&limit=N: [{payload, time}], for a hub that keeps no
// history) as [{t, v}]: for an entity of the model, the number at field
// (a dotted path; "" for the whole payload) of each payload, read as the
// model reads numbers; for a topic's tile, the payload when it is a number.
export function recentPoints(samples, field, entity) {
  const out = [];
  for (const s of samples) {
    const t = Date.parse(s.time);
    if (!Number.isFinite(t)) continue;
    let v = null;
    if (entity) v = numberOf(fieldOf(s.payload, field));
    else {
      const info = classify(s.payload);
      if (info.kind === "number") v = info.value;
    }
    if (v !== null) out.push({ t, v });
  }
  return out;
}

// A card's chart shows the last hour, in at most CARD_POINTS points.
const CARD_FROM = "-1h";
const CARD_POINTS = 120;
const RECENT_LIMIT = 120; // the messages a hub without history keeps per topic

// cardHistory resolves to the recent points of a card's series ([{t, v}],
// oldest first, v null where the line breaks): the hub's history of the
// last hour, or, from a hub that keeps none of it (no history: started
// without --data; 404: not a series it records), its recent messages of
// the topic (see recentPoints).
export async function cardHistory(topic, field, entity) {
  if (await historyKept()) {
    try {
      return cardPoints(await fetchSeries({ topic, field, from: CARD_FROM, points: CARD_POINTS }));
    } catch (err) {
      if (!(err instanceof HistoryError) || (err.status !== 503 && err.status !== 404)) throw err;
    }
  }
  const res = await fetch(`/api/history?topic=${encodeURIComponent(topic)}&limit=${RECENT_LIMIT}`);
  if (!res.ok) throw new HistoryError(res.status, `recent messages of ${topic}: HTTP ${res.status}`);
  return recentPoints((await res.json()).values ?? [], field, entity);
}
