// HubClient is one Clown.Talk session with the hub over its WebSocket, kept
// alive: it reconnects with backoff and resumes from the last event id it
// saw, tracks commands until their devices confirm them, follows the hub's
// device model (docs/devices.md), and remembers the last value of every
// topic, the devices and the recent lines, so that a tab that joins later
// starts complete. It uses no DOM: it runs in the SharedWorker that
// the tabs share, or in a tab of its own when there is no SharedWorker.
//
// Listeners get plain objects (they cross postMessage):
//   {type: "snapshot", status, values: [{topic, payload, time}], lines, commands, devices}
//   {type: "status", status}
//   {type: "lines", lines: [{dir: "in"|"out", topic, payload, id, time}]}  every line, in order
//   {type: "state", values: [{topic, payload, time}], resync}  last values from the hub
//   {type: "devices", devices: [device]}  the hub's whole device model (replaces what was known)
//   {type: "device", device}  one device added or changed, or {id, removed: true}
//   {type: "command", command: {id, ref, topic, payload, state, code, error, ms, reported, device, entity}}
//   {type: "notice", level: "info"|"warn"|"error", text, topic}
// Times are milliseconds since the epoch. status.model says whether the hub
// has a device model: "unknown" until it answers, then "ok" or "unsupported"
// (a hub older than docs/devices.md); devices are as docs/devices.md shows.
// A command to a device of the model has device and entity set, and its
// topic is the entity's MQTT command topic.

import { rightsOf } from "./rights.js";
import { resyncText } from "./resync.js";
import { CONTROL, isCommand } from "./topics.js";

const KEEP_LINES = 300; // recent lines a joining tab gets
const KEEP_COMMANDS = 50; // recent commands a joining tab gets
const MAX_DEVICES = 10_000; // devices of the model kept (the hub's own default bound)
const MAX_DEVICE_COMMANDS = 100; // device commands waiting for their ack at once
const DEVICE_COMMAND_TIMEOUT = 60_000; // a device command the hub never answers fails after this
const BACKOFF_FIRST = 500; // ms; doubles per failed attempt
const BACKOFF_MAX = 10_000;
const CONNECT_TIMEOUT = 10_000; // a handshake that takes longer is given up
const QUIET_PROBE = 20_000; // after this long without a frame, ask the hub for one
const PROBE_TIMEOUT = 10_000; // and if none comes, the connection is dead

// Control lines the message log leaves out: answers that say nothing to a
// person, and the device model's updates, which repeat the messages shown.
const UNLOGGED = new Set([CONTROL + "subscribe/ok", CONTROL + "devices/ok", CONTROL + "device"]);

export const LOST = "the connection to the hub was lost before the device confirmed; the command may or may not have been carried out";
export const NOT_CONNECTED = "not connected to the hub";
export const NO_ANSWER = "the hub did not answer the command";

export class HubClient {
  #url;
  #ws = null;
  #listeners = new Set();
  #attempt = 0; // failed attempts since the last session started
  #retryTimer = 0;
  #connectTimer = 0;
  #quietTimer = 0;
  #lastFrame = 0;
  #probing = false;
  #pending = new Map(); // command topic → commands awaiting their ack, oldest first
  #devicePending = new Map(); // command id → {cmd, timer}: device commands awaiting their ack, ≤ MAX_DEVICE_COMMANDS
  #seq = 0;
  #started = false;
  #resync = ""; // the reason of a resync whose state/ok is still to come

  values = new Map(); // topic → {payload, time}
  lines = [];
  commands = new Map(); // id → command, the recent ones
  devices = new Map(); // device id → device of the hub's model, ≤ MAX_DEVICES
  lastId = ""; // the last event of the stream this client has: resume from it
  status = {
    state: "connecting", // connecting | live | reconnecting
    since: 0, // when state began
    retryAt: 0, // reconnecting: when the next attempt starts
    attempt: 0,
    closeCode: 0,
    closeReason: "",
    session: "",
    epoch: "",
    ack: false, // the hub confirms commands
    resumed: "", // how the last session started: "fresh" | "resumed" | "resynced"
    model: "unknown", // the hub's device model: "unknown" | "ok" | "unsupported"
    tabs: 1, // tabs sharing this session (set by the worker)
    me: null, // who the session acts as, from config/ok: {user, open, admin, rules} (rights.js)
  };

  constructor(url) {
    this.#url = url;
  }

