// The devices. Those of the hub's device model get a card of their own
// (see cards.js); every other topic keeps the generic look: one card per
// device by the topic heuristic (topics.js), one tile per topic. Numbers
// show their value with its unit and a chart; states show a badge, and a
// button when they can be commanded (see Store); anything else shows as
// compact text. Every tile says how long ago it changed; a device that has
// gone quiet for longer than its usual pace is greyed as stale. A topic a
// model card shows is not shown again in a generic card.

import { DeviceCard } from "./cards.js";
import { Chart } from "./chart.js";
import { describe } from "./commands.js";
import { h, setText } from "./dom.js";
import { ago, commandFor, formatNumber, formatValue } from "./values.js";

export class DevicesView {
  #store;
  #send;
  #sendDevice;
  #cards = new Map(); // generic device key → {el, list, seen, stale}
  #tiles = new Map(); // topic → TileView, for the topics generic cards show
  #modelCards = new Map(); // model device id → DeviceCard, for the devices of the model that have one
  #cardCount = 0;
  #empty;
  #lastModelCard; // the generic cards go after it

  // send(topic, payload) sends a command; sendDevice(device, entity, value,
  // topic) commands an entity of the model. Both return nothing.
  constructor(root, store, send, sendDevice) {
    this.#store = store;
    this.#send = send;
    this.#sendDevice = sendDevice;
    this.#empty = h("div", { class: "empty" },
      h("h2", {}, "Waiting for devices…"),
      h("p", {}, "Tiles appear as messages arrive. Run ", h("code", {}, "hub --demo"), " for simulated motes, or publish as a device would:"),
      h("pre", {}, `mosquitto_pub -t nodes/mote-9/thermometer/0:1/temperature -m '[21.5, "°C"]'`));
    root.append(this.#empty);
    this.#lastModelCard = this.#empty;
  }

  render(changes) {
    const store = this.#store;
    const remodel = changes.all || changes.modelStructure;
    if (remodel) this.#placeModelCards();
    for (const id of changes.all ? [] : changes.models) this.#modelCards.get(id)?.update();
    for (const key of changes.entities) this.#modelEntity(key);
    for (const key of changes.deviceCommands) this.#modelEntity(key);
    if (remodel || changes.structure) this.#newCards();
    // What the model covers changed: every generic card may show other topics.
    const keys = remodel ? store.devices.keys() : changes.devices;
    for (const key of keys) this.#placeTiles(key);
    const topics = changes.all ? store.tiles.keys() : changes.tiles;
    for (const topic of topics) this.#tiles.get(topic)?.update();
    for (const commandTopic of changes.commands) {
      this.#tiles.get(commandTopic.replace(/\/set$/, ""))?.update();
    }
    if (remodel || changes.structure || changes.devices.size) this.#placeCards();
    this.#tickCards(Date.now());
  }

  #modelEntity(key) {
    const [id, entity] = key.split("\n");
    this.#modelCards.get(id)?.entityChanged(entity);
  }

  // tick refreshes what depends on the clock: "ago" texts and staleness.
  tick(now = Date.now()) {
    this.#tickCards(now);
    for (const tile of this.#tiles.values()) tile.tick(now);
    for (const card of this.#modelCards.values()) card.tick(now);
  }

  #tickCards(now) {
    for (const [key, card] of this.#cards) {
      const device = this.#store.devices.get(key);
      const stale = this.#store.isStale(device, now);
      card.el.classList.toggle("stale", stale);
      card.stale.hidden = !stale;
      setText(card.seen, device.lastTime ? `updated ${ago(device.lastTime, now)}` : "");
    }
  }

  // placeModelCards puts a card per device of the model, in order, first.
  #placeModelCards() {
    const devices = this.#store.cardDevices();
    const ids = new Set(devices.map((d) => d.id));
    for (const [id, card] of this.#modelCards) {
      if (!ids.has(id)) {
        card.el.remove();
        this.#modelCards.delete(id);
      }
    }
    let prev = this.#empty;
    for (const d of devices) {
      let card = this.#modelCards.get(d.id);
      if (!card) {
        card = new DeviceCard(this.#store, d, this.#sendDevice, ++this.#cardCount);
        this.#modelCards.set(d.id, card);
      }
      if (prev.nextSibling !== card.el) prev.after(card.el);
      prev = card.el;
      card.update();
    }
    this.#lastModelCard = prev;
  }

  // newCards makes a card for each new generic device.
  #newCards() {
    for (const device of this.#store.devices.values()) {
      if (!this.#cards.has(device.key)) this.#cards.set(device.key, this.#newCard(device));
    }
  }

  // placeCards puts the generic cards with something to show after the
  // model's, and takes out those whose every topic a model card shows; the
  // waiting message goes once there is a card.
  #placeCards() {
    let prev = this.#lastModelCard;
    let shown = this.#modelCards.size;
    for (const device of this.#store.sortedDevices()) {
      const card = this.#cards.get(device.key);
      if (!card) continue;
      if (card.list.childElementCount === 0) {
        card.el.remove();
        continue;
      }
      if (prev.nextSibling !== card.el) prev.after(card.el);
      prev = card.el;
      shown++;
    }
    this.#empty.hidden = shown > 0;
  }

  #newCard(device) {
    const id = `device-${this.#cards.size + 1}`;
    const seen = h("span", { class: "device-seen" });
    const stale = h("span", { class: "badge badge-stale", hidden: true, title: "No update for longer than this device's usual pace" }, "stale");
    const list = h("ul", { class: "tiles" });
    const el = h("section", { class: "device", "aria-labelledby": id, dataset: { device: device.key } },
      h("header", { class: "device-head" },
        h("h2", { id },
          device.prefix ? h("span", { class: "device-prefix" }, device.prefix + "/") : null,
          h("span", { class: "device-name" }, device.name)),
        stale, seen),
      list);
    return { el, list, seen, stale };
  }

  // placeTiles puts the tiles of a generic device's topics that no model
  // card shows in its card, or, when the model knows the device by the same
  // name (a HARDWARIO mote's nodes/mote-1), in that device's card.
  #placeTiles(key) {
    const device = this.#store.devices.get(key);
    const list = this.#modelCards.get(this.#store.hostOf(key))?.extras ?? this.#cards.get(key)?.list;
    if (!list || !device) return;
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
      if (prev ? prev.nextSibling !== view.el : list.firstChild !== view.el) {
        if (prev) prev.after(view.el);
        else list.prepend(view.el);
      }
      prev = view.el;
      view.update();
    }
  }
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
      this.chart = new Chart(tile.label);
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
