// The dashboard's session with the hub: the client library (/motehub.js,
// docs/client.md) holds the connection, one for every tab through its
// shared worker where the browser has SharedWorker (?shared=0 in the page's
// address: a connection of the tab's own). This module turns the library's
// events into what the store takes (store.js), as plain objects:
//   {type: "snapshot", status, values: [], lines: [], commands: [], devices: []}  first, once
//   {type: "status", status}
//   {type: "lines", lines: [{dir: "in"|"out", topic, payload, id, time}]}  messages and control frames, in order
//   {type: "state", values: [{topic, payload, time}], resync}  last values from the hub
//   {type: "devices", devices: [device]}  the hub's whole device model (replaces what was known)
//   {type: "device", device}  one device added or changed, or {id, removed: true}
//   {type: "command", command: {id, ref, topic, payload, state, code, error, ms, reported, device, entity}}
//   {type: "notice", level: "info"|"warn"|"error", text, topic, ref}
// status.state is "connecting", "live" or "reconnecting"; status.model says
// whether the hub has a device model: "unknown" until it answers, then "ok"
// or "unsupported" (a hub older than docs/devices.md); status.me is who the
// session acts as (rights.js), from the hub's config/ok.

import { connect } from "/motehub.js";
import { rightsOf } from "./rights.js";
import { resyncText } from "./resync.js";
import { CONTROL, isCommand } from "./topics.js";
import { entityKey, failureText } from "./model.js";

// Control frames the message log leaves out: answers that say nothing to a
// person, and the watchdog's probe (subscribe to nothing).
const UNLOGGED = new Set([CONTROL + "subscribe/ok", CONTROL + "unsubscribe/ok", CONTROL + "devices/ok"]);
const MAX_TOPICS = 1000;
const COMMAND_TIMEOUT = 60_000; // a command the hub never answers fails after this (the hub's own ack timeout comes first)

export const LOST = "the connection to the hub was lost before the device confirmed; the command may or may not have been carried out";
export const NOT_CONNECTED = "not connected to the hub";
export const NO_ANSWER = "the hub did not answer the command";