  on(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #emit(ev) {
    for (const fn of this.#listeners) fn(ev);
  }

  snapshot() {
    return {
      type: "snapshot",
      status: { ...this.status },
      values: [...this.values].map(([topic, v]) => ({ topic, payload: v.payload, time: v.time })),
      lines: this.lines.slice(),
      commands: [...this.commands.values()],
      devices: [...this.devices.values()],
    };
  }

  start() {
    if (this.#started) return;
    this.#started = true;
    globalThis.addEventListener?.("online", () => this.retryNow());
    this.#connect();
  }

  // retryNow skips the wait before the next attempt.
  retryNow() {
    if (this.#ws || !this.#started) return;
    clearTimeout(this.#retryTimer);
    this.#connect();
  }

  setTabs(n) {
    this.#setStatus({ tabs: n });
  }

  #setStatus(change) {
    if (change.state && change.state !== this.status.state) change.since = Date.now();
    Object.assign(this.status, change);
    this.#emit({ type: "status", status: { ...this.status } });
  }

  #connect() {
    this.#setStatus({ state: this.#attempt > 0 || this.lastId ? "reconnecting" : "connecting", retryAt: 0 });
    let ws;
    try {
      ws = new WebSocket(this.#url, "clown.talk");
    } catch (err) {
      this.#notice("error", `cannot open ${this.#url}: ${err.message}`);
      this.#scheduleRetry(0, "");
      return;
    }
    this.#ws = ws;
    this.#connectTimer = setTimeout(() => this.#drop(ws, 4000, "the hub did not answer in time"), CONNECT_TIMEOUT);
    ws.onopen = () => {
      clearTimeout(this.#connectTimer);
      const config = { ack: true, ids: true, subscribe: ["#"], devices: true };
      if (this.lastId) config.since = this.lastId;
      this.#sendRaw(CONTROL + "config/set", config);
      this.#lastFrame = Date.now();
      this.#watchQuiet(ws);
    };
    ws.onmessage = (e) => {
      if (ws === this.#ws) this.#receive(e.data);
    };
    ws.onerror = () => {}; // onclose follows, with the code
    ws.onclose = (e) => this.#drop(ws, e.code, e.reason);
  }

  // drop ends the session on ws, once: commands still waiting fail (their
  // acks would have come on this session), and the next attempt is planned.
  #drop(ws, code, reason) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#quietTimer);
    this.#probing = false;
    if (ws.readyState !== WebSocket.CLOSED) ws.close(4000, reason.slice(0, 100));
    this.#failPending(LOST);
    this.#scheduleRetry(code, reason);
  }

  // scheduleRetry waits before the next attempt: 0.5 s, 1 s, 2 s, … up to
  // 10 s, each with jitter, so that a restarted hub is not hit by every
  // browser at once. A client closed for being slow (4008) comes back at
  // once the first time: its backlog was dropped, resuming fetches it.
  #scheduleRetry(code, reason) {
    const base = code === 4008 && this.#attempt === 0 ? 100 : Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** this.#attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    this.#attempt++;
    this.#setStatus({
      state: "reconnecting",
      retryAt: Date.now() + delay,
      attempt: this.#attempt,
      closeCode: code,
      closeReason: reason || closeText(code),
    });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  // watchQuiet notices a connection that died without closing (a laptop
  // that slept, a NAT that forgot it): after a quiet spell it sends a
  // harmless request (subscribe to nothing), and drops the connection when
  // nothing answers.
  #watchQuiet(ws) {
    clearTimeout(this.#quietTimer);
    this.#quietTimer = setTimeout(() => {
      if (ws !== this.#ws) return;
      if (Date.now() - this.#lastFrame < QUIET_PROBE) {
        this.#watchQuiet(ws);
        return;
      }
      this.#probing = true;
      this.#sendRaw(CONTROL + "subscribe", [], { log: false });
      this.#quietTimer = setTimeout(() => {
        if (ws !== this.#ws) return;
        if (this.#probing) this.#drop(ws, 4000, "the hub stopped answering");
        else this.#watchQuiet(ws);
      }, PROBE_TIMEOUT);
    }, QUIET_PROBE);
  }

  #sendRaw(topic, payload, { log = true } = {}) {
    this.#ws.send(JSON.stringify([topic, payload]) + "\n");
    if (log) this.#record([{ dir: "out", topic, payload, id: "", time: Date.now() }]);
  }

  // publish sends a message to the devices. ref is the caller's name for it.
  publish(topic, payload, ref = "") {
    if (isCommand(topic)) return this.command(topic, payload, ref);
    if (!this.#ws || this.status.state !== "live") {
      this.#notice("error", `not connected to the hub: ${topic} was not published`, topic, ref);
      return;
    }
    this.#sendRaw(topic, payload);
  }

  // command sends a command (a publish on ".../set") and follows it: pending
  // until the hub's ack, then ok or failed with the reason. Without a live
  // session it fails at once: it is never queued to run later.
  command(topic, payload, ref = "") {
    const cmd = { id: `c${++this.#seq}`, ref, topic, payload, state: "pending", error: "", ms: 0, reported: undefined, sent: Date.now() };
    if (!this.#ws || this.status.state !== "live") {
      this.#settle(cmd, { state: "failed", error: NOT_CONNECTED });
      return cmd.id;
    }
    this.#sendRaw(topic, payload);
    if (this.status.ack) {
      const list = this.#pending.get(topic) ?? [];
      list.push(cmd);
      this.#pending.set(topic, list);
      this.#remember(cmd);
    } else {
      this.#settle(cmd, { state: "sent", error: "this hub does not confirm commands" });
    }
    return cmd.id;
  }

