// The devices: one card per device, one tile per topic. Numbers show their
// value with its unit and a chart; states show a badge, and a button when
// they can be commanded (see Store); anything else shows as compact text. Every tile
// says how long ago it changed; a device that has gone quiet for longer
// than its usual pace is greyed as stale.

import { Chart } from "./chart.js";
import { LOST, NOT_CONNECTED } from "./client.js";
import { h, setText } from "./dom.js";
import { ago, commandFor, formatNumber, formatValue } from "./values.js";

export class DevicesView {
  #store;
  #send;
  #cards = new Map(); // device key → {el, list, seen, stale}
  #tiles = new Map(); // topic → TileView
  #empty;

  // send(topic, payload) sends a command and returns nothing.
  constructor(root, store, send) {
    this.#store = store;
    this.#send = send;
    this.#empty = h("div", { class: "empty" },
      h("h2", {}, "Waiting for devices…"),
      h("p", {}, "Tiles appear as messages arrive. Run ", h("code", {}, "hub --demo"), " for simulated motes, or publish as a device would:"),
      h("pre", {}, `mosquitto_pub -t nodes/mote-9/thermometer/0:1/temperature -m '[21.5, "°C"]'`));
    root.append(this.#empty);
  }

  render(changes) {
    const store = this.#store;
    if (changes.all || changes.structure) this.#placeCards();
    const keys = changes.all ? store.devices.keys() : changes.devices;
    for (const key of keys) this.#placeTiles(key);
    const topics = changes.all ? store.tiles.keys() : changes.tiles;
    for (const topic of topics) this.#tiles.get(topic)?.update();
    for (const commandTopic of changes.commands) {
      this.#tiles.get(commandTopic.replace(/\/set$/, ""))?.update();
    }
    this.#tickCards(Date.now());
  }

  // tick refreshes what depends on the clock: "ago" texts and staleness.
  tick(now = Date.now()) {
    this.#tickCards(now);
    for (const tile of this.#tiles.values()) tile.tick(now);
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

  #placeCards() {
    const devices = this.#store.sortedDevices();
    this.#empty.hidden = devices.length > 0;
    let prev = this.#empty;
    for (const device of devices) {
      let card = this.#cards.get(device.key);
      if (!card) {
        card = this.#newCard(device);
        this.#cards.set(device.key, card);
      }
      if (prev.nextSibling !== card.el) prev.after(card.el);
      prev = card.el;
    }
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

  #placeTiles(key) {
    const card = this.#cards.get(key);
    const device = this.#store.devices.get(key);
    if (!card || !device) return;
    let prev = null;
    for (const topic of device.topics) {
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
      if (prev ? prev.nextSibling !== view.el : card.list.firstChild !== view.el) {
        if (prev) prev.after(view.el);
        else card.list.prepend(view.el);
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
    this.el = h("li", { class: `tile tile-${this.kind}`, dataset: { topic, kind: this.kind } }, head);

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

// describe says how a command ended, or that it is still waiting: briefly
// for a tile, or in full.
export function describe(cmd, full = true) {
  if (!cmd) return "";
  switch (cmd.state) {
    case "pending":
      return full ? "Sent; waiting for the device to confirm…" : "Waiting for the device…";
    case "ok":
      return `Confirmed${full ? " by the device" : ""} in ${cmd.ms < 1 ? "<1" : cmd.ms} ms`;
    case "sent":
      return full ? "Sent; this hub does not confirm commands" : "Sent, unconfirmed";
    case "failed":
      return `Failed: ${failure(cmd, full)}`;
  }
  return "";
}

function failure(cmd, full) {
  switch (cmd.error) {
    case "timeout":
      return full ? "the device did not answer in time" : "no answer";
    case "state differs":
      return `the device reports ${formatValue(cmd.reported)}`;
    case "unavailable":
      return full ? "the hub could not reach the broker" : "broker unavailable";
    case LOST:
      return full ? LOST : "connection lost";
    case NOT_CONNECTED:
      return full ? "not connected to the hub, so it was not sent" : "not connected";
    default:
      return cmd.error || "unknown reason";
  }
}