// connectSession connects to the page's hub and hands the store's events to
// onEvent, starting with a snapshot. It returns what the views call.
export function connectSession(onEvent, { shared = true } = {}) {
  const hub = connect("/", {
    shared,
    name: "dashboard",
    subscribe: ["#"],
    storage: null, // a reload starts afresh, with the last values, rather than replaying the log
    frames: true, // the frames sent and the hub's answers, for the message log
    commandTimeout: COMMAND_TIMEOUT,
    backoff: { max: 10_000 },
  });
  const status = {
    state: "connecting", // connecting | live | reconnecting
    since: Date.now(), // when state began
    retryAt: 0, // reconnecting: when the next attempt starts
    attempt: 0,
    closeReason: "",
    transport: "",
    session: "",
    epoch: "",
    boot: "", // the hub's run (config/ok): another after a reconnect is a restart (store.js)
    resumed: "", // how the last session started: "fresh" | "resumed" | "resynced"
    model: "unknown", // the hub's device model: "unknown" | "ok" | "unsupported"
    tabs: 1, // tabs sharing this session
    me: null, // who the session acts as, from config/ok: {user, open, admin, rules} (rights.js)
  };
  let liveAttempt = -1; // the library's attempt count when the session opened; -1 while not live
  let everLive = false;
  let lines = []; // messages and frames not yet handed on: they go together, once per task
  // The MQTT command topics of the entities this tab commanded, by entityKey,
  // for the record (the library's events name the device and entity only).
  // ≤ MAX_TOPICS.
  const topics = new Map();

  const flushLines = () => {
    if (lines.length === 0) return;
    const batch = lines;
    lines = [];
    onEvent({ type: "lines", lines: batch });
  };
  const addLine = (line) => {
    if (lines.length === 0) queueMicrotask(flushLines);
    lines.push(line);
  };
  // emit hands on an event after the lines before it (an echo before the
  // confirmation it causes).
  const emit = (ev) => {
    flushLines();
    onEvent(ev);
  };
  const setStatus = (change) => {
    if (change.state && change.state !== status.state) change.since = Date.now();
    Object.assign(status, change);
    emit({ type: "status", status: { ...status } });
  };
  const notice = (level, text, topic = "", ref = "") => emit({ type: "notice", level, text, topic, ref });

  onEvent({ type: "snapshot", status: { ...status }, values: [], lines: [], commands: [], devices: [] });

  hub.on("status", (s) => {
    // "unavailable" while the session stays open: the hub's broker is down
    // (errors say so); the page stays live.
    const live = s.state === "open" || (s.state === "unavailable" && liveAttempt === s.attempt);
    if (live && liveAttempt < 0) {
      liveAttempt = s.attempt;
      everLive = true;
      loadDevices();
    } else if (!live) liveAttempt = -1;
    setStatus({
      state: live ? "live" : everLive || s.attempt > 0 ? "reconnecting" : "connecting",
      retryAt: !live && s.retryIn > 0 ? Date.now() + s.retryIn : 0,
      attempt: live ? 0 : s.attempt,
      closeReason: live ? "" : s.reason,
      closeCode: s.code, // the last connection's, also once live again: the charts break after a hub's shutdown (store.js)
      transport: s.transport,
      tabs: s.tabs ?? 1,
    });
  });
  hub.on("session", (p) => {
    setStatus({ session: p.id, epoch: p.epoch, boot: p.boot, resumed: p.resumed ? "resumed" : "fresh", me: rightsOf(p) });
  });
  hub.on("message", (m) => addLine({ dir: "in", topic: m.topic, payload: m.payload, id: m.id, time: m.time }));
  hub.on("frame", (f) => {
    if (UNLOGGED.has(f.topic)) return;
    if (f.topic === CONTROL + "subscribe" && Array.isArray(f.payload) && f.payload.length === 0) return; // the watchdog's probe
    addLine({ dir: f.dir, topic: f.topic, payload: f.payload, id: "", time: f.time });
  });
  hub.on("state", (s) => emit({ type: "state", values: s.values, resync: s.resync }));
  hub.on("resync", (r) => {
    setStatus({ resumed: "resynced" });
    notice("warn", resyncText(r));
  });
  hub.on("device", (d) => {
    if (status.model !== "ok") setStatus({ model: "ok" });
    emit({ type: "device", device: d });
  });
  hub.on("command", (c) => emit({ type: "command", command: commandOf(c, "", status.state, topics) }));
  hub.on("error", (e) => notice("error", `${e.code}: ${e.message}`, e.topic));

  // loadDevices asks for the whole device model at every session: changes
  // while the page was away are not replayed, the list replaces what it knew.
  // A hub without a device model refuses: the page shows what it shows
  // without one, and needs no notice of it.
  function loadDevices() {
    hub.devices().then(
      (devices) => {
        if (status.model !== "ok") setStatus({ model: "ok" });
        emit({ type: "devices", devices });
      },
      (err) => {
        if (!["connection-lost", "unavailable", "limit"].includes(err?.code) && status.model !== "unsupported") setStatus({ model: "unsupported" });
      },
    );
  }

  // command sends a command, which "command" events follow (in every tab
  // sharing the connection); ref is the caller's name for it: its outcome
  // comes once more with it.
  const command = (target, payload, ref) => {
    const about = typeof target === "string" ? { topic: target, payload } : { topic: "", payload, device: target.device, entity: target.entity };
    hub.command(target, payload).then(
      (res) => ref && emit({ type: "command", command: commandOf({ ...about, id: res.id, state: "ok", ms: res.ms }, ref, status.state, topics) }),
      (err) => ref && emit({ type: "command", command: commandOf({ ...about, id: err.id, state: "failed", code: err.code, message: err.message, reported: err.state, ms: 0 }, ref, status.state, topics) }),
    );
  };

  const link = {
    get mode() {
      return hub.mode === "shared" ? "shared" : "direct";
    },
    command: (topic, payload, ref = "") => command(topic, payload, ref),
    // publish sends a message to the devices; one on a command topic is a
    // command, followed until its device confirms it.
    publish: (topic, payload, ref = "") => (isCommand(topic) ? command(topic, payload, ref) : hub.publish(topic, payload)),
    // deviceCommand commands an entity of a device of the hub's model
    // (clown.talk/-/command); the hub encodes value for the device.
    deviceCommand: (device, entity, value, topic, ref = "") => {
      topics.delete(entityKey(device, entity));
      topics.set(entityKey(device, entity), topic);
      if (topics.size > MAX_TOPICS) topics.delete(topics.keys().next().value);
      command({ device, entity }, value, ref);
    },
    retry: () => hub.reconnect(),
  };
  // Back from the back-forward cache, the connection was closed when the
  // page was hidden: start again.
  addEventListener("pageshow", (e) => e.persisted && location.reload());
  return link;
}

// commandOf is the store's command of a library "command" event.
function commandOf(c, ref, state, topics) {
  const cmd = { id: c.id, ref, topic: c.device ? topics.get(entityKey(c.device, c.entity)) ?? "" : c.topic, payload: c.payload, state: c.state, code: c.code, error: "", ms: c.ms, reported: c.reported };
  if (c.device) Object.assign(cmd, { device: c.device, entity: c.entity });
  if (c.state !== "failed") return cmd;
  if (c.code === "connection-lost") Object.assign(cmd, { code: "", error: LOST });
  else if (c.code === "unavailable" && state !== "live") Object.assign(cmd, { code: "", error: NOT_CONNECTED });
  else if (!failureText(c.code, c.reported, true)) cmd.error = c.message || c.code;
  return cmd;
}
