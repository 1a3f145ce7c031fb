// motehub.js: the client of a motehub hub, for pages and for Node 20+.
// One ES module, no dependencies, no build step; served by the hub at
// /motehub.js, with its TypeScript declarations at /motehub.d.ts.
//
//   import { connect } from "/motehub.js";
//   const hub = connect("/", { subscribe: ["nodes/#"] });
//   hub.on("message", (m) => console.log(m.topic, m.payload));
//   await hub.command("nodes/bridge/0/relay/i2c0-3b/set", { state: true });
//
// It keeps one session with the hub alive: over a WebSocket (Clown.Talk),
// or, when no WebSocket opens (a proxy that refuses Upgrade), over
// Server-Sent Events with POST /api/publish, or else over a long poll
// (/api/poll); the events are the same, and from a fallback it tries the
// WebSocket again now and then, moving back to it without a gap when it
// opens. It reconnects with exponential
// backoff and full jitter, watches the connection (a dead one is noticed
// within the heartbeat), resumes after the last event id it delivered (kept
// in sessionStorage where there is one, so that a reload resumes too), and
// says "resync" with the current values when the hub cannot replay what
// was missed. With shared: true, the tabs of one browser share one
// connection through a SharedWorker running this same module.
//
// docs/client.md is the guide: the API, the events and the guarantees.

/** @typedef {{topic: string, payload: any, id: string, time: number, retained: boolean}} Message */
/** @typedef {{topic: string, payload: any, time: number, retained: boolean}} Value */
/** @typedef {{state: "connecting"|"open"|"closed"|"offline"|"unavailable", transport: string, attempt: number, retryIn: number, reason: string, code: number, tabs: number}} Status */
/** @typedef {Client | SharedClient} MotehubClient what connect returns (motehub.d.ts declares its API) */

export const VERSION = "2";

const CONTROL = "clown.talk/-/";
const TRANSPORTS = ["websocket", "sse", "poll"];
const STORAGE_PREFIX = "motehub:last-id:";
const SHARED_PREFIX = "motehub-shared:";
const MAX_PENDING = 1000; // commands and requests waiting for an answer at once
const FALLBACK_AFTER = 3; // failed attempts in a row of a first transport that worked before the others are tried
const MAX_REFUSED = 100; // topics of refused commands whose error frame is not repeated as "error"
const POLL_WAIT = 25; // seconds a long poll waits on the hub
const POLL_EARLY_PAUSE = 1000; // ms before the next poll after an empty one answered early (a hub shutting down answers at once)
const ERROR_GRACE = 1000; // ms a WebSocket's error event waits for its close event
const WORKER_START_TIMEOUT = 4000; // a SharedWorker that says nothing by then is not used
const BATCH_PACE = 25; // ms an event to a tab may wait for others (the shared worker's batches)
const BATCH_MAX = 100; // entries in one batch to a tab: the tab handles a batch in one task

/**
 * connect opens a session with the hub at url (a page's own hub when
 * omitted in a browser): "http://host:8080", "/", or a WebSocket address
 * such as "ws://host:8080/ws/nodes/bridge/0" (a mounted base).
 * @param {string} [url]
 * @param {object} [options] see motehub.d.ts (ConnectOptions)
 * @returns {MotehubClient}
 */
export function connect(url, options = {}) {
  if (options.shared && typeof SharedWorker === "function" && typeof location !== "undefined") {
    return new SharedClient(url, options);
  }
  return new Client(url, options);
}

/**
 * CommandError is how a command or a request fails: code is "timeout",
 * "state-differs", "offline", "forbidden", "unavailable",
 * "connection-lost", or another of the hub's error codes.
 */
export class CommandError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {object} [details] topic, state (what the device reported)
   */
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "CommandError";
    this.code = code;
    this.topic = details.topic ?? "";
    this.state = details.state;
    this.id = details.id ?? "";
  }
}

// Emitter keeps the listeners of the events.
class Emitter {
  #listeners = new Map();

  on(event, fn) {
    if (typeof fn !== "function") throw new TypeError("on(event, fn): fn must be a function");
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(event, value) {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (err) {
        if (event === "error") console.error(err);
        else this.emit("error", { code: "listener", message: `a "${event}" listener threw: ${err?.message ?? err}`, topic: "", cause: err });
      }
    }
  }
}

// Client is a session of its own with the hub (not shared with tabs).
class Client extends Emitter {
  #opts;
  #ends; // the hub's addresses: ws, events, api, base
  #filters; // the subscriptions: kept across reconnects
  #transports;
  #transport = null; // the open or opening transport
  #kind = 0; // index into #transports of the transport tried now
  #worked = -1; // index of the last transport that opened
  #firstWorked = false; // the first transport (the WebSocket) has opened before
  #firstFailures = 0; // attempts in a row of the first transport that did not open
  #attempt = 0;
  #openedAt = 0;
  #retryTimer = 0;
  #closed = false;
  #fresh = true; // no session has started yet: the first one sends "state"
  #lastId = "";
  #storage;
  #storeTimer = 0;
  #commands = new Map(); // id → pending command, ≤ MAX_PENDING
  #seq = 0;
  #refused = new Map(); // topic → refused commands whose error frame is still to come, ≤ MAX_REFUSED topics
  #waitingOpen = new Set(); // requests waiting for the attempt under way to open, ≤ MAX_PENDING
  #starting = true; // the first attempt is yet to start
  #probe = null; // a WebSocket tried while a fallback serves: it takes over once it opens
  #probeTimer = 0;
  #probeFailures = 0; // WebSocket retries from a fallback that failed in a row
  #onOnline = () => this.#wake();
  #onOffline = () => this.#offline();
  status = /** @type {Status} */ ({ state: "connecting", transport: "", attempt: 0, retryIn: 0, reason: "", code: 0, tabs: 1 });
  /** Who the session acts as, from the hub (config/ok, or /api/me on a fallback); null until it says. */
  session = null;
  mode = "direct";

