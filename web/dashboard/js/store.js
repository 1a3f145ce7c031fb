// Store is what one tab knows: devices and their tiles discovered from the
// messages that arrive, each tile's value and (for numbers) its recent
// series, the devices of the hub's model (docs/devices.md) with a series per
// numeric entity, the commands and their outcome, the connection's status,
// the recent lines for the log. It takes the events of a connection (see
// session.js) and tells views what changed, at most once per frame.

import { Coverage, entityKey, hasCard, isNumeric, nativeID, numberOf } from "./model.js";
import { compareNatural, deviceOf, isCommand, isControl, labelOf } from "./topics.js";
import { classify } from "./values.js";

const SERIES_MAX = 240; // points per chart
const HISTORY_PARALLEL = 4; // requests at a time, below the browser's 6 per host
const KEEP_LINES = 500;
const KEEP_NOTICES = 5;
const DEVICE_UPDATES = 16; // arrival times kept per device, to learn its pace
const STALE_UNKNOWN_PACE = 120_000; // ms of silence before a device of unknown pace is stale
const STALE_MIN = 30_000;
const MAX_MODEL_DEVICES = 10_000; // devices of the model kept (as the client keeps)
const LAZY_HISTORY = 60; // devices known beyond which charts load their history when drawn
const GOING_AWAY = 1001; // the WebSocket close code of a hub that shuts down

// Tiles go in this order: readings with a unit, other numbers, states,
// the rest; by topic within each.
const rank = (info) => (info.kind === "number" ? (info.unit ? 0 : 1) : info.kind === "switch" ? 2 : 3);

export class Store {
  devices = new Map(); // key → {key, prefix, name, topics: [topic], lastTime, updates: [ms]}
  tiles = new Map(); // topic → tile
  commands = new Map(); // command topic (".../set") → its latest command
  byRef = new Map(); // a caller's ref → command
  // The hub's device model: device id → device, ≤ MAX_MODEL_DEVICES; a
  // series per numeric entity of a device with a card, and the latest
  // command per entity, both dropped with their device or entity.
  models = new Map();
  // entitySeries: entityKey → {topic, field, series, seeded, history, stamp},
  // or the tile of the topic when the entity is its whole numeric payload.
  entitySeries = new Map();
  deviceCommands = new Map(); // entityKey → latest command
  #coverage = new Coverage();
  #covered = true; // whether #coverage and #hosts follow the models (worked out when asked)
  status = { state: "connecting", tabs: 1 };
  lines = [];
  notices = [];

  #fetchHistory;
  #historyQueue = [];
  #historyRunning = 0;
  #listeners = new Set();
  #changes = emptyChanges();
  #scheduled = false;
  #histories = new Map(); // series (topic and field) → the promise of its history, while it loads (≤ HISTORY_PARALLEL + the queue)
  #historyCandidates = new Map(); // series without a history since the last frame → entity key or "" (≤ the tiles and series)
  #hosts = new Map(); // native id of a device of the model with a card → its id (≤ the devices of the model)
  #sharing = new Map(); // topic → keys of the entities that chart its tile's series (≤ the entities)
  #hubWentAway = false; // the connection closed because the hub shut down, and the page is not live again yet

  // fetchHistory(topic, field, entity) resolves to the hub's recent points
  // of a series, [{t, v}] oldest first, v null where the line breaks (see
  // cardHistory in series.js); entity says whether the series is an
  // entity's of the model (field a dotted path) or a topic's tile.
  constructor(fetchHistory) {
    this.#fetchHistory = fetchHistory;
  }

  // subscribe has fn told of every change (at once: of everything); it
  // returns a function that stops it.
  subscribe(fn) {
    this.#listeners.add(fn);
    fn({ ...emptyChanges(), all: true });
    return () => this.#listeners.delete(fn);
  }

  apply(ev) {
    const c = this.#changes;
    switch (ev.type) {
      case "snapshot":
        this.#setStatus(ev.status);
        for (const v of ev.values) this.#setValue(v.topic, v.payload, v.time, false);
        this.#addLines(ev.lines, false);
        for (const cmd of ev.commands) this.#setCommand(cmd);
        if (ev.devices?.length || ev.status?.model === "ok") this.#setModels(ev.devices ?? [], true);
        break;
      case "devices":
        this.#setModels(ev.devices, true);
        break;
      case "device":
        if (ev.device.removed) this.#removeModel(ev.device.id);
        else this.#setModels([ev.device], false);
        break;
      case "status":
        this.#setStatus(ev.status);
        break;
      case "lines":
        this.#addLines(ev.lines, true);
        break;
      case "state":
        for (const v of ev.values) this.#setValue(v.topic, v.payload, v.time, false);
        break;
      case "command":
        this.#setCommand(ev.command);
        break;
      case "notice":
        this.notices.push({ ...ev, time: Date.now() });
        if (this.notices.length > KEEP_NOTICES) this.notices.shift();
        c.notices.push(ev);
        break;
    }
    this.#schedule();
  }