  // deviceCommand asks the hub to command an entity of a device of its
  // model (clown.talk/-/command): the hub encodes value for the device and
  // answers with one ack naming the command's id, whatever the session's
  // ack setting. topic is the entity's MQTT command topic, for the record.
  // Without a live session, or with too many commands waiting, it fails at
  // once.
  deviceCommand(device, entity, value, topic = "", ref = "") {
    const id = `c${++this.#seq}`;
    const cmd = { id, ref, device, entity, topic, payload: value, state: "pending", code: "", error: "", ms: 0, reported: undefined, sent: Date.now() };
    if (!this.#ws || this.status.state !== "live") {
      this.#settle(cmd, { state: "failed", error: NOT_CONNECTED });
      return id;
    }
    if (this.#devicePending.size >= MAX_DEVICE_COMMANDS) {
      this.#settle(cmd, { state: "failed", code: "limit", error: `${MAX_DEVICE_COMMANDS} commands are already waiting for their devices` });
      return id;
    }
    this.#sendRaw(CONTROL + "command", { device, entity, value, id });
    const timer = setTimeout(() => this.#settleDevice(id, { state: "failed", code: "", error: NO_ANSWER }), DEVICE_COMMAND_TIMEOUT);
    this.#devicePending.set(id, { cmd, timer });
    this.#remember(cmd);
    return id;
  }

  // settleDevice ends a device command, once.
  #settleDevice(id, change) {
    const waiting = this.#devicePending.get(id);
    if (!waiting) return false;
    this.#devicePending.delete(id);
    clearTimeout(waiting.timer);
    this.#settle(waiting.cmd, change);
    return true;
  }