  constructor(url, options) {
    super();
    this.#opts = withDefaults(options);
    this.#ends = endpoints(url);
    this.#filters = new Set(this.#opts.subscribe);
    this.#transports = this.#opts.transports.filter((t) => TRANSPORTS.includes(t));
    if (this.#transports.length === 0) throw new TypeError(`transports must name some of ${TRANSPORTS.join(", ")}`);
    this.#storage = this.#opts.storage === undefined ? sessionStorageOrNull() : this.#opts.storage;
    this.#lastId = this.#opts.since ?? this.#load();
    globalThis.addEventListener?.("online", this.#onOnline);
    globalThis.addEventListener?.("offline", this.#onOffline);
    globalThis.addEventListener?.("pagehide", () => this.#save());
    queueMicrotask(() => this.#connect());
  }

  /** The id of the last event delivered: a session resumes after it. */
  get lastId() {
    return this.#lastId;
  }

  /** The subscriptions, as they will be after the pending requests. */
  get filters() {
    return [...this.#filters];
  }

  // ---- the public API (see motehub.d.ts) ----

  async subscribe(filters) {
    const list = filterList(filters);
    for (const f of list) this.#filters.add(f);
    if (this.#isOpen()) await this.#refilter("subscribe", list);
  }

  async unsubscribe(filters) {
    const list = filterList(filters);
    for (const f of list) this.#filters.delete(f);
    if (this.#isOpen()) await this.#refilter("unsubscribe", list);
  }

  async state(filter = [...this.#filters]) {
    const list = filterList(filter);
    await this.#whenOpen();
    return this.#request().state(list);
  }

  async devices() {
    await this.#whenOpen();
    return this.#request().devices();
  }

  async command(target, payload, { timeout = this.#opts.commandTimeout } = {}) {
    const device = typeof target === "object" && target !== null ? target : null;
    if (device ? typeof device.device !== "string" || typeof device.entity !== "string" : typeof target !== "string" || target === "") {
      throw new TypeError("command(target, payload): target must be a topic or {device, entity}");
    }
    const topic = device ? CONTROL + "command" : target;
    const id = `c${++this.#seq}`; // ids grow: a later command has a larger one
    const fail = (code, message) => {
      this.#commandEvent({ id, topic, device: device?.device, entity: device?.entity, payload, state: "failed", code, message, ms: 0 });
      throw new CommandError(code, message, { topic, id });
    };
    // Open when asked, the session may have ended (or the client closed)
    // before this runs.
    if (!(await this.#whenOpen()) || !this.#isOpen()) fail(this.#closed ? "connection-lost" : "unavailable", "not connected to the hub: the command was not sent");
    if (this.#commands.size >= MAX_PENDING) fail("limit", `${MAX_PENDING} commands are already waiting for their devices`);
    return new Promise((resolve, reject) => {
      const cmd = { id, topic, payload, device: device?.device, entity: device?.entity, sent: Date.now(), resolve, reject, timer: 0, differed: undefined };
      cmd.timer = setTimeout(() => this.#settle(id, cmd.differed !== undefined ? { code: "state-differs", state: cmd.differed } : { code: "timeout" }), timeout);
      this.#commands.set(id, cmd);
      this.#commandEvent({ id, topic, device: cmd.device, entity: cmd.entity, payload, state: "pending", code: "", message: "", ms: 0 });
      this.#transport.command(cmd).catch((err) => this.#settle(id, { code: err?.code || "unavailable", message: err?.message }));
    });
  }

  publish(topic, payload) {
    // A refusal over HTTP is an "error" event already (HTTPRequests.publish).
    const send = () => this.#transport.publish(topic, payload)?.catch?.(() => {});
    if (this.#isOpen()) return void send();
    this.#whenOpen().then((open) => {
      if (open) send();
      else this.emit("error", { code: "unavailable", message: `not connected to the hub: ${topic} was not published`, topic });
    });
  }

  /** Tries to connect now, when the client waits before its next attempt. */
  reconnect() {
    if (this.#closed || this.#transport) return;
    this.#attempt = 0;
    this.#connect();
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#stopProbe();
    globalThis.removeEventListener?.("online", this.#onOnline);
    globalThis.removeEventListener?.("offline", this.#onOffline);
    this.#save();
    const t = this.#transport;
    this.#transport = null;
    t?.close();
    this.#failCommands("connection-lost", "the client was closed");
    this.#setStatus({ state: "closed", retryIn: 0 });
    this.#wakeWaiting();
  }

  // ---- what the transports call ----

  /** @internal the transport t opened a session with the hub. */
  _opened(t) {
    if (t !== this.#transport) return;
    this.#worked = this.#kind;
    if (this.#kind === 0) {
      this.#firstWorked = true;
      this.#firstFailures = 0;
      this.#probeFailures = 0;
    }
    this.#openedAt = Date.now();
    this.#setStatus({ state: "open", transport: t.name, attempt: this.#attempt, retryIn: 0, reason: "" });
    this.#wakeWaiting();
    if (this.#kind > 0) {
      // A fallback: who the session is comes from /api/me, and the
      // WebSocket is tried again after a while.
      t.announce?.();
      this.#planProbe();
    }
    if (this.#fresh && this.#opts.state) {
      this.#fresh = false;
      t.state([...this.#filters]).then(
        (values) => t === this.#transport && this.emit("state", { values, resync: false }),
        (err) => this.emit("error", { code: err?.code || "unavailable", message: `the last values did not come: ${err?.message}`, topic: "" }),
      );
    }
    this.#fresh = false;
  }

  /** @internal the hub said who the session is (config/ok); resumed: it was asked to resume. */
  _session(t, p, resumed) {
    if (t !== this.#transport) return;
    const rights = Array.isArray(p?.rules) ? p.rules.filter((r) => r && typeof r.filter === "string") : [];
    this.session = {
      id: String(p?.session ?? ""),
      epoch: String(p?.epoch ?? ""),
      boot: String(p?.boot ?? ""),
      user: String(p?.user ?? ""),
      open: p?.open === true,
      admin: p?.admin === true,
      rules: rights.map((r) => ({ filter: r.filter, read: r.read === true, write: r.write === true })),
      resumed,
    };
    this.emit("session", { ...this.session });
  }

  /** @internal a frame that is no message of the stream, to or from the hub. */
  _frame(dir, topic, payload) {
    if (this.#opts.frames) this.emit("frame", { dir, topic, payload, time: Date.now() });
  }

  /** @internal a message of the stream. */
  _message(t, topic, payload, id) {
    if (t !== this.#transport) return;
    if (id) this.#setLastId(id);
    const m = { topic, payload, id: id || "", time: Date.now(), retained: false };
    this.#observeForCommands(topic, payload);
    this.emit("message", m);
  }

  /** @internal the hub could not replay: values are its last values now, id where they are current. */
  _resync(t, notice, values, id) {
    if (t !== this.#transport) return;
    if (id) this.#setLastId(id);
    const reason = { code: notice?.code ?? "", reason: notice?.reason ?? "", values };
    this.emit("resync", reason);
    this.emit("state", { values, resync: true });
  }

  /** @internal the stream's position moved without a message. */
  _position(t, id) {
    if (t === this.#transport && id) this.#setLastId(id);
  }

  /** @internal a device of the hub's model changed. */
  _device(t, device) {
    if (t === this.#transport) this.emit("device", device);
  }

  /** @internal an ack: the command named id ended. */
  _ack(t, p) {
    // An HTTP command's answer still counts once the WebSocket took over.
    if ((t !== this.#transport && t.acks) || typeof p?.id !== "string") return;
    const cmd = this.#commands.get(p.id);
    if (!cmd) return;
    if (p.ok) {
      this.#settle(p.id, { ok: true, ms: p.ms ?? Date.now() - cmd.sent });
      return;
    }
    const code = p.code || legacyCode(p.error);
    this.#refused.set(cmd.topic, (this.#refused.get(cmd.topic) ?? 0) + 1);
    if (this.#refused.size > MAX_REFUSED) this.#refused.delete(this.#refused.keys().next().value);
    const known = describeCode(code) !== code;
    this.#settle(p.id, { code, message: known ? describeCode(code) : p.error || code, state: p.state });
  }

  /** @internal an error the hub reported. */
  _error(t, e) {
    if (t !== this.#transport && t !== null) return;
    // A refused device command may be answered by an error naming it
    // before its ack: the command's rejection says it.
    if (typeof e.id === "string" && this.#commands.get(e.id)?.topic === e.topic) {
      this.#settle(e.id, { code: e.code ?? "error", message: e.message });
      return;
    }
    const refused = e.topic ? this.#refused.get(e.topic) : undefined;
    if (refused !== undefined) {
      // its command's rejection says it
      if (refused > 1) this.#refused.set(e.topic, refused - 1);
      else this.#refused.delete(e.topic);
      if (refused > 0) return;
    }
    if (e.code === "unavailable" && this.status.state === "open") this.#setStatus({ state: "unavailable", reason: e.message });
    this.emit("error", { code: e.code ?? "error", message: e.message ?? "", topic: e.topic ?? "" });
  }

  /** @internal the hub answered: the connection is alive. */
  _heard(t) {
    if (t === this.#transport && this.status.state === "unavailable") this.#setStatus({ state: "open", reason: "" });
  }

  /** @internal transport t ended; opened says whether it had opened. */
  _ended(t, opened, reason, code = 0) {
    if (t === this.#probe) {
      this.#probe = null;
      this.#probeFailures++;
      this.#planProbe();
      return;
    }
    if (t !== this.#transport) return;
    this.#transport = null;
    this.#stopProbe(); // the next attempt starts from the first transport or the one that worked
    this.status.code = code; // told with the next status
    this.#failCommands("connection-lost", "the connection to the hub was lost before the device confirmed: the command may or may not have been carried out");
    if (this.#closed) return;
    if (opened && Date.now() - this.#openedAt >= this.#opts.backoff.stable) this.#attempt = 0;
    // A transport that never opened: the next one is tried at once; after
    // the last, the one that last worked (or the first) after a backoff.
    // But a WebSocket that worked before and fails now is most likely a hub
    // that restarts, not a proxy that started refusing it: it is tried
    // again, and the others (which carry no device events) only after
    // FALLBACK_AFTER failures in a row.
    if (!opened && this.#kind === 0) this.#firstFailures++;
    const fallBack = this.#kind > 0 || !this.#firstWorked || this.#firstFailures >= FALLBACK_AFTER;
    if (!opened && this.#kind + 1 < this.#transports.length && fallBack) {
      this.#kind++;
      this.#setStatus({ state: "connecting", reason });
      this.#connect();
      return;
    }
    this.#kind = fallBack ? Math.max(this.#worked, 0) : 0;
    this.#scheduleRetry(reason, t.refused);
    this.#wakeWaiting();
  }

  /** @internal the settings transports read. */
  get _options() {
    return this.#opts;
  }

  /** @internal the hub's addresses. */
  get _ends() {
    return this.#ends;
  }

  // ---- the connection ----

  // refilter tells the open transport that the subscriptions changed; an
  // event stream, whose filters are in its address, starts again at once
  // from the last id.
  async #refilter(op, list) {
    const t = this.#transport;
    if (t.name !== "sse") return t[op](list);
    t.close();
    this.#transport = null;
    this.#connect();
  }

  #isOpen() {
    return this.#transport !== null && this.#transport.open;
  }

  // whenOpen resolves true when the session is open, or once the attempt
  // under way opens it (within connectTimeout); false when there is none:
  // closed, offline, or waiting before the next attempt. So a request made
  // right after connect() (or in a tab whose shared worker has just started)
  // waits for the connection instead of failing.
  #whenOpen() {
    if (this.#isOpen()) return Promise.resolve(true);
    if (this.#closed || (this.#transport === null && !this.#starting) || this.#waitingOpen.size >= MAX_PENDING) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w = { resolve, timer: 0 };
      w.timer = setTimeout(() => this.#waitingOpen.delete(w) && resolve(this.#isOpen()), this.#opts.connectTimeout);
      this.#waitingOpen.add(w);
    });
  }

  // wakeWaiting answers the requests waiting for an open: the session
  // opened, or the attempt failed and the next waits (or the client closed).
  #wakeWaiting() {
    if (this.#transport !== null && !this.#isOpen() && !this.#closed) return; // another transport is being tried now
    const open = this.#isOpen();
    for (const w of this.#waitingOpen) {
      clearTimeout(w.timer);
      w.resolve(open);
    }
    this.#waitingOpen.clear();
  }

  #request() {
    if (this.#isOpen()) return this.#transport;
    // Requests that need no stream work over HTTP while the stream is down.
    return new HTTPRequests(this);
  }

  #connect() {
    this.#starting = false;
    if (this.#closed) return;
    clearTimeout(this.#retryTimer);
    const name = this.#transports[this.#kind];
    this.#setStatus({ state: this.status.state === "offline" ? "offline" : "connecting", transport: name, attempt: this.#attempt, retryIn: 0 });
    const T = name === "websocket" ? WSTransport : name === "sse" ? SSETransport : PollTransport;
    this.#transport = new T(this, [...this.#filters], this.#lastId);
    this.#transport.start();
  }

  #scheduleRetry(reason, refused) {
    const { initial, max } = this.#opts.backoff;
    const delay = Math.round(Math.random() * Math.min(max, initial * 2 ** this.#attempt)); // full jitter
    this.#attempt++;
    const offline = globalThis.navigator?.onLine === false;
    this.#setStatus({ state: offline ? "offline" : refused ? "unavailable" : "connecting", attempt: this.#attempt, retryIn: offline ? 0 : delay, reason });
    if (!offline) this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  // wake: back online, try now.
  #wake() {
    if (this.#closed || this.#transport) return;
    this.#attempt = 0;
    this.#connect();
  }

  #offline() {
    if (this.#closed) return;
    clearTimeout(this.#retryTimer);
    this.#stopProbe();
    const t = this.#transport;
    this.#transport = null;
    t?.close();
    this.#failCommands("connection-lost", "the browser went offline before the device confirmed: the command may or may not have been carried out");
    this.#setStatus({ state: "offline", retryIn: 0, reason: "the browser is offline" });
    this.#wakeWaiting();
  }

  // ---- back to the WebSocket from a fallback ----

  // planProbe tries the WebSocket again, while a fallback serves, after a
  // bounded backoff: backoff.upgrade ms, doubling with each failure, at
  // most backoff.upgradeMax (with jitter: tabs of many browsers behind one
  // proxy do not come back at once).
  #planProbe() {
    if (this.#closed || this.#probe || this.#probeTimer || this.#transports[0] !== "websocket") return;
    const t = this.#transport;
    if (!t || !t.open || this.#kind === 0) return;
    const { upgrade, upgradeMax } = this.#opts.backoff;
    const delay = Math.min(upgradeMax, upgrade * 2 ** Math.min(this.#probeFailures, 30));
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = 0;
      if (this.#closed || this.#transport !== t || !t.open) return;
      this.#probe = new WSTransport(this, [], "", (p) => this.#takeOver(p));
      this.#probe.start();
    }, Math.round(delay * (0.5 + Math.random() / 2)));
  }

  // takeOver: the probe's WebSocket opened. The fallback stops now, so the
  // last id is final, and the WebSocket's session resumes after it: no
  // gap, no duplicate. Requests made meanwhile wait for it.
  #takeOver(p) {
    if (p !== this.#probe) return;
    this.#probe = null;
    clearTimeout(this.#retryTimer);
    const old = this.#transport;
    this.#transport = p;
    this.#kind = 0;
    old?.close();
    p.begin([...this.#filters], this.#lastId);
  }

  #stopProbe() {
    clearTimeout(this.#probeTimer);
    this.#probeTimer = 0;
    const p = this.#probe;
    this.#probe = null;
    p?.close();
  }

  #setStatus(change) {
    Object.assign(this.status, change);
    this.emit("status", { ...this.status });
  }

  // ---- commands ----

  // settle ends a command, once.
  #settle(id, result) {
    const cmd = this.#commands.get(id);
    if (!cmd) return;
    this.#commands.delete(id);
    cmd.settled = true;
    clearTimeout(cmd.timer);
    const message = result.ok ? "" : result.message || describeCode(result.code);
    this.#commandEvent({ id, topic: cmd.topic, device: cmd.device, entity: cmd.entity, payload: cmd.payload, state: result.ok ? "ok" : "failed", code: result.ok ? "" : result.code, message, ms: result.ok ? result.ms : 0, reported: result.state });
    if (result.ok) cmd.resolve({ ok: true, ms: result.ms, id });
    else cmd.reject(new CommandError(result.code, message, { topic: cmd.topic, state: result.state, id }));
  }

  // commandEvent tells listeners how a command is doing ("command" events).
  #commandEvent(c) {
    if (c.device === undefined) {
      delete c.device;
      delete c.entity;
    }
    if (c.reported === undefined) delete c.reported;
    this.emit("command", c);
  }

  #failCommands(code, message) {
    for (const id of [...this.#commands.keys()]) this.#settle(id, { code, message });
  }

  // observeForCommands confirms, for transports without the hub's acks,
  // the commands that a device's state confirms (as the hub does: the
  // topic without "/set" shows every field asked for).
  #observeForCommands(topic, payload) {
    if (this.#commands.size === 0) return; // only commands sent over HTTP have a stateTopic
    for (const cmd of [...this.#commands.values()]) {
      if (cmd.stateTopic !== topic) continue;
      if (covers(cmd.payload, payload)) this.#settle(cmd.id, { ok: true, ms: Date.now() - cmd.sent });
      else cmd.differed = payload;
    }
  }

  /** @internal a state read by a transport without acks, for a command. */
  _observeValue(topic, payload) {
    this.#observeForCommands(topic, payload);
  }

  // ---- the last id ----

  #setLastId(id) {
    this.#lastId = id;
    if (this.#storage && !this.#storeTimer) {
      this.#storeTimer = setTimeout(() => this.#save(), 1000);
    }
  }

  #storageKey() {
    return STORAGE_PREFIX + this.#ends.ws + "?" + [...this.#opts.subscribe].sort().join(",");
  }

  #load() {
    try {
      return this.#storage?.getItem(this.#storageKey()) ?? "";
    } catch {
      return "";
    }
  }

  #save() {
    clearTimeout(this.#storeTimer);
    this.#storeTimer = 0;
    try {
      if (this.#lastId) this.#storage?.setItem(this.#storageKey(), this.#lastId);
    } catch {
      // storage full or refused: a reload starts afresh
    }
  }
}

// ---- transports ----
//
// A transport is one attempt at a session: it starts, calls the client's
// _opened when the hub accepted it, feeds it messages, and calls _ended
// once. subscribe, unsubscribe, state, devices, command and publish act on
// the open session.

// WSTransport is a Clown.Talk session over a WebSocket.
class WSTransport {
  name = "websocket";
  acks = true; // the hub confirms commands itself
  open = false;
  refused = false;
  #c;
  #ws = null;
  #filters;
  #since;
  #ended = false;
  #waiting = { subscribe: [], unsubscribe: [], state: [], devices: [] }; // FIFO of requests per answer, ≤ MAX_PENDING each
  #resyncing = null; // the notice of a resync whose state/ok is next
  #heard = 0;
  #watch = 0;
  #probe = false;
  #openTimer = 0;
  #errorTimer = 0;
  #onSocket; // when set, the socket's opening is told to it, which calls begin

  constructor(client, filters, since, onSocket = null) {
    this.#c = client;
    this.#filters = filters;
    this.#since = since;
    this.#onSocket = onSocket;
  }

  // begin configures the session: the filters, and the id to resume after.
  begin(filters, since) {
    this.#filters = filters;
    this.#since = since;
    const config = { subscribe: this.#filters, ack: true, ids: true, devices: this.#c._options.devices };
    if (this.#since) config.since = this.#since;
    this.#send(CONTROL + "config/set", config);
  }

  start() {
    const opts = this.#c._options;
    const WS = opts.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== "function") {
      queueMicrotask(() => this.#end("no WebSocket here: give connect() the WebSocket option (the ws package)"));
      return;
    }
    const headers = authHeaders(opts.auth);
    let ws;
    try {
      if (!headers) ws = new WS(this.#c._ends.ws, "clown.talk");
      else if (typeof WS.prototype.on === "function") ws = new WS(this.#c._ends.ws, "clown.talk", { headers }); // ws
      else ws = new WS(this.#c._ends.ws, { protocols: ["clown.talk"], headers }); // Node's own (undici)
    } catch (err) {
      queueMicrotask(() => this.#end(`cannot open ${this.#c._ends.ws}: ${err?.message}`));
      return;
    }
    this.#ws = ws;
    this.#openTimer = setTimeout(() => this.#end("the hub did not answer in time"), opts.connectTimeout);
    ws.onopen = () => {
      this.#hear();
      if (this.#onSocket) this.#onSocket(this);
      else this.begin(this.#filters, this.#since);
    };
    ws.onmessage = (e) => this.#receive(typeof e.data === "string" ? e.data : String(e.data));
    // onclose follows, with the code; but Node 20's WebSocket (undici) says
    // nothing more of a handshake that was refused: the attempt ends anyway.
    ws.onerror = () => {
      this.#errorTimer ||= setTimeout(() => this.#end("the WebSocket failed"), ERROR_GRACE);
    };
    ws.onclose = (e) => this.#end(closeText(e.code, e.reason), e.code);
    if (typeof ws.on === "function") ws.on("ping", () => this.#hear()); // the ws package shows the hub's pings
  }

  close() {
    this.#ended = true;
    this.#stop();
  }

  subscribe(filters) {
    return this.#ask("subscribe", CONTROL + "subscribe", filters);
  }

  unsubscribe(filters) {
    return this.#ask("unsubscribe", CONTROL + "unsubscribe", filters);
  }

  async state(filters) {
    const p = await this.#ask("state", CONTROL + "state/get", { filter: filters });
    return valuesOf(p?.values);
  }

  async devices() {
    const p = await this.#ask("devices", CONTROL + "devices/get", {});
    return Array.isArray(p?.devices) ? p.devices : [];
  }

  async command(cmd) {
    if (cmd.device !== undefined) this.#send(CONTROL + "command", { device: cmd.device, entity: cmd.entity, value: cmd.payload, id: cmd.id });
    else this.#send(cmd.topic, cmd.payload, { id: cmd.id });
  }

  publish(topic, payload) {
    this.#send(topic, payload);
  }

  #send(topic, payload, meta) {
    const line = meta ? [topic, payload, meta] : [topic, payload];
    this.#ws.send(JSON.stringify(line) + "\n");
    this.#c._frame("out", topic, payload);
  }

  #ask(kind, topic, payload) {
    return new Promise((resolve, reject) => {
      if (!this.open) return reject(new CommandError("unavailable", "not connected to the hub"));
      if (this.#waiting[kind].length >= MAX_PENDING) return reject(new CommandError("limit", `${MAX_PENDING} ${kind} requests are already waiting`));
      this.#waiting[kind].push({ resolve, reject });
      this.#send(topic, payload);
    });
  }

  #answer(kind, value) {
    this.#waiting[kind].shift()?.resolve(value);
  }

  #hear() {
    this.#heard = Date.now();
    this.#probe = false;
    if (this.#watch) return;
    // The watchdog: the hub pings every few seconds, which a browser does not
    // show, so after half the heartbeat in silence it asks for an answer
    // (subscribe to nothing), and ends the session when none came by the
    // heartbeat.
    const beat = this.#c._options.heartbeat;
    const check = () => {
      if (this.#ended) return;
      const quiet = Date.now() - this.#heard;
      if (quiet >= beat) return this.#end("the hub stopped answering");
      if (quiet >= beat / 2 && !this.#probe && this.open) {
        this.#probe = true;
        this.#waiting.subscribe.push({ resolve() {}, reject() {} });
        this.#send(CONTROL + "subscribe", []);
      }
      this.#watch = setTimeout(check, Math.max(100, Math.min(beat / 4, beat - quiet)));
    };
    this.#watch = setTimeout(check, beat / 4);
  }

  #receive(data) {
    this.#hear();
    this.#c._heard(this);
    for (const text of data.split("\n")) {
      if (text === "" || this.#ended) continue;
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        this.#c._error(this, { code: "bad-json", message: `the hub sent a line that is not JSON: ${text.slice(0, 120)}` });
        continue;
      }
      if (!Array.isArray(line) || typeof line[0] !== "string" || line.length < 2) continue;
      const [topic, payload, meta] = line;
      if (topic.startsWith(CONTROL)) {
        // A device frame is a "device" event already (and 500 devices send thousands a second).
        if (topic !== CONTROL + "device") this.#c._frame("in", topic, payload);
        this.#control(topic.slice(CONTROL.length), payload);
      }
      else this.#c._message(this, topic, payload, typeof meta?.id === "string" ? meta.id : "");
    }
  }

  #control(kind, p) {
    switch (kind) {
      case "config/ok":
        clearTimeout(this.#openTimer);
        if (this.open) return; // a later config/ok answers nothing of ours
        this.open = true;
        if (p?.id && !this.#since) this.#c._position(this, p.id);
        this.#c._session(this, p, this.#since !== "");
        this.#c._opened(this);
        return;
      case "subscribe/ok":
        return this.#answer("subscribe");
      case "unsubscribe/ok":
        return this.#answer("unsubscribe");
      case "devices/ok":
        return this.#answer("devices", p);
      case "device":
        return this.#c._device(this, p);
      case "resync":
        this.#resyncing = p ?? {};
        return;
      case "state/ok":
        if (this.#resyncing) {
          const notice = this.#resyncing;
          this.#resyncing = null;
          this.#c._resync(this, notice, valuesOf(p?.values), p?.id);
          return;
        }
        return this.#answer("state", p);
      case "ack":
        return this.#c._ack(this, p);
      case "error":
        return this.#error(p ?? {});
    }
  }

  // error answers the request it is about, or tells the client.
  #error(e) {
    const kinds = { subscribe: "subscribe", unsubscribe: "unsubscribe", "state/get": "state", "devices/get": "devices", "config/set": "config" };
    const kind = kinds[(e.topic ?? "").slice(CONTROL.length)];
    if (kind === "config") {
      this.refused = true;
      this.#end(`the hub refused the session: ${e.code}: ${e.message}`);
      return;
    }
    const waiting = kind && (e.topic ?? "").startsWith(CONTROL) ? this.#waiting[kind].shift() : undefined;
    if (waiting) waiting.reject(new CommandError(e.code ?? "error", e.message ?? "", { topic: e.topic }));
    else this.#c._error(this, e);
  }

  #stop() {
    clearTimeout(this.#openTimer);
    clearTimeout(this.#errorTimer);
    clearTimeout(this.#watch);
    const ws = this.#ws;
    if (ws && ws.readyState < 2) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    for (const list of Object.values(this.#waiting)) {
      for (const w of list.splice(0)) w.reject(new CommandError("connection-lost", "the connection to the hub was lost"));
    }
  }

  #end(reason, code = 0) {
    if (this.#ended) return;
    this.#ended = true;
    const opened = this.open;
    this.open = false;
    if (code === 4003 || code === 1008) this.refused = true;
    this.#stop();
    this.#c._ended(this, opened, reason, code);
  }
}

// HTTPRequests are the requests that go over plain HTTP: the last values,
// the devices, publishing, and commands confirmed by watching the state.
class HTTPRequests {
  acks = false;
  resumed = false; // the session was asked to resume (SSETransport, PollTransport)
  #c;

  constructor(client) {
    this.#c = client;
  }

  get _client() {
    return this.#c;
  }

  async fetchJSON(path, init = {}) {
    const { api } = this.#c._ends;
    const headers = { ...(init.headers ?? {}), ...(authHeaders(this.#c._options.auth) ?? {}) };
    let res;
    try {
      res = await (this.#c._options.fetch ?? globalThis.fetch)(api + path, { credentials: "same-origin", ...init, headers });
    } catch (err) {
      throw new CommandError("unavailable", `the hub cannot be reached: ${err?.message}`);
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const e = body?.error ?? {};
      throw new CommandError(e.code || httpCode(res.status), e.message || `HTTP ${res.status}`);
    }
    return body;
  }

  async state(filters) {
    const { base } = this.#c._ends;
    const q = filters.map((f) => "filter=" + encodeURIComponent(mount(base, f))).join("&");
    const body = await this.fetchJSON(`/api/state?${q}`);
    return (body?.values ?? []).flatMap((v) => {
      const topic = unmount(base, v.topic);
      return topic === null ? [] : [{ topic, payload: v.payload, time: timeOf(v.time), retained: v.retained === true }];
    });
  }

  async devices() {
    const body = await this.fetchJSON("/api/devices");
    return Array.isArray(body?.devices) ? body.devices : [];
  }

  // announce says who the session acts as (a "session" event), from
  // GET /api/me: what config/ok says on a WebSocket. The session has no id
  // of the hub's here; its epoch is the stream's.
  announce() {
    this.fetchJSON("/api/me").then(
      (me) => {
        const c = this.#c;
        c._session(this, { ...me, session: "", epoch: c.lastId.slice(0, Math.max(0, c.lastId.lastIndexOf("-"))) }, this.resumed === true);
      },
      (err) => this.#c._error(this, { code: err?.code || "unavailable", message: `who the session is did not come: ${err?.message}`, topic: "" }),
    );
  }

  async publish(topic, payload) {
    this.#c._frame("out", topic, payload);
    try {
      await this.fetchJSON("/api/publish", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify([mount(this.#c._ends.base, topic), payload]),
      });
    } catch (err) {
      this.#c._error(null, { code: err.code, message: err.message, topic });
      throw err;
    }
  }

  // command publishes cmd and lets the client confirm it by the device's
  // state (the topic without "/set"): from the stream when the
  // subscriptions cover it, else by reading the state every half second.
  async command(cmd) {
    if (cmd.device !== undefined) return this.#deviceCommand(cmd);
    const stateTopic = cmd.topic.endsWith("/set") ? cmd.topic.slice(0, -4) : "";
    cmd.stateTopic = stateTopic;
    this.#c._frame("out", cmd.topic, cmd.payload);
    await this.fetchJSON("/api/publish", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify([mount(this.#c._ends.base, cmd.topic), cmd.payload]),
    });
    if (!stateTopic) return;
    if (this.#c.filters.some((f) => matchFilter(f, stateTopic))) return;
    const started = Date.now();
    const limit = this.#c._options.commandTimeout;
    while (Date.now() - started < limit) {
      await new Promise((r) => setTimeout(r, 500));
      const values = await this.state([stateTopic]).catch(() => []);
      for (const v of values) if (timeOfValue(v) >= cmd.sent - 1000) this.#c._observeValue(v.topic, v.payload);
      if (!cmd.stateTopic || cmd.settled) return;
    }
  }

  // deviceCommand asks the hub to command an entity of its device model
  // (POST /api/devices/{id}/command), which answers once the device
  // confirmed it, or with the command's error code.
  async #deviceCommand(cmd) {
    const body = { entity: cmd.entity, value: cmd.payload };
    this.#c._frame("out", CONTROL + "command", { device: cmd.device, ...body, id: cmd.id });
    const res = await this.fetchJSON(`/api/devices/${encodeURIComponent(cmd.device)}/command`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    this.#c._ack(this, { id: cmd.id, ok: true, ms: res?.ms });
  }
}

// timeOfValue is when a value was recorded, in ms.
function timeOfValue(v) {
  return typeof v.time === "number" ? v.time : Date.parse(v.time);
}

// SSETransport reads the hub's Server-Sent Events with fetch (so that it
// sees the keep-alive comments, sends Last-Event-ID and credentials), and
// sends over HTTP.
class SSETransport extends HTTPRequests {
  name = "sse";
  open = false;
  refused = false;
  #filters;
  #since;
  #abort = new AbortController();
  #ended = false;
  #heard = 0;
  #watch = 0;

  constructor(client, filters, since) {
    super(client);
    this.#filters = filters;
    this.#since = since;
    this.resumed = since !== "";
  }

  start() {
    this.#run().catch((err) => this.#end(err?.message ?? String(err)));
  }

  close() {
    this.#ended = true;
    clearTimeout(this.#watch);
    this.#abort.abort();
  }

  async #run() {
    const c = this._client;
    const opts = c._options;
    let q = this.#filters.map((f) => "filter=" + encodeURIComponent(f)).join("&");
    if (opts.devices) q += (q ? "&" : "") + "devices=1"; // "event: device", as the WebSocket's device frames
    const headers = { Accept: "text/event-stream", ...(authHeaders(opts.auth) ?? {}) };
    if (this.#since) headers["Last-Event-ID"] = this.#since;
    const openTimer = setTimeout(() => this.#end("the hub did not answer in time"), opts.connectTimeout);
    let res;
    try {
      res = await (opts.fetch ?? globalThis.fetch)(`${c._ends.events}?${q}`, { headers, credentials: "same-origin", signal: this.#abort.signal, cache: "no-store" });
    } finally {
      clearTimeout(openTimer);
    }
    if (!res.ok || !(res.headers.get("Content-Type") ?? "").startsWith("text/event-stream")) {
      const body = await res.json().catch(() => null);
      this.refused = res.status === 401 || res.status === 403 || res.status === 503;
      throw new Error(body?.error?.message ?? `HTTP ${res.status} from ${c._ends.events}`);
    }
    this.#hear();
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    let ev = { id: null, event: "", data: [] };
    let resync = null; // {notice, values} while a resync's values come
    while (!this.#ended) {
      const { value, done } = await reader.read();
      if (done) break;
      this.#hear();
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0 && !this.#ended) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line !== "") {
          if (line.startsWith(":")) continue; // keep-alive
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "id") ev.id = val;
          else if (field === "event") ev.event = val;
          else if (field === "data") ev.data.push(val);
          else if (field === "retry" && !this.open) {
            this.open = true;
            c._opened(this);
          }
          continue;
        }
        // A blank line: dispatch the event.
        const { id, event, data } = ev;
        ev = { id: null, event: "", data: [] };
        if (!this.open) {
          this.open = true;
          c._opened(this);
        }
        if (event === "resync") {
          resync = { notice: parseJSON(data.join("\n")) ?? {}, values: [] };
          continue;
        }
        if (event === "device") {
          const device = parseJSON(data.join("\n"));
          if (device && typeof device.id === "string") c._device(this, device);
          continue;
        }
        if (event === "close") {
          const p = parseJSON(data.join("\n")) ?? {};
          this.#end(p.message || p.reason || "the hub ended the stream");
          return;
        }
        if (data.length === 0) {
          if (id === null) continue;
          if (resync) {
            c._resync(this, resync.notice, resync.values, id);
            resync = null;
          } else c._position(this, id);
          continue;
        }
        const frame = parseJSON(data.join("\n"));
        if (!Array.isArray(frame) || typeof frame[0] !== "string") continue;
        if (resync && id === null) resync.values.push({ topic: frame[0], payload: frame[1], time: Date.now(), retained: false });
        else c._message(this, frame[0], frame[1], id ?? "");
      }
    }
    this.#end("the stream ended");
  }

  // hear keeps the watchdog: the hub sends a comment every 15 s, so a
  // stream silent for the heartbeat is dead.
  #hear() {
    this.#heard = Date.now();
    if (this.#watch) return;
    const beat = this._client._options.heartbeat;
    const check = () => {
      if (this.#ended) return;
      const quiet = Date.now() - this.#heard;
      if (quiet >= beat) return this.#end("the hub stopped answering");
      this.#watch = setTimeout(check, beat - quiet);
    };
    this.#watch = setTimeout(check, beat);
  }

  #end(reason) {
    if (this.#ended) return;
    const opened = this.open;
    this.#ended = true;
    this.open = false;
    clearTimeout(this.#watch);
    this.#abort.abort();
    this._client._ended(this, opened, reason);
  }
}

// PollTransport long-polls /api/poll.
class PollTransport extends HTTPRequests {
  name = "poll";
  open = false;
  refused = false;
  #filters;
  #since;
  #abort = null;
  #ended = false;
  #refiltered = false; // the poll in flight was cut to ask for new filters

  constructor(client, filters, since) {
    super(client);
    this.#filters = filters;
    this.#since = since;
    this.resumed = since !== "";
  }

  start() {
    this.#run().catch((err) => this.#end(err?.message ?? String(err)));
  }

  close() {
    this.#ended = true;
    this.#abort?.abort();
  }

  async subscribe() {
    this.#filters = this._client.filters;
    this.#refiltered = true;
    this.#abort?.abort(); // the next poll asks for the new filters
  }

  async unsubscribe() {
    return this.subscribe();
  }

  async #run() {
    const c = this._client;
    const opts = c._options;
    while (!this.#ended) {
      const q = this.#filters.map((f) => "filter=" + encodeURIComponent(mount(c._ends.base, f)));
      if (this.#since) q.push("since=" + encodeURIComponent(this.#since));
      // The first poll answers at once: it says where the stream is.
      const wait = this.open ? Math.min(POLL_WAIT, opts.heartbeat / 1000) : 0;
      q.push(`wait=${wait}`);
      this.#abort = new AbortController();
      const timer = setTimeout(() => this.#abort.abort(), wait * 1000 + opts.connectTimeout);
      let res;
      const asked = Date.now();
      try {
        res = await this.fetchJSON(`/api/poll?${q.join("&")}`, { signal: this.#abort.signal });
      } catch (err) {
        if (this.#ended) return;
        if (this.#refiltered) {
          this.#refiltered = false;
          continue; // poll again with the new filters, from the same id
        }
        if (err?.code === "forbidden" || err?.code === "unauthorized") this.refused = true;
        throw err;
      } finally {
        clearTimeout(timer);
      }
      if (this.#ended) return;
      if (!this.open) {
        this.open = true;
        c._opened(this);
      }
      const lines = Array.isArray(res?.messages) ? res.messages : [];
      if (wait > 0 && lines.length === 0 && !res?.resync && Date.now() - asked < wait * 500) {
        await new Promise((r) => setTimeout(r, POLL_EARLY_PAUSE)); // not a loop as fast as the hub answers
      }
      if (res?.resync) {
        const values = lines.flatMap((l) => (Array.isArray(l) ? [{ topic: unmount(c._ends.base, l[0]) ?? l[0], payload: l[1], time: Date.now(), retained: false }] : []));
        c._resync(this, res.resync, values, res.id);
      } else {
        for (const l of lines) {
          if (!Array.isArray(l) || typeof l[0] !== "string" || this.#ended) continue;
          const topic = unmount(c._ends.base, l[0]);
          if (topic !== null) c._message(this, topic, l[1], typeof l[2]?.id === "string" ? l[2].id : "");
        }
        c._position(this, res?.id);
      }
      if (res?.id) this.#since = res.id;
    }
  }

  #end(reason) {
    if (this.#ended) return;
    this.#ended = true;
    const opened = this.open;
    this.open = false;
    this.#abort?.abort();
    this._client._ended(this, opened, reason);
  }
}

// ---- sharing one connection between tabs ----

// The events a client emits, which a shared worker relays to its tabs.
const EVENTS = ["message", "state", "resync", "status", "device", "error", "session", "command", "frame"];

// SharedClient is a tab's side of the connection that a SharedWorker
// (this module, started as one) holds for every tab of the hub. It falls
// back to a connection of its own when the worker does not start.
class SharedClient extends Emitter {
  #port = null;
  #own = null; // the Client of its own, when the worker failed
  #waiting = new Map(); // request id → {resolve, reject}, ≤ MAX_PENDING
  #seq = 0;
  #url;
  #opts;
  #alive = false;
  #filters;
  #closed = false;
  status = /** @type {Status} */ ({ state: "connecting", transport: "", attempt: 0, retryIn: 0, reason: "", code: 0, tabs: 1 });
  session = null;
  mode = "shared";

  constructor(url, options) {
    super();
    this.#url = url;
    this.#opts = options;
    this.#filters = [...(options.subscribe ?? ["#"])];
    let worker;
    try {
      const name = SHARED_PREFIX + VERSION + ":" + endpoints(url).ws + ":" + (options.name ?? "");
      worker = new SharedWorker(import.meta.url, { type: "module", name });
    } catch {
      this.#fallBack();
      return;
    }
    this.#port = worker.port;
    const watchdog = setTimeout(() => this.#fallBack(), WORKER_START_TIMEOUT);
    worker.onerror = () => this.#fallBack();
    this.#port.onmessage = (e) => {
      if (this.#own) return;
      if (!this.#alive) {
        this.#alive = true;
        clearTimeout(watchdog);
      }
      this.#receive(e.data ?? {});
    };
    this.#port.postMessage({ op: "hello", url, options: sendable(options) });
    globalThis.addEventListener?.("pagehide", () => this.close());
  }

  get lastId() {
    return this.#own?.lastId ?? "";
  }

  get filters() {
    return this.#own ? this.#own.filters : [...this.#filters];
  }

  subscribe(filters) {
    const list = filterList(filters);
    for (const f of list) if (!this.#filters.includes(f)) this.#filters.push(f);
    return this.#ask("subscribe", [list]);
  }

  unsubscribe(filters) {
    const list = filterList(filters);
    this.#filters = this.#filters.filter((f) => !list.includes(f));
    return this.#ask("unsubscribe", [list]);
  }

  state(filter) {
    return this.#ask("state", filter === undefined ? [] : [filter]);
  }

  devices() {
    return this.#ask("devices", []);
  }

  command(target, payload, options = {}) {
    return this.#ask("command", [target, payload, { timeout: options.timeout }]);
  }

  publish(topic, payload) {
    if (this.#own) return this.#own.publish(topic, payload);
    this.#port.postMessage({ op: "publish", args: [topic, payload] });
  }

  reconnect() {
    if (this.#own) return this.#own.reconnect();
    this.#port?.postMessage({ op: "reconnect" });
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#own) this.#own.close();
    else {
      this.#port?.postMessage({ op: "bye" });
      this.#port?.close();
      for (const w of this.#waiting.values()) w.reject(new CommandError("connection-lost", "the client was closed"));
      this.#waiting.clear();
      this.status = { ...this.status, state: "closed", retryIn: 0 };
      this.emit("status", { ...this.status });
    }
  }

  #ask(op, args) {
    if (this.#own) return this.#own[op](...args);
    if (this.#closed) return Promise.reject(new CommandError("connection-lost", "the client was closed"));
    if (this.#waiting.size >= MAX_PENDING) return Promise.reject(new CommandError("limit", `${MAX_PENDING} requests are already waiting`));
    return new Promise((resolve, reject) => {
      const rid = ++this.#seq;
      this.#waiting.set(rid, { resolve, reject });
      this.#port.postMessage({ op, rid, args });
    });
  }

  #receive(m) {
    if (Array.isArray(m.batch)) {
      // A batch of events (TabBatch): handled in this one task.
      for (const e of m.batch) {
        if (e.event === "messages") for (const v of e.value) this.emit("message", v);
        else this.#receive(e);
      }
      return;
    }
    if (m.rid !== undefined) {
      const w = this.#waiting.get(m.rid);
      if (!w) return;
      this.#waiting.delete(m.rid);
      if (m.ok) w.resolve(m.value);
      else w.reject(new CommandError(m.error?.code ?? "error", m.error?.message ?? "", m.error ?? {}));
      return;
    }
    if (m.event === "answer") return this.#receive(m.value);
    if (m.event === "worker-error") {
      console.error("motehub worker:", m.value);
      return;
    }
    if (m.event === "status") this.status = m.value;
    if (m.event === "session") this.session = m.value;
    if (m.event) this.emit(m.event, m.value);
  }

  // fallBack gives the tab a connection of its own.
  #fallBack() {
    if (this.#own || this.#closed) return;
    this.#port?.close();
    this.mode = "direct";
    this.#own = new Client(this.#url, { ...this.#opts, subscribe: this.#filters, shared: false });
    for (const ev of EVENTS) {
      this.#own.on(ev, (v) => {
        if (ev === "status") this.status = v;
        if (ev === "session") this.session = v;
        this.emit(ev, v);
      });
    }
    // What was asked of the worker that never answered goes to the own client.
    for (const w of this.#waiting.values()) w.reject(new CommandError("unavailable", "the shared connection did not start"));
    this.#waiting.clear();
  }
}

// sendable is what of options crosses postMessage (not functions or objects
// of the page).
function sendable(options) {
  const out = {};
  for (const [k, v] of Object.entries(options)) {
    if (k === "WebSocket" || k === "storage" || k === "fetch" || typeof v === "function") continue;
    out[k] = v;
  }
  return out;
}

// TabBatch gathers, in the shared worker, the events for one tab and posts
// them together: one message per batch, at most every BATCH_PACE ms and of
// at most BATCH_MAX entries, instead of one message per event (500 devices
// make thousands of events a second, and each message costs the tab a task).
// Within a batch a device comes as its latest change (a device event carries
// the whole device), at the place of that latest one; the status likewise;
// messages that follow messages are one entry, in order. Every other event
// keeps its place. The tab gets {batch: [{event, value}]}, with
// {event: "messages", value: [message]} for the joined messages.
class TabBatch {
  #post;
  #entries = []; // the batch; an entry replaced by a later one is null. ≤ BATCH_MAX live ones, plus those replaced within BATCH_PACE
  #live = 0; // entries that are not null
  #latest = new Map(); // device id (or "" for the status) → index of its latest entry, ≤ #entries
  #run = -1; // index of the "messages" entry that later messages join, while it is the last live one
  #timer = 0;

  constructor(post) {
    this.#post = post;
  }

  add(event, value) {
    const key = event === "device" ? "d" + value?.id : event === "status" ? "" : undefined;
    if (key !== undefined) {
      const i = this.#latest.get(key);
      if (i !== undefined) {
        this.#entries[i] = null;
        this.#live--;
      }
      this.#latest.set(key, this.#entries.length);
      this.#push({ event, value });
    } else if (event === "message") {
      if (this.#run >= 0 && this.#run === this.#lastLive()) this.#entries[this.#run].value.push(value);
      else {
        this.#run = this.#entries.length;
        this.#push({ event: "messages", value: [value] });
      }
    } else {
      this.#push({ event, value });
    }
    if (this.#live >= BATCH_MAX) this.flush();
    else if (!this.#timer) this.#timer = setTimeout(() => this.flush(), BATCH_PACE);
  }

  // flush posts what waits now.
  flush() {
    clearTimeout(this.#timer);
    this.#timer = 0;
    const batch = this.#entries.filter((e) => e !== null);
    this.#entries = [];
    this.#live = 0;
    this.#latest.clear();
    this.#run = -1;
    if (batch.length) this.#post({ batch });
  }

  #push(entry) {
    this.#entries.push(entry);
    this.#live++;
  }

  #lastLive() {
    for (let i = this.#entries.length - 1; i >= 0; i--) if (this.#entries[i] !== null) return i;
    return -1;
  }
}

// serveTabs runs in the SharedWorker: one Client for every tab, with the
// union of their subscriptions (counted), each tab getting the messages of
// its own filters, in batches (TabBatch).
function serveTabs(scope) {
  let client = null;
  const tabs = new Map(); // port → {filters: Set, options, greeted, batch}; as many as the browser's tabs
  const counts = new Map(); // filter → tabs subscribed to it
  const post = (port, m) => {
    try {
      port.postMessage(m);
    } catch {
      // the tab is gone
    }
  };
  const broadcast = (event, value) => {
    for (const tab of tabs.values()) tab.batch.add(event, value);
  };
  // The status each tab gets says how many tabs share the connection.
  const status = () => ({ ...client.status, tabs: tabs.size });
  const wants = (tab, topic) => [...tab.filters].some((f) => matchFilter(f, topic));
  const add = (tab, filters) => {
    const added = [];
    for (const f of filters) {
      if (tab.filters.has(f)) continue;
      tab.filters.add(f);
      counts.set(f, (counts.get(f) ?? 0) + 1);
      if (counts.get(f) === 1) added.push(f);
    }
    return added;
  };
  const remove = (tab, filters) => {
    const removed = [];
    for (const f of filters) {
      if (!tab.filters.delete(f)) continue;
      const n = (counts.get(f) ?? 1) - 1;
      if (n > 0) counts.set(f, n);
      else {
        counts.delete(f);
        removed.push(f);
      }
    }
    return removed;
  };
  const leave = (port) => {
    const tab = tabs.get(port);
    if (!tab) return;
    tabs.delete(port);
    tab.batch.flush();
    const removed = remove(tab, [...tab.filters]);
    if (client && removed.length) client.unsubscribe(removed).catch(() => {});
    if (client) broadcast("status", status());
  };
  const start = (url, options) => {
    client = new Client(url, { ...options, subscribe: [...counts.keys()], shared: false, storage: null, state: false, frames: true });
    client.on("message", (m) => {
      for (const tab of tabs.values()) if (wants(tab, m.topic)) tab.batch.add("message", m);
    });
    for (const ev of ["state", "resync"]) {
      client.on(ev, (v) => {
        for (const tab of tabs.values()) tab.batch.add(ev, { ...v, values: v.values.filter((x) => wants(tab, x.topic)) });
      });
    }
    for (const ev of ["device", "error", "session", "command"]) client.on(ev, (v) => broadcast(ev, v));
    client.on("frame", (v) => {
      for (const tab of tabs.values()) if (tab.options.frames) tab.batch.add("frame", v);
    });
    client.on("status", () => broadcast("status", status()));
    // Each tab gets the last values of its filters once the session is open.
    client.on("status", (s) => {
      if (s.state !== "open") return;
      for (const [port, tab] of tabs) if (!tab.greeted) greet(port, tab);
    });
  };
  const greet = (port, tab) => {
    tab.greeted = true;
    if (tab.options.state === false || tab.filters.size === 0) return;
    client.state([...tab.filters]).then(
      (values) => tab.batch.add("state", { values, resync: false }),
      (err) => tab.batch.add("error", { code: err?.code ?? "unavailable", message: `the last values did not come: ${err?.message}`, topic: "" }),
    );
  };
  scope.onconnect = (e) => {
    const port = e.ports[0];
    port.onmessage = async (msg) => {
      const m = msg.data ?? {};
      const tab = tabs.get(port);
      if (m.op === "hello") {
        const t = { filters: new Set(), options: m.options ?? {}, greeted: false, batch: new TabBatch((b) => post(port, b)) };
        tabs.set(port, t);
        const added = add(t, filterList(m.options?.subscribe ?? ["#"]));
        const first = !client;
        if (first) start(m.url, m.options ?? {});
        // This tab learns who the session is, and every tab that one more
        // shares the connection (this one: where the connection is).
        if (client.session) t.batch.add("session", { ...client.session });
        broadcast("status", status());
        t.batch.flush();
        if (!first && added.length) await client.subscribe(added).catch(() => {});
        if (client.status.state === "open" && !t.greeted) greet(port, t);
        return;
      }
      if (!tab) return;
      if (m.op === "bye") return leave(port);
      if (m.op === "publish") return client.publish(...m.args);
      if (m.op === "reconnect") return client.reconnect();
      let answer;
      try {
        let value;
        switch (m.op) {
          case "subscribe": {
            const added = add(tab, filterList(m.args[0]));
            if (added.length) await client.subscribe(added);
            break;
          }
          case "unsubscribe": {
            const removed = remove(tab, filterList(m.args[0]));
            if (removed.length) await client.unsubscribe(removed);
            break;
          }
          case "state":
            value = await client.state(m.args.length ? m.args[0] : [...tab.filters]);
            break;
          case "devices":
            value = await client.devices();
            break;
          case "command":
            value = await client.command(m.args[0], m.args[1], m.args[2]?.timeout ? { timeout: m.args[2].timeout } : undefined);
            break;
          default:
            throw new CommandError("bad-request", `unknown request ${m.op}`);
        }
        answer = { rid: m.rid, ok: true, value };
      } catch (err) {
        answer = { rid: m.rid, ok: false, error: { code: err?.code ?? "error", message: err?.message ?? String(err), topic: err?.topic ?? "", state: err?.state, id: err?.id ?? "" } };
      }
      // The answer keeps its place among the events: those before it reach
      // the tab first (the echo before a command's confirmation, the device
      // changes before a device list).
      tab.batch.add("answer", answer);
    };
    port.addEventListener?.("close", () => leave(port)); // where browsers have it
  };
  const workerError = (text) => {
    for (const port of tabs.keys()) post(port, { event: "worker-error", value: text });
  };
  scope.addEventListener("error", (e) => workerError(`${e.message} (${e.filename}:${e.lineno})`));
  scope.addEventListener("unhandledrejection", (e) => workerError(String(e.reason)));
}

// This module started as the shared worker of connect({shared: true}).
// (The page's types, "dom", know no worker's scope: it is looked up.)
const workerScope = /** @type {any} */ (globalThis);
if (typeof workerScope.SharedWorkerGlobalScope === "function" && workerScope instanceof workerScope.SharedWorkerGlobalScope && String(workerScope.name).startsWith(SHARED_PREFIX)) {
  serveTabs(workerScope);
}

// ---- helpers ----

function withDefaults(o) {
  const backoff = { initial: 500, max: 30_000, stable: 10_000, upgrade: 10_000, upgradeMax: 300_000, ...(o.backoff ?? {}) };
  return {
    ...o,
    subscribe: filterList(o.subscribe ?? ["#"]),
    transports: o.transports ?? TRANSPORTS,
    devices: o.devices !== false,
    state: o.state !== false,
    heartbeat: o.heartbeat ?? 45_000,
    connectTimeout: o.connectTimeout ?? 10_000,
    commandTimeout: o.commandTimeout ?? 10_000,
    backoff,
  };
}

function filterList(filters) {
  const list = typeof filters === "string" ? [filters] : Array.isArray(filters) ? filters : null;
  if (!list || list.some((f) => typeof f !== "string")) throw new TypeError("filters must be a topic filter or an array of them");
  return list;
}

// endpoints are the hub's addresses for url: its WebSocket, event stream
// and API, and the MQTT base a "/ws/base" address mounts.
function endpoints(url) {
  const here = typeof location !== "undefined" ? location.href : undefined;
  if (url === undefined && !here) throw new TypeError("connect(url): url is required outside a browser");
  const u = new URL(url ?? "/", here);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  let base = "";
  const m = /^\/(?:ws|events)(?:\/(.*))?$/.exec(u.pathname);
  if (m) base = (m[1] ?? "").replace(/\/$/, "");
  const http = u.origin;
  const ws = (u.protocol === "https:" ? "wss://" : "ws://") + u.host + "/ws" + (base ? "/" + base : "");
  return { ws, events: http + "/events" + (base ? "/" + base : ""), api: http, base };
}

function mount(base, topic) {
  return base ? base + "/" + topic : topic;
}

function unmount(base, topic) {
  if (!base) return topic;
  return topic.startsWith(base + "/") ? topic.slice(base.length + 1) : null;
}

function authHeaders(auth) {
  if (!auth) return null;
  if (typeof auth === "string") return { Authorization: "Bearer " + auth };
  if (auth.token) return { Authorization: "Bearer " + auth.token };
  if (auth.user !== undefined) {
    const bytes = new TextEncoder().encode(`${auth.user}:${auth.password ?? ""}`);
    return { Authorization: "Basic " + btoa(String.fromCharCode(...bytes)) };
  }
  return null;
}

function sessionStorageOrNull() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // a sandboxed page
  }
}

function valuesOf(list) {
  if (!Array.isArray(list)) return [];
  return list.flatMap((v) => (Array.isArray(v) && typeof v[0] === "string" ? [{ topic: v[0], payload: v[1], time: timeOf(v[2]?.time), retained: v[2]?.retained === true }] : []));
}

// timeOf is the hub's time in ms, never ahead of ours.
function timeOf(s) {
  const t = Date.parse(s);
  return Number.isFinite(t) ? Math.min(t, Date.now()) : Date.now();
}

function parseJSON(s) {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/**
 * matchFilter reports whether an MQTT topic filter matches a topic.
 * @param {string} filter
 * @param {string} topic
 */
export function matchFilter(filter, topic) {
  const f = filter.split("/");
  const t = topic.split("/");
  const dollar = topic.startsWith("$");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return !(i === 0 && dollar);
    if (i >= t.length) return false;
    if (f[i] === "+") {
      if (i === 0 && dollar) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

// covers: the hub's rule for a state that confirms a command (bridge/ack.go).
function covers(want, got) {
  if (want !== null && typeof want === "object" && !Array.isArray(want)) {
    if (got === null || typeof got !== "object" || Array.isArray(got)) return false;
    return Object.keys(want).every((k) => k in got && covers(want[k], got[k]));
  }
  return JSON.stringify(want) === JSON.stringify(got);
}

function legacyCode(error) {
  return error === "state differs" ? "state-differs" : error || "failed";
}

function httpCode(status) {
  return status === 403 ? "forbidden" : status === 401 ? "unauthorized" : status === 429 ? "rate-limited" : "unavailable";
}

function describeCode(code) {
  switch (code) {
    case "timeout":
      return "the device did not confirm the command in time";
    case "state-differs":
      return "the device reported another state than the one asked for";
    case "offline":
      return "the device is offline: the command was not sent";
    case "forbidden":
      return "not allowed to command this";
    case "unavailable":
      return "the hub cannot take the command now";
    case "connection-lost":
      return "the connection to the hub was lost before the device confirmed: the command may or may not have been carried out";
  }
  return code;
}

function closeText(code, reason) {
  if (reason) return reason;
  switch (code) {
    case 1001:
      return "the hub went away";
    case 1006:
      return "the hub cannot be reached";
    case 4008:
      return "too slow to keep up";
  }
  return code ? `closed (${code})` : "closed";
}
