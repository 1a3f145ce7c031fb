// The devices. Those of the hub's device model get a card of their own
// (see cards.js); every other topic keeps the generic look: one card per
// device by the topic heuristic (topics.js), one tile per topic. Numbers
// show their value with its unit and a chart; states show a badge, and a
// button when they can be commanded (see Store); anything else shows as
// compact text. Every tile says how long ago it changed; a device that has
// gone quiet for longer than its usual pace is greyed as stale. A topic a
// model card shows is not shown again in a generic card.
//
// Which cards show, in what order, and when each is drawn is the board's
// (board.js): a change only marks its card, which is drawn in this frame
// when in view and in idle time otherwise.

import { Board } from "./board.js";
import { DeviceCard } from "./cards.js";
import { Chart } from "./chart.js";
import { describe } from "./commands.js";
import { openDetail } from "./detail.js";
import { h, setText } from "./dom.js";
import { formatEntity, isNumeric, nativeID, numberOf } from "./model.js";
import { DeviceTools } from "./tools.js";
import { ago, commandFor, formatNumber, formatValue } from "./values.js";

const ARRANGE_PACE = 250; // ms: cards arriving in a stream are placed at most this often

export class DevicesView {
  #store;
  #send;
  #sendDevice;
  #board;
  #tools = null;
  #generic = new Map(); // generic device key → its card (a board card), ≤ the store's devices
  #models = new Map(); // model device id → its card (a board card), ≤ the store's models
  #tiles = new Map(); // topic → TileView, for the topics generic cards show
  #cardCount = 0;
  #empty;
  #arrangeTimer = 0;
  #arranged = 0;