  #remember(cmd) {
    this.commands.set(cmd.id, cmd);
    if (this.commands.size > KEEP_COMMANDS) this.commands.delete(this.commands.keys().next().value);
    this.#emit({ type: "command", command: { ...cmd } });
  }

  #settle(cmd, change) {
    Object.assign(cmd, change);
    this.#remember(cmd);
  }

  #failPending(error) {
    const all = [...this.#pending.values()].flat();
    this.#pending.clear();
    for (const { cmd, timer } of this.#devicePending.values()) {
      clearTimeout(timer);
      all.push(cmd);
    }
    this.#devicePending.clear();
    for (const cmd of all) this.#settle(cmd, { state: "failed", code: "", error });
  }

  #receive(data) {
    this.#lastFrame = Date.now();
    this.#probing = false;
    const now = Date.now();
    let batch = [];
    const flush = () => {
      if (batch.length) this.#record(batch);
      batch = [];
    };
    for (const text of String(data).split("\n")) {
      if (text === "") continue;
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        flush();
        this.#notice("error", `the hub sent a line that is not JSON: ${text.slice(0, 120)}`);
        continue;
      }
      if (!Array.isArray(line) || typeof line[0] !== "string" || line.length < 2) {
        flush();
        this.#notice("error", `the hub sent a line that is not [topic, payload]: ${text.slice(0, 120)}`);
        continue;
      }
      const [topic, payload, meta] = line;
      const id = meta && typeof meta.id === "string" ? meta.id : "";
      if (topic.startsWith(CONTROL)) {
        // The lines before a control line reach listeners first: an echo
        // before the ack it causes, live values before a resync's state.
        flush();
        if (!UNLOGGED.has(topic)) this.#record([{ dir: "in", topic, payload, id: "", time: now }]);
        this.#control(topic.slice(CONTROL.length), payload);
        continue;
      }
      if (id) this.lastId = id;
      this.values.set(topic, { payload, time: now });
      batch.push({ dir: "in", topic, payload, id, time: now });
    }
    flush();
  }

  #record(lines) {
    this.lines.push(...lines);
    if (this.lines.length > KEEP_LINES) this.lines.splice(0, this.lines.length - KEEP_LINES);
    this.#emit({ type: "lines", lines });
  }

  #control(kind, p) {
    switch (kind) {
      case "config/ok": {
        const fresh = !this.lastId;
        if (p.id) this.lastId = p.id;
        this.#attempt = 0;
        this.#setStatus({
          state: "live",
          retryAt: 0,
          attempt: 0,
          session: p.session ?? "",
          epoch: p.epoch ?? "",
          ack: p.ack === true,
          resumed: fresh ? "fresh" : "resumed", // a resync line says otherwise
          me: rightsOf(p), // who the session acts as, and the rules (me.js)
        });
        // A first session starts from now: ask for the last values. One that
        // resumes gets what it missed, or a resync with the last values.
        if (fresh) this.#sendRaw(CONTROL + "state/get", { filter: "#" });
        // Every session asks for the whole device model: changes while the
        // page was away are not replayed, the list replaces what it knew.
        this.#sendRaw(CONTROL + "devices/get", {}, { log: false });
        break;
      }
      case "devices/ok": {
        this.devices.clear();
        for (const d of Array.isArray(p?.devices) ? p.devices : []) {
          if (isDevice(d) && this.devices.size < MAX_DEVICES) this.devices.set(d.id, d);
        }
        if (this.status.model !== "ok") this.#setStatus({ model: "ok" });
        this.#emit({ type: "devices", devices: [...this.devices.values()] });
        break;
      }
      case "device": {
        if (typeof p?.id !== "string") break;
        if (p.removed === true) {
          if (this.devices.delete(p.id)) this.#emit({ type: "device", device: { id: p.id, removed: true } });
          break;
        }
        if (!isDevice(p) || (!this.devices.has(p.id) && this.devices.size >= MAX_DEVICES)) break;
        this.devices.set(p.id, p);
        this.#emit({ type: "device", device: p });
        break;
      }
      case "resync":
        this.#resync = p?.reason || "unknown reason";
        this.#setStatus({ resumed: "resynced" });
        this.#notice("warn", resyncText(p));
        break;
      case "state/ok": {
        if (p.id) this.lastId = p.id;
        const values = [];
        const now = Date.now();
        for (const v of p.values ?? []) {
          if (!Array.isArray(v) || typeof v[0] !== "string") continue;
          const hubTime = Date.parse(v[2]?.time);
          // The hub's clock; never in the future of ours.
          const time = Number.isFinite(hubTime) ? Math.min(hubTime, now) : now;
          this.values.set(v[0], { payload: v[1], time });
          values.push({ topic: v[0], payload: v[1], time });
        }
        this.#emit({ type: "state", values, resync: this.#resync });
        this.#resync = "";
        break;
      }
      case "ack": {
        const result = {
          state: p.ok ? "ok" : "failed",
          ms: p.ms ?? 0,
          code: p.ok ? "" : p.code || legacyCode(p.error),
          error: p.ok ? "" : p.error || p.code || "failed",
          reported: p.state,
        };
        if (typeof p.id === "string" && this.#settleDevice(p.id, result)) break;
        const list = this.#pending.get(p.topic);
        const cmd = list?.shift();
        if (list && list.length === 0) this.#pending.delete(p.topic);
        if (!cmd) break;
        this.#settle(cmd, result);
        break;
      }
      case "error": {
        const topic = p?.topic ?? "";
        // A hub without a device model does not know devices/get: the page
        // shows what it shows without one, and needs no notice of it.
        if (topic === CONTROL + "devices/get") {
          if (this.status.model !== "unsupported") this.#setStatus({ model: "unsupported" });
          break;
        }
        // A refused device command is answered by its ack (docs/devices.md),
        // which the control shows: an error naming it needs no notice.
        if (topic === CONTROL + "command" && typeof p?.id === "string" && this.#devicePending.has(p.id)) {
          this.#settleDevice(p.id, { state: "failed", code: p.code ?? "", error: p.message || p.code || "failed" });
          break;
        }
        const list = this.#pending.get(topic);
        if (list?.length && p.code !== "unavailable") {
          const cmd = list.pop();
          if (list.length === 0) this.#pending.delete(topic);
          this.#settle(cmd, { state: "failed", code: p.code ?? "", error: `${p.code}: ${p.message}` });
        }
        this.#notice("error", `${p?.code ?? "error"}: ${p?.message ?? ""}`, topic);
        break;
      }
    }
  }

  #notice(level, text, topic = "", ref = "") {
    this.#emit({ type: "notice", level, text, topic, ref });
  }
}

// isDevice: the least a device frame must have to be shown.
function isDevice(d) {
  return d !== null && typeof d === "object" && typeof d.id === "string" && d.id !== "" && Array.isArray(d.entities);
}

// legacyCode is the code of an ack from a hub that gave only error (before
// docs/devices.md): "state differs" and "timeout".
function legacyCode(error) {
  return error === "state differs" ? "state-differs" : error === "timeout" ? "timeout" : error || "";
}

// wsURL is the hub's WebSocket next to a page or worker at location.
export function wsURL(location) {
  const u = new URL("/ws", location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

function closeText(code) {
  switch (code) {
    case 1001:
      return "the hub went away";
    case 1006:
      return "the hub cannot be reached";
    case 4008:
      return "too slow to keep up";
    default:
      return code ? `closed (${code})` : "";
  }
}
