// HubClient is one Clown.Talk session with the hub over its WebSocket, kept
// alive: it reconnects with backoff and resumes from the last event id it
// saw, tracks commands until their devices confirm them, and remembers the
// last value of every topic and the recent lines, so that a tab that joins
// later starts complete. It uses no DOM: it runs in the SharedWorker that
// the tabs share, or in a tab of its own when there is no SharedWorker.
//
// Listeners get plain objects (they cross postMessage):
//   {type: "snapshot", status, values: [{topic, payload, time}], lines, commands}
//   {type: "status", status}
//   {type: "lines", lines: [{dir: "in"|"out", topic, payload, id, time}]}  every line, in order
//   {type: "state", values: [{topic, payload, time}], resync}  last values from the hub
//   {type: "command", command: {id, ref, topic, payload, state, error, ms, reported}}
//   {type: "notice", level: "info"|"warn"|"error", text, topic}
// Times are milliseconds since the epoch.

import { CONTROL, isCommand } from "./topics.js";

const KEEP_LINES = 300; // recent lines a joining tab gets
const KEEP_COMMANDS = 50; // recent commands a joining tab gets
const BACKOFF_FIRST = 500; // ms; doubles per failed attempt
const BACKOFF_MAX = 10_000;
const CONNECT_TIMEOUT = 10_000; // a handshake that takes longer is given up
const QUIET_PROBE = 20_000; // after this long without a frame, ask the hub for one
const PROBE_TIMEOUT = 10_000; // and if none comes, the connection is dead

export const LOST = "the connection to the hub was lost before the device confirmed; the command may or may not have been carried out";
export const NOT_CONNECTED = "not connected to the hub";

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
  #seq = 0;
  #started = false;
  #resync = ""; // the reason of a resync whose state/ok is still to come

  values = new Map(); // topic → {payload, time}
  lines = [];
  commands = new Map(); // id → command, the recent ones
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
    tabs: 1, // tabs sharing this session (set by the worker)
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
      const config = { ack: true, ids: true, subscribe: ["#"] };
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
    for (const cmd of all) this.#settle(cmd, { state: "failed", error });
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
        if (topic !== CONTROL + "subscribe/ok") this.#record([{ dir: "in", topic, payload, id: "", time: now }]);
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
        });
        // A first session starts from now: ask for the last values. One that
        // resumes gets what it missed, or a resync with the last values.
        if (fresh) this.#sendRaw(CONTROL + "state/get", { filter: "#" });
        break;
      }
      case "resync":
        this.#resync = p?.reason || "unknown reason";
        this.#setStatus({ resumed: "resynced" });
        this.#notice("warn", `Messages missed while disconnected could not be replayed (${this.#resync}). The values shown are the current ones.`);
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
        const list = this.#pending.get(p.topic);
        const cmd = list?.shift();
        if (list && list.length === 0) this.#pending.delete(p.topic);
        if (!cmd) break;
        this.#settle(cmd, {
          state: p.ok ? "ok" : "failed",
          ms: p.ms ?? 0,
          error: p.ok ? "" : p.error || "failed",
          reported: p.state,
        });
        break;
      }
      case "error": {
        const topic = p?.topic ?? "";
        // A command the hub refused gets no ack: fail it here. When its
        // publish failed ("unavailable"), the ack came first and settled it.
        const list = this.#pending.get(topic);
        if (list?.length && p.code !== "unavailable") {
          const cmd = list.pop();
          if (list.length === 0) this.#pending.delete(topic);
          this.#settle(cmd, { state: "failed", error: `${p.code}: ${p.message}` });
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