  // send(topic, payload) sends a command; sendDevice(device, entity, value,
  // topic) commands an entity of the model. Both return nothing. tools,
  // when given, gets the search, sort and view controls.
  constructor(root, store, send, sendDevice, tools = null) {
    this.#store = store;
    this.#send = send;
    this.#sendDevice = sendDevice;
    this.#empty = h("div", { class: "empty" },
      h("h2", {}, "Waiting for devices…"),
      h("p", {}, "Tiles appear as messages arrive. Run ", h("code", {}, "hub --demo"), " for simulated motes, or publish as a device would:"),
      h("pre", {}, `mosquitto_pub -t nodes/mote-9/thermometer/0:1/temperature -m '[21.5, "°C"]'`));
    root.append(this.#empty);
    this.#board = new Board(this.#empty, (board) => {
      this.#empty.hidden = board.total > 0;
      this.#tools?.counted(board);
    }, () => this.#arrangeSoon());
    this.#board.detail = (card) => openDetail(card.details(), (fn) => store.subscribe(fn));
    if (tools) this.#tools = new DeviceTools(tools, root, this.#board);
  }

  render(changes) {
    const store = this.#store;
    const board = this.#board;
    const remodel = changes.all || changes.modelStructure;
    let arrange = remodel || changes.structure || changes.devices.size > 0;
    if (remodel) this.#syncModelCards();
    for (const id of changes.all ? this.#models.keys() : changes.models) this.#touchModel(id, null);
    for (const key of changes.entities) this.#touchModel(...key.split("\n"));
    for (const key of changes.deviceCommands) this.#touchModel(...key.split("\n"));
    if (remodel || changes.structure) this.#newCards();
    // A generic device the model now shows (or no longer does) may have nothing left to show.
    if (remodel) for (const card of this.#generic.values()) board.touch(card.key);
    // What the model covers changed: every generic card may show other topics.
    const keys = remodel ? store.devices.keys() : changes.devices;
    for (const key of keys) {
      const card = this.#cardOf(key);
      card?.places.add(key);
      if (card) board.touch(card.key);
    }
    const topics = changes.all ? store.tiles.keys() : changes.tiles;
    for (const topic of topics) this.#touchTile(topic);
    for (const commandTopic of changes.commands) this.#touchTile(commandTopic.replace(/\/set$/, ""));
    board.flush();
    if (arrange) this.#arrangeSoon();
  }

  // arrangeSoon orders the cards now, or, while devices keep arriving,
  // once ARRANGE_PACE has passed.
  #arrangeSoon() {
    if (this.#arrangeTimer) return;
    const wait = this.#arranged + ARRANGE_PACE - Date.now();
    if (wait <= 0) {
      this.#arranged = Date.now();
      this.#board.arrange();
      return;
    }
    this.#arrangeTimer = setTimeout(() => {
      this.#arrangeTimer = 0;
      this.#arranged = Date.now();
      this.#board.arrange();
    }, wait);
  }

  #touchModel(id, entity) {
    const card = this.#models.get(id);
    if (!card) return;
    if (entity === null) card.changed = true;
    else card.entities.add(entity);
    this.#board.touch(card.key);
  }

  #touchTile(topic) {
    const view = this.#tiles.get(topic);
    if (!view) return;
    const card = this.#board.get(view.cardKey);
    if (!card) return;
    card.tiles.add(view);
    this.#board.touch(card.key);
  }

  // cardOf is the card a generic device's tiles go in: the card of the
  // device of the model that has the same name (a HARDWARIO mote's
  // nodes/mote-1), else its own.
  #cardOf(key) {
    return this.#models.get(this.#store.hostOf(key)) ?? this.#generic.get(key);
  }

  // tick refreshes what depends on the clock: "ago" texts and staleness.
  tick(now = Date.now()) {
    this.#board.tick(now);
  }

  // syncModelCards makes a card for each new device of the model that has
  // one, and drops those of devices that went.
  #syncModelCards() {
    const ids = new Set();
    for (const d of this.#store.cardDevices()) {
      ids.add(d.id);
      if (!this.#models.has(d.id)) this.#models.set(d.id, this.#modelCard(d));
    }
    for (const [id, card] of this.#models) {
      if (ids.has(id)) continue;
      this.#board.remove(card.key);
      this.#models.delete(id);
    }
  }

  #modelCard(d) {
    const store = this.#store;
    const dc = new DeviceCard(store, d, this.#sendDevice, ++this.#cardCount);
    const id = d.id;
    const card = {
      key: `m:${id}`,
      el: dc.el,
      list: dc.extras,
      changed: true,
      entities: new Set(), // ids of entities to redraw
      tiles: new Set(), // generic tiles to redraw
      places: new Set(), // generic devices whose tiles to place
      draw: () => {
        if (card.changed) dc.update();
        else for (const e of card.entities) dc.entityChanged(e);
        card.changed = false;
        card.entities.clear();
        this.#drawTiles(card);
      },
      tick: (now) => {
        dc.tick(now);
        const device = store.devices.get(nativeID(store.models.get(id) ?? d));
        if (device) for (const t of store.shownTopics(device)) this.#tiles.get(t)?.tick(now);
      },
      facts: () => {
        const m = store.models.get(id) ?? d;
        const device = store.devices.get(nativeID(m));
        const topics = [];
        for (const e of m.entities) {
          if (e.topic) topics.push(e.topic);
          if (e.control?.topic) topics.push(e.control.topic);
        }
        if (device) topics.push(...store.shownTopics(device));
        const t = Date.parse(m.updated);
        return {
          name: m.name || m.id, id: m.id, area: m.area ?? "", topics, shown: true,
          time: Math.max(Number.isFinite(t) ? t : 0, device?.lastTime ?? 0),
          gone: m.availability === "offline" || (device ? store.isStale(device) : false),
        };
      },
      details: () => modelDetails(store, store.models.get(id) ?? d),
    };
    this.#board.add(card);
    return card;
  }

  // newCards makes a card for each new generic device.
  #newCards() {
    for (const device of this.#store.devices.values()) {
      if (!this.#generic.has(device.key)) this.#generic.set(device.key, this.#newCard(device));
    }
  }

  #newCard(device) {
    const store = this.#store;
    const key = device.key;
    const id = `device-${this.#generic.size + 1}`;
    const seen = h("span", { class: "device-seen" });
    const stale = h("span", { class: "badge badge-stale", hidden: true, title: "No update for longer than this device's usual pace" }, "stale");
    const list = h("ul", { class: "tiles" });
    const el = h("section", { class: "device", "aria-labelledby": id, dataset: { device: key } },
      h("header", { class: "device-head" },
        h("h2", { id, title: key },
          device.prefix ? h("span", { class: "device-prefix" }, device.prefix + "/") : null,
          h("span", { class: "device-name" }, device.name)),
        stale, seen),
      list);
    const card = {
      key: `g:${key}`,
      el,
      list,
      tiles: new Set(),
      places: new Set([key]),
      draw: () => {
        this.#drawTiles(card);
        card.tick(Date.now());
      },
      tick: (now) => {
        const d = store.devices.get(key);
        if (!d) return;
        const isStale = store.isStale(d, now);
        el.classList.toggle("stale", isStale);
        stale.hidden = !isStale;
        setText(seen, d.lastTime ? `updated ${ago(d.lastTime, now)}` : "");
        for (const t of store.shownTopics(d)) this.#tiles.get(t)?.tick(now);
      },
      facts: () => {
        const d = store.devices.get(key);
        const topics = d && !store.hostOf(key) ? store.shownTopics(d) : [];
        return { name: d?.name ?? key, id: key, area: "", topics, shown: topics.length > 0, time: d?.lastTime ?? 0, gone: d ? store.isStale(d) : true };
      },
      details: () => genericDetails(store, store.devices.get(key)),
    };
    this.#board.add(card);
    return card;
  }

  // drawTiles places the tiles of the generic devices a card waits for,
  // then redraws its tiles that changed.
  #drawTiles(card) {
    for (const key of card.places) this.#placeTiles(key);
    card.places.clear();
    for (const view of card.tiles) if (view.el.isConnected) view.update();
    card.tiles.clear();
  }

  // placeTiles puts the tiles of a generic device's topics that no model
  // card shows in its card, or, when the model knows the device by the same
  // name (a HARDWARIO mote's nodes/mote-1), in that device's card.
  #placeTiles(key) {
    const device = this.#store.devices.get(key);
    const card = this.#cardOf(key);
    if (!card || !device) return;
    const list = card.list;
    const shown = this.#store.shownTopics(device);
    const keep = new Set(shown);
    for (const topic of device.topics) {
      const view = this.#tiles.get(topic);
      if (view && !keep.has(topic)) {
        view.el.remove();
        this.#tiles.delete(topic);
      }
    }
    let prev = null;
    for (const topic of shown) {
      const tile = this.#store.tiles.get(topic);
      let view = this.#tiles.get(topic);
      if (view && view.shape !== shapeOf(tile)) {
        view.el.remove();
        view = null;
      }
      if (!view) {
        view = new TileView(this.#store, topic, this.#send);
        this.#tiles.set(topic, view);
      }
      view.cardKey = card.key;
      if (prev ? prev.nextSibling !== view.el : list.firstChild !== view.el) {
        if (prev) prev.after(view.el);
        else list.prepend(view.el);
      }
      prev = view.el;
      view.update();
    }
  }
}