  // staleAfter is how long a device may stay silent before it looks stale:
  // four times its usual pace (the median gap between its updates), at
  // least 30 s; two minutes while its pace is unknown.
  staleAfter(device) {
    const u = device.updates;
    if (u.length < 3) return STALE_UNKNOWN_PACE;
    const gaps = [];
    for (let i = 1; i < u.length; i++) gaps.push(u[i] - u[i - 1]);
    gaps.sort((a, b) => a - b);
    return Math.max(STALE_MIN, 4 * gaps[Math.floor(gaps.length / 2)]);
  }

  isStale(device, now = Date.now()) {
    return this.status.state === "live" && now - device.lastTime > this.staleAfter(device);
  }

  sortedDevices() {
    return [...this.devices.values()].sort((a, b) => compareNatural(a.key, b.key));
  }

  // cardDevices are the devices of the model that get a card, by name.
  cardDevices() {
    return [...this.models.values()].filter(hasCard).sort((a, b) => compareNatural(a.name, b.name) || compareNatural(a.id, b.id));
  }

  // coverage says which topics the model's cards show.
  get coverage() {
    this.#cover();
    return this.#coverage;
  }

  // shownTopics are the topics of a generic device that no model card shows.
  shownTopics(device) {
    const coverage = this.coverage;
    return device.topics.filter((t) => !coverage.covers(t));
  }

  // hostOf is the id of the device of the model, with a card, that the
  // generic device key names (a HARDWARIO mote's "nodes/mote-1" is
  // "hardwario:nodes/mote-1"): its other topics show in that card.
  hostOf(key) {
    this.#cover();
    return this.#hosts.get(key) ?? "";
  }

  // shownDevices is how many cards the page shows: the model's, and the
  // generic devices with a topic left to show in a card of their own.
  shownDevices() {
    let n = 0;
    for (const d of this.models.values()) if (hasCard(d)) n++;
    this.#cover();
    for (const device of this.devices.values()) {
      if (!this.#hosts.has(device.key) && this.shownTopics(device).length) n++;
    }
    return n;
  }

  // setModels takes devices of the model: all of them (replacing what was
  // known), or some that changed. A numeric entity's new value adds a point
  // to its series.
  #setModels(devices, all) {
    const c = this.#changes;
    if (all) {
      const keep = new Set(devices.map((d) => d.id));
      for (const id of [...this.models.keys()]) if (!keep.has(id)) this.#removeModel(id);
    }
    let structure = all;
    for (const d of devices) {
      const prev = this.models.get(d.id);
      if (!prev && this.models.size >= MAX_MODEL_DEVICES) continue;
      this.models.set(d.id, d);
      c.models.add(d.id);
      if (!prev || prev.convention !== d.convention || topicsOf(prev) !== topicsOf(d)) structure = true;
      if (prev) this.#dropGoneEntities(prev, d);
      const kept = prev ? reuse(prev, d) : d;
      if (kept !== d) this.models.set(d.id, kept);
      if (hasCard(kept)) for (const e of kept.entities) if (isNumeric(e)) this.#addEntityPoint(kept, e);
    }
    if (structure) {
      c.modelStructure = true;
      this.#covered = false;
    }
  }

