// Rules for the hub's device model (docs/devices.md) on the page: which
// devices get a card of their own, which topics those cards already show
// (so that no generic tile repeats them), and how an entity's value reads.
// Pure functions, no DOM.

import { formatNumber } from "./values.js";

// PLAIN is the convention of devices the model groups by the generic
// heuristic: they keep the generic look (one tile per topic).
export const PLAIN = "json";

// hasCard says whether a device of the model is drawn as a card of its own.
export const hasCard = (device) => device.convention !== PLAIN;

// nativeID is a device's id without its convention: "nodes/mote-1" of
// "hardwario:nodes/mote-1".
export function nativeID(d) {
  return d.id.startsWith(d.convention + ":") ? d.id.slice(d.convention.length + 1) : d.id;
}

// entityKey names an entity across devices (series, commands).
export const entityKey = (deviceID, entityID) => `${deviceID}\n${entityID}`;

// Coverage answers which topics the model's cards show, in steps
// proportional to a topic's levels (not to the number of devices):
//   - an entity's state topic and its command topic;
//   - topics under either ("zigbee2mqtt/lamp/availability",
//     "homie/dev/node/prop/$unit");
//   - what a convention publishes about its devices, once the model shows a
//     device of it: Home Assistant's discovery prefix ("homeassistant/...":
//     configs, and the states and availability examples put there),
//     Homie attributes (a level starting with "$" under a Homie device),
//     the Zigbee2MQTT bridge ("<base>/bridge/..."), Tasmota discovery and
//     the tele/stat/cmnd topics of a Tasmota device's topic.
export class Coverage {
  #topics = new Set(); // covered exactly, and everything under them
  #attributeRoots = new Set(); // Homie device roots: topics under them with a "$" level
  #homeAssistant = false;

  constructor(devices = []) {
    for (const d of devices) if (hasCard(d)) this.#add(d);
  }

  #add(device) {
    for (const e of device.entities) {
      const topics = [e.topic, e.control?.topic].filter((t) => typeof t === "string" && t !== "");
      for (const t of topics) {
        this.#topics.add(t);
        const levels = t.split("/");
        switch (device.convention) {
          case "homeassistant":
            this.#homeAssistant = true;
            break;
          case "homie":
            // homie/<device>/<node>/<property>[/set]
            if (levels.length >= 4) this.#attributeRoots.add(levels.slice(0, t === e.topic ? -2 : -3).join("/"));
            break;
          case "zigbee2mqtt":
            this.#topics.add(`${levels[0]}/bridge`);
            break;
          case "tasmota":
            // tele|stat|cmnd/<topic>/<command>
            if (levels.length >= 3 && ["tele", "stat", "cmnd"].includes(levels[0])) {
              for (const p of ["tele", "stat", "cmnd"]) this.#topics.add(`${p}/${levels[1]}`);
            }
            this.#topics.add("tasmota/discovery");
            break;
        }
      }
    }
  }

  // covers reports whether a model card shows topic (or what it says).
  covers(topic) {
    const levels = topic.split("/");
    if (this.#homeAssistant && levels[0] === "homeassistant") return true;
    let prefix = "";
    for (let i = 0; i < levels.length; i++) {
      prefix = i === 0 ? levels[0] : `${prefix}/${levels[i]}`;
      if (this.#topics.has(prefix)) return true;
      if (this.#attributeRoots.has(prefix) && levels.slice(i + 1).some((l) => l.startsWith("$"))) return true;
    }
    return false;
  }
}

// fieldOf is the value at a dotted JSON path ("" for the whole payload) in
// a payload as the hub delivers it; undefined when there is none.
export function fieldOf(payload, path) {
  if (!path) return payload;
  let v = payload;
  for (const key of path.split(".")) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, key)) return undefined;
    v = v[key];
  }
  return v;
}

// numberOf reads a reading: a JSON number, [number, "unit"], or text that is
// a number ("21.5", as devices publish bare); null for anything else.
export function numberOf(v) {
  if (Array.isArray(v) && v.length === 2 && typeof v[1] === "string") v = v[0];
  if (v !== null && typeof v === "object" && typeof v.$text === "string") v = v.$text;
  if (typeof v === "string" && v.trim() !== "") v = Number(v);
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

// isNumeric: an entity whose values are charted.
export const isNumeric = (e) => e.type === "number";

// isOnOff: an entity shown as on/off.
export const isOnOff = (e) => e.type === "boolean";

// formatEntity is an entity's value as text, with its unit; "—" before a
// value arrives.
export function formatEntity(e, locale) {
  const v = e.value;
  if (v === undefined || v === null) return "—";
  switch (e.type) {
    case "number": {
      const n = numberOf(v);
      if (n === null) return JSON.stringify(v);
      return e.unit ? `${formatNumber(n, locale)} ${e.unit}` : formatNumber(n, locale);
    }
    case "boolean":
      return v === true ? "on" : v === false ? "off" : JSON.stringify(v);
    case "enum":
    case "text":
      return typeof v === "string" ? v : JSON.stringify(v);
    default:
      return JSON.stringify(v);
  }
}

// failureText says in words why a command failed, from the hub's code
// (docs/devices.md): briefly for a control, or in full for its tooltip.
export function failureText(code, reported, full) {
  switch (code) {
    case "offline":
      return full ? "the device is offline, so the command was not sent" : "offline";
    case "state-differs": {
      const what = reported === undefined ? "another state" : formatReported(reported);
      return full ? `the device reports ${what}, not what was asked` : `the device reports ${what}`;
    }
    case "timeout":
      return full ? "the device did not answer in time" : "no answer";
    case "forbidden":
      return full ? "you may not command this device" : "forbidden";
    case "unavailable":
      return full ? "the hub could not reach the broker" : "broker unavailable";
    case "bad-value":
      return full ? "the device does not take this value" : "value refused";
    case "unknown-device":
      return full ? "the hub does not know this device (any more)" : "unknown device";
    case "unknown-entity":
      return full ? "the device has no such control (any more)" : "unknown control";
    case "not-control":
      return full ? "this value cannot be commanded" : "not a control";
    case "limit":
      return full ? "too many commands are waiting; try again" : "too many commands";
    default:
      return "";
  }
}

function formatReported(v) {
  if (v === true || v === false) return v ? "on" : "off";
  if (v !== null && typeof v === "object" && !Array.isArray(v) && typeof v.state === "boolean" && Object.keys(v).length === 1) return v.state ? "on" : "off";
  return typeof v === "string" ? v : JSON.stringify(v);
}