// modelDetails are a model device's detail view (see openDetail): every
// entity with its value, state topic (and field), command topic and last
// change, and the history of each entity with a state topic, and of the
// device's other topics its card shows.
function modelDetails(store, d) {
  const rows = d.entities.map((e) => ({
    label: e.name || e.id, value: formatEntity(e),
    topic: e.topic ?? "", field: e.field ?? "", command: e.control?.topic ?? "", time: Date.parse(e.updated),
  }));
  const series = d.entities.filter((e) => e.topic && e.kind !== "button").map((e) => ({
    topic: e.topic, field: e.field ?? "", label: e.name || e.id, unit: e.unit ?? "", numeric: isNumeric(e), own: true,
    live: () => {
      const now = store.models.get(d.id)?.entities.find((x) => x.id === e.id);
      const t = Date.parse(now?.updated);
      if (!now || !Number.isFinite(t)) return null;
      return isNumeric(now) ? { t, v: numberOf(now.value) } : { t, text: formatEntity(now) };
    },
  }));
  const device = store.devices.get(nativeID(d));
  if (device) {
    const extra = genericDetails(store, device, store.shownTopics(device));
    rows.push(...extra.rows);
    series.push(...extra.history.series);
  }
  const about = [d.model, d.manufacturer, d.area, d.availability].filter(Boolean).join(" · ");
  return { title: d.name || d.id, subtitle: `${d.id}${about ? ` · ${about}` : ""}`, rows, history: { device: d.id, series } };
}

// genericDetails are the rows of a generic device's detail view: its
// topics (all of them unless told which), with their values.
function genericDetails(store, device, topics = device?.topics ?? []) {
  if (!device) return { title: "", subtitle: "", rows: [], history: { device: "", series: [] } };
  const rows = topics.map((topic) => {
    const tile = store.tiles.get(topic);
    return { label: tile.label, value: formatValue(tile.payload), topic, field: "", command: tile.commandable ? `${topic}/set` : "", time: tile.time };
  });
  const series = topics.map((topic) => {
    const tile = store.tiles.get(topic);
    return {
      topic, field: "", label: tile.label, unit: tile.info.unit ?? "", numeric: tile.info.kind === "number", own: false,
      live: () => {
        const now = store.tiles.get(topic);
        if (!now) return null;
        return now.info.kind === "number" ? { t: now.time, v: now.info.value } : { t: now.time, text: formatValue(now.payload) };
      },
    };
  });
  return { title: device.name, subtitle: device.key, rows, history: { device: "", series } };
}

