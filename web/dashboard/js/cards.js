// A card per device of the hub's model (docs/devices.md): its name, model
// and maker, availability (an offline device is greyed), battery and link
// quality, and a tile per entity with the control its kind calls for:
// switches and lights toggle, numbers take a slider (or a field when their
// range is unknown), selects a list, buttons a press. Every control shows
// what the device last reported; a command's target is marked while it
// waits for the device, then the outcome in words.

import { Chart } from "./chart.js";
import { h, setText } from "./dom.js";
import { entityKey, formatEntity, isNumeric, isOnOff } from "./model.js";
import { ago } from "./values.js";
import { describe } from "./commands.js";

export class DeviceCard {
  #store;
  #send;
  #tiles = new Map(); // entity id (or "fields\n<topic>") → its tile, the device's current entities only
  #list;
  #name;
  #meta;
  #availability;
  #facts;
  #seen;

  // send(deviceID, entityID, value, commandTopic) commands an entity.
  constructor(store, device, send, n) {
    this.#store = store;
    this.#send = send;
    this.id = device.id;
    const titleID = `model-device-${n}`;
    this.#name = h("span", { class: "device-name" });
    this.#meta = h("p", { class: "device-meta" });
    this.#availability = h("span", { class: "badge availability" });
    this.#facts = h("p", { class: "device-facts" });
    this.#seen = h("span", { class: "device-seen" });
    this.#list = h("ul", { class: "tiles" });
    // Generic tiles of the device's other topics (see DevicesView), after its entities.
    this.extras = h("ul", { class: "tiles tiles-extra" });
    this.el = h("section", { class: "device device-card", "aria-labelledby": titleID, dataset: { deviceId: device.id, convention: device.convention } },
      h("header", { class: "device-head" }, h("h2", { id: titleID }, this.#name), this.#availability, this.#seen),
      this.#meta, this.#facts, this.#list, this.extras);
  }

  // update draws the device as the model now describes it.
  update() {
    const d = this.#store.models.get(this.id);
    if (!d) return;
    setText(this.#name, d.name || d.id);
    this.#name.title = d.id;
    setText(this.#meta, [d.model, d.manufacturer].filter(Boolean).join(" · "));
    const availability = ["online", "offline"].includes(d.availability) ? d.availability : "unknown";
    setText(this.#availability, availability);
    this.#availability.className = `badge availability availability-${availability}`;
    this.#availability.title = availability === "unknown" ? "The device has not said whether it is online" : `The device is ${availability}`;
    this.el.classList.toggle("offline", availability === "offline");
    this.el.dataset.availability = availability;
    const facts = [];
    if (typeof d.battery === "number") facts.push(h("span", { class: "fact fact-battery", title: "Battery" }, `battery ${Math.round(d.battery)} %`));
    if (typeof d.linkquality === "number") facts.push(h("span", { class: "fact fact-link", title: "Link quality, as the device reports it" }, `link ${Math.round(d.linkquality)}`));
    this.#facts.replaceChildren(...facts);
    this.#placeTiles(d);
    this.tick();
  }

  // placeTiles puts a tile per entity, in the device's order; the read-only
  // text fields of one payload share a tile (a mote's boot: "fw 1.0.0 ·
  // reason power-on"), the first of them placing it.
  #placeTiles(d) {
    const groups = textGroups(d.entities);
    const items = [];
    for (const e of d.entities) {
      const group = groups.get(e.id);
      if (!group) items.push({ key: e.id, shape: shapeOf(e), make: () => new EntityTile(this.#store, d, e, this.#send), update: (t) => t.update(d, e) });
      else if (group[0] === e) {
        const key = `fields\n${e.topic}`;
        items.push({ key, shape: group.map((x) => x.id).join("\n"), make: () => new FieldsTile(e.topic), update: (t) => t.update(group) });
      }
    }
    const keys = new Set(items.map((i) => i.key));
    for (const [key, tile] of this.#tiles) {
      if (!keys.has(key)) {
        tile.el.remove();
        this.#tiles.delete(key);
      }
    }
    let prev = null;
    for (const item of items) {
      let tile = this.#tiles.get(item.key);
      if (tile && tile.shape !== item.shape) {
        tile.el.remove();
        tile = null;
      }
      if (!tile) {
        tile = item.make();
        tile.shape = item.shape;
        this.#tiles.set(item.key, tile);
      }
      if (prev ? prev.nextSibling !== tile.el : this.#list.firstChild !== tile.el) {
        if (prev) prev.after(tile.el);
        else this.#list.prepend(tile.el);
      }
      prev = tile.el;
      item.update(tile);
    }
  }

  // entityChanged redraws one entity (a new point, a command's progress).
  entityChanged(entityID) {
    const d = this.#store.models.get(this.id);
    const e = d?.entities.find((x) => x.id === entityID);
    const tile = this.#tiles.get(entityID);
    if (e && tile instanceof EntityTile) tile.update(d, e);
  }

  tick(now = Date.now()) {
    const d = this.#store.models.get(this.id);
    const t = Date.parse(d?.updated);
    setText(this.#seen, Number.isFinite(t) ? `updated ${ago(Math.min(t, now), now)}` : "");
    for (const tile of this.#tiles.values()) tile.tick(now);
  }
}

// textGroups finds the read-only text fields that share a payload, two or
// more: entity id → the group's entities, in order.
function textGroups(entities) {
  const byTopic = new Map();
  for (const e of entities) {
    if (e.control || !e.field || !e.topic || (e.type !== "text" && e.type !== "enum")) continue;
    const list = byTopic.get(e.topic) ?? [];
    list.push(e);
    byTopic.set(e.topic, list);
  }
  const groups = new Map();
  for (const list of byTopic.values()) if (list.length > 1) for (const e of list) groups.set(e.id, list);
  return groups;
}

// FieldsTile shows the text fields of one payload on one line, as
// "field value · field value", each field by its path in the payload.
class FieldsTile {
  #entities = [];

  constructor(topic) {
    const label = topic.split("/").pop();
    this.agoEl = h("span", { class: "tile-ago" });
    this.valueEl = h("span", { class: "tile-value" });
    this.el = h("li", { class: "tile tile-text tile-entity", dataset: { topic, kind: "text", type: "text", control: "none" } },
      h("div", { class: "tile-head" }, h("span", { class: "tile-label", title: label }, label), this.agoEl),
      this.valueEl, h("code", { class: "tile-topic", title: topic }, topic));
  }

  update(entities) {
    this.#entities = entities;
    this.el.dataset.entity = entities.map((e) => e.id).join(" ");
    setText(this.valueEl, entities.map((e) => `${e.field} ${formatEntity(e)}`).join(" · "));
    this.valueEl.title = entities.map((e) => `${e.name || e.id}: ${formatEntity(e)}`).join("\n");
    this.tick();
  }

  tick(now = Date.now()) {
    const t = Math.max(...this.#entities.map((e) => Date.parse(e.updated)).filter(Number.isFinite));
    setText(this.agoEl, Number.isFinite(t) ? ago(Math.min(t, now), now) : "");
  }
}

// The control an entity gets.
function controlOf(e) {
  if (!e.control) return "none";
  switch (e.kind) {
    case "switch":
    case "light":
      return "toggle";
    case "number":
      return Number.isFinite(e.control.min) && Number.isFinite(e.control.max) ? "slider" : "field";
    case "select":
      return "select";
    case "button":
      return "press";
    default:
      return isOnOff(e) ? "toggle" : "none";
  }
}

// shapeOf is what decides a tile's elements: a new shape makes a new tile.
function shapeOf(e) {
  const c = e.control;
  return [e.kind, e.type, controlOf(e), c?.min, c?.max, c?.step, c?.options?.join("\n")].join("|");
}

// EntityTile is one entity of a device: its value (with unit and chart for
// numbers, a badge for on/off), its control, and a command's progress.
class EntityTile {
  #titled = NaN; // the time the ago's title says
  #store;
  #send;
  #key;
  #device;
  #entity;

  constructor(store, d, e, send) {
    this.#store = store;
    this.#send = send;
    this.#key = entityKey(d.id, e.id);
    this.shape = shapeOf(e);
    this.control = controlOf(e);
    const look = isNumeric(e) ? "number" : isOnOff(e) ? "switch" : e.kind === "button" ? "button" : "text";
    this.agoEl = h("span", { class: "tile-ago" });
    this.valueEl = h("span", { class: "tile-value" });
    this.statusEl = h("p", { class: "command-status", role: "status", "aria-live": "polite" });
    this.noteEl = h("p", { class: "tile-note" });
    const label = e.name || e.id;
    const where = e.topic || e.control?.topic || "";
    const path = h("code", { class: "tile-topic", title: where + (e.field ? ` · ${e.field}` : "") }, where + (e.field ? ` · ${e.field}` : ""));
    const head = h("div", { class: "tile-head" }, h("span", { class: "tile-label", title: label }, label), this.agoEl);
    this.el = h("li", {
      class: `tile tile-${look} tile-entity`,
      dataset: {
        topic: where, entity: e.id, kind: e.kind, type: e.type, control: this.control, ...(e.field ? { field: e.field } : {}),
        ...(this.control !== "none" && e.control?.topic ? { commandTopic: e.control.topic } : {}), // see me.js
      },
    }, head);

    if (look === "number") {
      this.chart = new Chart(label, () => store.wantHistory(this.#key));
      this.el.append(this.valueEl, this.chart.el, path);
    } else if (look === "switch") {
      this.badge = h("span", { class: "badge" });
      this.el.append(h("div", { class: "switch-row" }, this.badge), path);
    } else if (look === "text") {
      this.el.append(this.valueEl, path);
    } else {
      this.el.append(path);
    }
    this.#buildControl(e, label);
    this.el.append(this.noteEl);
  }

  #buildControl(e, label) {
    const c = e.control;
    switch (this.control) {
      case "toggle":
        this.button = h("button", { type: "button", class: "toggle", onclick: () => this.#toggle() });
        (this.el.querySelector(".switch-row") ?? this.el).append(this.button);
        break;
      case "press":
        this.button = h("button", { type: "button", class: "press", onclick: () => this.#command(null) }, `Press`);
        this.button.setAttribute("aria-label", `Press ${label}`);
        this.el.append(h("div", { class: "switch-row" }, this.button));
        break;
      case "slider":
      case "field": {
        const attrs = { type: this.control === "slider" ? "range" : "number", class: "entity-input", "aria-label": `Set ${label}` };
        if (Number.isFinite(c.min)) attrs.min = c.min;
        if (Number.isFinite(c.max)) attrs.max = c.max;
        attrs.step = Number.isFinite(c.step) && c.step > 0 ? c.step : "any";
        this.input = h("input", attrs);
        this.input.addEventListener("input", () => (this.editing = true));
        this.input.addEventListener("blur", () => (this.editing = false));
        this.input.addEventListener("change", () => {
          this.editing = false;
          const v = Number(this.input.value);
          if (this.input.value !== "" && Number.isFinite(v)) this.#command(v);
        });
        this.targetEl = h("output", { class: "entity-target" });
        this.el.append(h("div", { class: "control-row" }, this.input, this.targetEl));
        break;
      }
      case "select":
        this.select = h("select", { class: "entity-select", "aria-label": `Choose ${label}` },
          (c.options ?? []).map((o) => h("option", { value: o }, o)));
        this.select.addEventListener("change", () => this.#command(this.select.value));
        this.el.append(h("div", { class: "control-row" }, this.select));
        break;
    }
    if (this.control !== "none") this.el.append(this.statusEl);
  }

  #pending() {
    return this.#store.deviceCommands.get(this.#key)?.state === "pending";
  }

  #toggle() {
    if (this.#pending()) return; // one at a time; the button says so
    this.#command(this.#entity.value !== true);
  }

  #command(value) {
    if (this.#pending()) return;
    const e = this.#entity;
    this.#send(this.#device.id, e.id, value, e.control?.topic ?? "");
  }

  update(d, e) {
    this.#device = d;
    this.#entity = e;
    const cmd = this.#store.deviceCommands.get(this.#key);
    const state = cmd?.state ?? "";
    const pending = state === "pending";
    this.el.dataset.command = state;
    if (this.chart) {
      const s = this.#store.entitySeries.get(this.#key);
      const text = formatEntity(e);
      const unit = e.unit && text.endsWith(` ${e.unit}`) ? e.unit : "";
      this.valueEl.replaceChildren(unit ? text.slice(0, -unit.length - 1) : text, unit ? " " : "", unit ? h("span", { class: "unit" }, unit) : "");
      this.chart.update(s?.series ?? [], e.unit ?? "", s?.seeded ?? 0);
    } else if (this.badge) {
      // The badge is always what the device last reported, never what was asked.
      const text = formatEntity(e);
      setText(this.badge, text === "—" ? "unknown" : text);
      this.badge.className = `badge ${e.value === true ? "badge-on" : "badge-off"}`;
    } else if (this.el.contains(this.valueEl)) {
      setText(this.valueEl, formatEntity(e));
      this.valueEl.title = e.value === undefined ? "" : JSON.stringify(e.value);
    }
    setText(this.noteEl, e.note ?? "");
    this.#updateControl(e, cmd, pending);
    if (this.control !== "none") {
      this.statusEl.className = `command-status ${state}`;
      setText(this.statusEl, describe(cmd, false));
      this.statusEl.title = describe(cmd, true);
    }
    this.tick();
  }

  #updateControl(e, cmd, pending) {
    const label = e.name || e.id;
    const of = `${label} of ${this.#device.name || this.#device.id}`;
    switch (this.control) {
      case "toggle": {
        const on = e.value === true;
        const want = pending ? cmd.payload === true : !on;
        setText(this.button, pending ? (want ? "Turning on…" : "Turning off…") : on ? "Turn off" : "Turn on");
        this.button.setAttribute("aria-disabled", String(pending));
        this.button.setAttribute("aria-label", `${pending ? "Waiting: " : ""}${this.button.textContent} ${of}`);
        break;
      }
      case "press":
        setText(this.button, pending ? "Pressing…" : "Press");
        this.button.setAttribute("aria-disabled", String(pending));
        break;
      case "slider":
      case "field": {
        // The control rests on the reported value; while a command waits it
        // holds the target, marked. A person moving it is not disturbed.
        const target = pending ? cmd.payload : e.value;
        const v = typeof target === "number" ? String(target) : "";
        if (!this.editing && this.input.value !== v) this.input.value = v;
        this.input.setAttribute("aria-disabled", String(pending));
        setText(this.targetEl, pending ? `→ ${cmd.payload}${e.unit ? ` ${e.unit}` : ""}` : "");
        if (this.control === "slider") {
          const shown = typeof e.value === "number" ? `${e.value}${e.unit ? ` ${e.unit}` : ""}` : "no value yet";
          this.input.setAttribute("aria-valuetext", pending ? `${shown}, setting to ${cmd.payload}` : shown);
        }
        break;
      }
      case "select": {
        const target = pending ? cmd.payload : e.value;
        const v = typeof target === "string" ? target : "";
        if (this.select.value !== v) this.select.value = v;
        this.select.setAttribute("aria-disabled", String(pending));
        this.select.classList.toggle("pending", pending);
        break;
      }
    }
  }

  tick(now = Date.now()) {
    const t = Date.parse(this.#entity?.updated);
    setText(this.agoEl, Number.isFinite(t) ? ago(Math.min(t, now), now) : "");
    if (t !== this.#titled && !(Number.isNaN(t) && Number.isNaN(this.#titled))) {
      this.#titled = t; // a date in words costs: written when it changes
      this.agoEl.title = Number.isFinite(t) ? new Date(t).toLocaleString() : "";
    }
  }
}