  // removeModel forgets a device.
  #removeModel(id) {
    const d = this.models.get(id);
    if (!d) return;
    this.models.delete(id);
    this.#dropGoneEntities(d, { entities: [] });
    this.#changes.models.add(id);
    this.#changes.modelStructure = true;
    this.#covered = false;
  }

  // cover works out what the model's cards show, the topics they cover and
  // the generic devices they host, once after the models change (not for
  // each of 500 devices that arrive one by one).
  #cover() {
    if (this.#covered) return;
    this.#covered = true;
    this.#coverage = new Coverage(this.models.values());
    this.#hosts.clear();
    for (const d of this.models.values()) if (hasCard(d)) this.#hosts.set(nativeID(d), d.id);
  }

  #dropGoneEntities(prev, next) {
    const kept = new Set(next.entities.map((e) => e.id));
    for (const e of prev.entities) {
      if (kept.has(e.id)) continue;
      const key = entityKey(prev.id, e.id);
      this.#unshare(key);
      this.entitySeries.delete(key);
      this.deviceCommands.delete(key);
    }
  }

  #unshare(key) {
    const s = this.entitySeries.get(key);
    const keys = s && this.#sharing.get(s.topic);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.#sharing.delete(s.topic);
  }

  // addEntityPoint adds an entity's value to its series when it is new (a
  // later time, or another value): the whole device comes with each change.
  // An entity that is a topic's whole numeric payload charts the topic's
  // tile instead: its history is loaded once, its points added once.
  #addEntityPoint(device, e) {
    const key = entityKey(device.id, e.id);
    let s = this.entitySeries.get(key);
    const tile = e.field ? undefined : this.tiles.get(e.topic);
    if (tile?.info.kind === "number") {
      if (s !== tile) {
        this.#unshare(key);
        this.entitySeries.set(key, tile);
        this.#sharing.set(tile.topic, (this.#sharing.get(tile.topic) ?? new Set()).add(key));
        this.#changes.entities.add(key);
      }
      return;
    }
    if (!s || s.topic !== e.topic || s.field !== (e.field ?? "") || s.info) {
      this.#unshare(key);
      s = { topic: e.topic ?? "", field: e.field ?? "", series: [], seeded: 0, history: "none", stamp: "" };
      this.entitySeries.set(key, s);
    }
    const v = numberOf(e.value);
    if (v === null) return;
    const stamp = `${e.updated ?? ""} ${JSON.stringify(e.value)}`;
    if (stamp !== s.stamp) {
      s.stamp = stamp;
      const now = Date.now();
      const t = Date.parse(e.updated);
      addPoint(s.series, { t: Number.isFinite(t) ? Math.min(t, now) : now, v, a: now });
      this.#changes.entities.add(key);
    }
    if (s.history === "none" && s.topic) this.#historyCandidates.set(s, key);
  }

  #setStatus(status) {
    const prev = this.status;
    this.status = status;
    this.#changes.status = true;
    // The charts' lines break where the page missed messages (a resync),
    // or the hub was down (its last connection closed "going away", 1001:
    // it shut down; what devices sent meanwhile nobody recorded), as the
    // hub's history has a gap there.
    // Attempts that fail while the hub is away have close codes of their
    // own: that it went away is kept until the page is live again.
    if (status.state !== "live" && status.closeCode === GOING_AWAY) this.#hubWentAway = true;
    const resynced = status.resumed === "resynced" && (prev.resumed !== "resynced" || prev.session !== status.session);
    const hubWasDown = status.state === "live" && prev.state !== "live" && (this.#hubWentAway || status.closeCode === GOING_AWAY);
    if (status.state === "live") this.#hubWentAway = false;
    // The hub's run changed (config/ok's "boot"): it restarted, whatever the
    // close codes said (its close frame can be lost as it exits, or a busy
    // page give up on it first). Its config/ok comes before the stream's
    // events; a line broken already is not broken twice.
    const restarted = Boolean(prev.boot && status.boot) && prev.boot !== status.boot;
    if (resynced || hubWasDown || restarted) this.#breakLines();
  }

  // breakLines ends the line of every chart at its latest point: the next
  // point starts another stretch.
  #breakLines() {
    const now = Date.now();
    const end = (series) => {
      const last = series[series.length - 1];
      if (last && last.v !== null) addPoint(series, { t: last.t, v: null, a: now });
    };
    for (const tile of this.tiles.values()) end(tile.series);
    for (const s of this.entitySeries.values()) if (!s.info) end(s.series); // a tile's is the tile's
  }

  #addLines(lines, live) {
    for (const line of lines) {
      this.lines.push(line);
      if (live && line.dir === "in" && !isControl(line.topic)) {
        this.#setValue(line.topic, line.payload, line.time, true);
      }
    }
    if (this.lines.length > KEEP_LINES) this.lines.splice(0, this.lines.length - KEEP_LINES);
    this.#changes.lines.push(...lines);
  }

  #setCommand(cmd) {
    // The control shows the latest command; an older one settling late does not undo it.
    const later = (prev) => !prev || prev.id === cmd.id || seqOf(cmd.id) > seqOf(prev.id);
    if (cmd.device) {
      const key = entityKey(cmd.device, cmd.entity);
      if (later(this.deviceCommands.get(key)) && this.models.has(cmd.device)) this.deviceCommands.set(key, cmd);
      this.#changes.deviceCommands.add(key);
    } else {
      if (later(this.commands.get(cmd.topic))) this.commands.set(cmd.topic, cmd);
      this.#changes.commands.add(cmd.topic);
    }
    if (cmd.ref) this.byRef.set(cmd.ref, cmd);
  }

  // setValue records a message: live ones (lines as they arrive) move the
  // device's pace; last values from the hub (snapshots, resync) do not.
  #setValue(topic, payload, time, live) {
    // Commands are in the log, but make no tiles: the device's echo does.
    if (isControl(topic) || isCommand(topic)) return;
    const c = this.#changes;
    const info = classify(payload);
    let tile = this.tiles.get(topic);
    const dev = deviceOf(topic);
    let device = this.devices.get(dev.key);
    if (!device) {
      device = { key: dev.key, prefix: dev.prefix, name: dev.name, topics: [], lastTime: 0, updates: [] };
      this.devices.set(dev.key, device);
      c.structure = true;
    }
    if (!tile) {
      tile = { topic, device: dev.key, rest: dev.rest, label: labelOf(dev.rest), info, payload, time, series: [], seeded: 0, history: "none" };
      tile.commandable = commandable(topic, info);
      this.tiles.set(topic, tile);
      device.topics.push(topic);
      c.devices.add(dev.key);
    } else if (tile.info.kind !== info.kind || tile.commandable !== commandable(topic, info)) {
      tile.commandable = commandable(topic, info);
      c.devices.add(dev.key); // the tile changes shape
    } else if (!live && time < tile.time) {
      return; // an older value than the one shown
    }
    if (c.devices.has(dev.key)) {
      device.topics.sort((a, b) => {
        const ta = this.tiles.get(a), tb = this.tiles.get(b);
        return rank(ta.info) - rank(tb.info) || compareNatural(ta.rest, tb.rest);
      });
    }
    // A last value from the hub that the tile shows already adds no point.
    const known = !live && tile.series.length > 0 && JSON.stringify(payload) === JSON.stringify(tile.payload);
    tile.info = info;
    tile.payload = payload;
    tile.time = Math.max(tile.time, time);
    if (info.kind === "number" && !known) {
      addPoint(tile.series, { t: time, v: info.value, a: Date.now() });
    }
    device.lastTime = Math.max(device.lastTime, time);
    if (live) {
      device.updates.push(time);
      if (device.updates.length > DEVICE_UPDATES) device.updates.shift();
    }
    this.#tileChanged(topic);
    if (info.kind === "number" && tile.history === "none") this.#historyCandidates.set(tile, "");
  }

  // lazyHistory: with hundreds of charts, loading every history costs the
  // page more than all else for its first minute; once the store knows
  // more than LAZY_HISTORY devices, a chart's history loads when the chart
  // is drawn (wantHistory), not when its series starts.
  get lazyHistory() {
    return Math.max(this.devices.size, this.models.size) > LAZY_HISTORY;
  }

  // wantHistory loads the hub's history of a chart's series, once: an
  // entity's (by its entityKey) or a tile's (by its topic).
  wantHistory(key) {
    const target = this.entitySeries.get(key) ?? this.tiles.get(key);
    if (!target || target.history !== "none" || !target.topic) return;
    if (target.info) {
      if (target.info.kind === "number") this.#queueHistory(target); // a tile, or an entity charting one
    } else {
      this.#queueHistory(target, key);
    }
  }

  // Charts start from the hub's history, so a fresh page is not empty.
  // target is a generic tile ({topic, series, seeded, history}) or an
  // entity's series ({topic, field, ...}); key is the entity's, if it is one.
  #queueHistory(target, key = "") {
    target.history = "queued";
    this.#historyQueue.push({ target, key });
    this.#pumpHistory();
  }

  #pumpHistory() {
    while (this.#historyRunning < HISTORY_PARALLEL && this.#historyQueue.length) {
      const { target, key } = this.#historyQueue.shift();
      this.#historyRunning++;
      this.#loadHistory(target, key).finally(() => {
        this.#historyRunning--;
        this.#pumpHistory();
      });
    }
  }

  // historyOf fetches a series' history once for every chart that waits
  // for it at the same time (an entity and the tile of its topic).
  #historyOf(topic, field, entity) {
    const id = `${entity ? "e" : "t"}\n${topic}\n${field}`;
    let p = this.#histories.get(id);
    if (!p) {
      p = this.#fetchHistory(topic, field, entity);
      this.#histories.set(id, p);
      p.catch(() => {}).finally(() => this.#histories.delete(id));
    }
    return p;
  }

  async #loadHistory(target, key) {
    target.history = "loading";
    const asked = Date.now();
    let points;
    try {
      points = await this.#historyOf(target.topic, key ? target.field : "", Boolean(key));
    } catch {
      target.history = "failed"; // the chart fills from live values alone
      return;
    }
    const now = Date.now();
    const past = points.map((p) => ({ t: Math.min(p.t, now), v: p.v, a: asked }));
    while (past.length && past[past.length - 1].v === null) past.pop();
    // The hub's history holds every value the series has seen before the
    // request; what arrived since goes after it, except a first value the
    // history already ends with (it may have been in both). An empty history
    // (the hub keeps none) leaves the live values.
    const since = past.length ? target.series.filter((p) => p.a > asked) : target.series;
    if (since.length && past.length && since[0].v === past[past.length - 1].v) since.shift();
    target.series = [];
    for (const p of [...past, ...since]) addPoint(target.series, p);
    target.seeded = past.filter((p) => p.v !== null).length;
    target.history = "done";
    if (key) this.#changes.entities.add(key);
    else this.#tileChanged(target.topic);
    this.#schedule();
  }

  // tileChanged notes a tile's change, and so that of the entities that chart it.
  #tileChanged(topic) {
    this.#changes.tiles.add(topic);
    for (const key of this.#sharing.get(topic) ?? []) this.#changes.entities.add(key);
  }

  // schedule tells the listeners once per frame; background tabs, which
  // get no animation frames, are told within a second.
  #schedule() {
    if (this.#scheduled) return;
    this.#scheduled = true;
    let raf = 0;
    const run = () => {
      cancelAnimationFrame(raf);
      clearTimeout(timer);
      this.#scheduled = false;
      // The series that started since the last frame load their history,
      // unless the page waits to see their charts.
      if (!this.lazyHistory) for (const [target, key] of this.#historyCandidates) if (target.history === "none") this.#queueHistory(target, key);
      this.#historyCandidates.clear();
      const changes = this.#changes;
      this.#changes = emptyChanges();
      for (const fn of this.#listeners) fn(changes);
    };
    raf = requestAnimationFrame(run);
    const timer = setTimeout(run, 500);
  }
}

// commandable says whether a state takes commands on "<topic>/set", as the
// hub's acknowledgement expects: the Clown.Talk shape {"state": bool}
// (relay/i2c0-3b), or a boolean on a topic named state (HARDWARIO's
// led/-/state). Another boolean (a motion sensor's) only shows.
function commandable(topic, info) {
  return info.kind === "switch" && (info.shape === "object" || topic === "state" || topic.endsWith("/state"));
}

function emptyChanges() {
  return {
    all: false, status: false, structure: false, devices: new Set(), tiles: new Set(), commands: new Set(), lines: [], notices: [],
    // The device model: devices added, changed or removed (by id); whether
    // cards or the topics they cover changed; entities with new points;
    // commands to entities (by entityKey).
    models: new Set(), modelStructure: false, entities: new Set(), deviceCommands: new Set(),
  };
}

// reuse brings was up to now, in place where they have the same shape (the
// same keys, arrays of the same length), and returns what to keep: was,
// changed, or now where the shapes differ. A device changes a few values a
// second and comes whole each time (500 of them); keeping the objects the
// page already has, rather than the new ones, leaves the garbage collector
// little to copy: its pauses were the page's longest tasks.
function reuse(was, now) {
  if (was === now || typeof was !== "object" || typeof now !== "object" || was === null || now === null) return now;
  if (Array.isArray(was) !== Array.isArray(now)) return now;
  if (Array.isArray(was)) {
    if (was.length !== now.length) return now;
    for (let i = 0; i < now.length; i++) was[i] = reuse(was[i], now[i]);
    return was;
  }
  const keys = Object.keys(now);
  if (keys.length !== Object.keys(was).length) return now;
  for (const k of keys) if (!Object.hasOwn(was, k)) return now;
  for (const k of keys) {
    const v = reuse(was[k], now[k]);
    if (was[k] !== v) was[k] = v;
  }
  return was;
}

// topicsOf is what decides which topics a device's card covers.
const topicsOf = (d) => d.entities.map((e) => `${e.topic ?? ""} ${e.control?.topic ?? ""}`).join("|");

// addPoint appends p, keeping time in order (clocks of hub and browser may
// differ a little) and the series bounded.
function addPoint(series, p) {
  const last = series[series.length - 1];
  if (last && p.t < last.t) p = { ...p, t: last.t };
  series.push(p);
  if (series.length > SERIES_MAX) series.splice(0, series.length - SERIES_MAX);
}

const seqOf = (id) => Number(String(id).replace(/^\D+/, "")) || 0;