// TileView is one topic's tile; its shape follows the kind of its value.
class TileView {
  constructor(store, topic, send) {
    this.store = store;
    this.topic = topic;
    const tile = store.tiles.get(topic);
    this.kind = tile.info.kind;
    this.shape = shapeOf(tile);
    this.agoEl = h("span", { class: "tile-ago" });
    this.valueEl = h("span", { class: "tile-value" });
    const head = h("div", { class: "tile-head" }, h("span", { class: "tile-label", title: tile.label }, tile.label), this.agoEl);
    const path = h("code", { class: "tile-topic", title: topic }, tile.rest);
    const commandTopic = tile.commandable ? { commandTopic: `${topic}/set` } : {}; // see me.js
    this.el = h("li", { class: `tile tile-${this.kind}`, dataset: { topic, kind: this.kind, ...commandTopic } }, head);

    if (this.kind === "number") {
      this.chart = new Chart(tile.label, () => store.wantHistory(topic));
      this.el.append(this.valueEl, this.chart.el, path);
    } else if (this.kind === "switch") {
      this.badge = h("span", { class: "badge" });
      const row = h("div", { class: "switch-row" }, this.badge);
      if (tile.commandable) {
        this.button = h("button", { type: "button", class: "toggle", onclick: () => this.#toggle(send) });
        this.statusEl = h("p", { class: "command-status", role: "status", "aria-live": "polite" });
        row.append(this.button);
        this.el.append(row, this.statusEl, path);
      } else {
        this.el.append(row, path);
      }
    } else {
      this.el.append(this.valueEl, path);
    }
  }

  #toggle(send) {
    const tile = this.store.tiles.get(this.topic);
    const cmd = this.store.commands.get(this.topic + "/set");
    if (cmd?.state === "pending") return; // one at a time; the button says so
    send(this.topic + "/set", commandFor(tile.info.shape, !tile.info.on));
  }

  update() {
    const tile = this.store.tiles.get(this.topic);
    const info = tile.info;
    if (this.kind === "number") {
      this.valueEl.replaceChildren(formatNumber(info.value), info.unit ? " " : "", info.unit ? h("span", { class: "unit" }, info.unit) : "");
      this.chart.update(tile.series, info.unit, tile.seeded);
    } else if (this.kind === "switch") {
      this.#updateSwitch(tile);
    } else {
      setText(this.valueEl, formatValue(tile.payload));
      this.valueEl.title = JSON.stringify(tile.payload);
    }
    this.tick();
  }

  // The badge is always what the device last reported, never what was asked.
  #updateSwitch(tile) {
    const on = tile.info.on;
    setText(this.badge, on ? "on" : "off");
    this.badge.className = `badge ${on ? "badge-on" : "badge-off"}`;
    if (!this.button) return;
    const cmd = this.store.commands.get(this.topic + "/set");
    const state = cmd?.state ?? "";
    this.el.dataset.command = state;
    const pending = state === "pending";
    const want = pending ? commandWants(cmd.payload) : !on;
    setText(this.button, pending ? (want ? "Turning on…" : "Turning off…") : on ? "Turn off" : "Turn on");
    this.button.setAttribute("aria-disabled", String(pending));
    this.button.setAttribute("aria-label", `${pending ? "Waiting: " : ""}${this.button.textContent} ${tile.label} of ${tile.device}`);
    this.statusEl.className = `command-status ${state}`;
    setText(this.statusEl, describe(cmd, false));
    this.statusEl.title = describe(cmd, true);
  }

  tick(now = Date.now()) {
    const tile = this.store.tiles.get(this.topic);
    setText(this.agoEl, ago(tile.time, now));
    this.agoEl.title = new Date(tile.time).toLocaleString();
  }
}

// shapeOf is what decides a tile's elements: a new shape makes a new tile.
const shapeOf = (tile) => `${tile.info.kind}${tile.commandable ? "+command" : ""}`;

function commandWants(payload) {
  return typeof payload === "boolean" ? payload : Boolean(payload?.state);
}
