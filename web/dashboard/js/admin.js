// The admin view (/admin): the MQTT clients and browser sessions connected
// now, with a disconnect, and the retained-message manager. It speaks only
// to /api/admin (web/admin.go), which answers 403 to everyone who is not an
// admin. An undo lives in this page: a clear answers with the messages it
// removed, the page keeps them, and an undo sends them back to be
// republished; leaving the page forgets them.

import { h, setText } from "./dom.js";

const $ = (id) => document.getElementById(id);
const refreshEvery = 3000; // ms, the lists of clients and sessions
const maxUndo = 20; // the clears the page keeps for an undo (each at most 10,000 messages and 16 MB): the oldest goes

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// call asks the admin API: GET without a body, POST with one.
async function call(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const res = await fetch(path, init);
  let data = null;
  try {
    data = await res.json();
  } catch {
    // not JSON: the status says enough
  }
  if (res.status === 401) location.assign("/login?next=" + encodeURIComponent(location.pathname));
  if (!res.ok) throw new APIError(res.status, data?.error?.code ?? "", data?.error?.message ?? `HTTP ${res.status}`);
  return data;
}

// Formatting

const number = new Intl.NumberFormat();

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function ago(iso) {
  if (!iso) return "unknown";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// when is a <time> whose relative text the page keeps current (tickTimes).
function when(iso) {
  return h("time", { datetime: iso || "", title: iso ? new Date(iso).toLocaleString() : "", dataset: { at: iso || "" } }, ago(iso));
}

function tickTimes() {
  for (const t of document.querySelectorAll("time[data-at]")) setText(t, ago(t.dataset.at));
}

const protocols = { 3: "3.1", 4: "3.1.1", 5: "5" };

function filtersCell(listed, count) {
  const shown = listed.slice(0, 3).join(", ");
  const more = count - Math.min(3, listed.length);
  return h("td", { class: "admin-filters", title: listed.join("\n") }, shown || "none", more > 0 ? h("span", { class: "muted" }, ` +${more}`) : null);
}

// Notices at the top of the page.
function notify(text, kind = "info") {
  const box = $("notices");
  const n = h("div", { class: `notice ${kind}` }, h("span", {}, text),
    h("button", { class: "quiet small", type: "button", "aria-label": "Dismiss", onclick: () => n.remove() }, "✕"));
  box.append(n);
  while (box.children.length > 4) box.firstElementChild.remove();
  return n;
}

let refused = false;

// refuse turns the page into the answer for someone who is not an admin.
function refuse(err) {
  if (refused) return;
  refused = true;
  document.body.dataset.admin = "no";
  $("admin-sections").hidden = true;
  notify(`${err.message}.`, "error").classList.add("admin-refused");
}

// handle shows an error of the API where it belongs.
function handle(err, where) {
  if (err.status === 403 && err.code === "forbidden" && !where.dataset.loaded) {
    refuse(err);
    return;
  }
  notify(err.message, "error");
}

// A list of connected things (MQTT clients, browser sessions), refreshed
// every few seconds, a page at a time, each with a disconnect button.
class ListView {
  #root; #path; #key; #columns; #what; #offset = 0; #limit = 100; #body; #count; #pager; #last = "";

  constructor(root, { title, path, key, columns, what }) {
    this.#root = root;
    this.#path = path;
    this.#key = key;
    this.#columns = columns;
    this.#what = what;
    this.#count = h("span", { class: "admin-count" });
    this.#body = h("div", { class: "admin-table-wrap" });
    this.#pager = h("div", { class: "admin-pager" });
    root.append(
      h("div", { class: "panel-head" }, h("h2", { id: `${root.id}-title` }, title), this.#count,
        h("button", { type: "button", class: "quiet small", onclick: () => this.refresh() }, "Refresh")),
      this.#body, this.#pager);
  }

  async refresh() {
    let data;
    try {
      data = await call(`${this.#path}?offset=${this.#offset}&limit=${this.#limit}`);
    } catch (err) {
      if (err.code === "unsupported") this.#unsupported(err.message);
      else handle(err, this.#root);
      return;
    }
    this.#root.dataset.loaded = "true";
    const rows = data[this.#what.key];
    const json = JSON.stringify(data);
    if (json === this.#last) return; // nothing changed: the nodes stay (and the focus with them)
    this.#last = json;
    setText(this.#count, `${number.format(data.total)} ${data.total === 1 ? this.#what.one : this.#what.many}`);
    this.#body.replaceChildren(rows.length === 0 ? h("p", { class: "admin-empty" }, `No ${this.#what.many}.`) : this.#table(rows));
    this.#renderPager(data, rows.length);
  }

  #unsupported(message) {
    this.#root.dataset.loaded = "true";
    setText(this.#count, "");
    this.#body.replaceChildren(h("p", { class: "admin-empty" }, message));
  }

  #table(rows) {
    return h("table", { class: "admin-table" },
      h("thead", {}, h("tr", {}, this.#columns.map((c) => h("th", { scope: "col" }, c.title)), h("th", {}, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, rows.map((row) => h("tr", { dataset: { id: this.#key(row) } },
        this.#columns.map((c) => c.cell(row)),
        h("td", { class: "admin-actions" }, h("button", { type: "button", class: "small danger", onclick: (e) => this.#disconnect(row, e.currentTarget) }, "Disconnect"))))));
  }

  async #disconnect(row, button) {
    button.disabled = true;
    try {
      await call(`${this.#path}/disconnect`, { id: this.#key(row) });
      notify(`Disconnected ${this.#what.one} ${this.#key(row)}.`);
    } catch (err) {
      handle(err, this.#root);
      button.disabled = false;
    }
    this.refresh();
  }

  #renderPager(data, shown) {
    this.#pager.replaceChildren();
    if (data.offset === 0 && !data.truncated) return;
    this.#pager.append(
      h("span", {}, `${number.format(data.offset + 1)}–${number.format(data.offset + shown)} of ${number.format(data.total)}`),
      h("button", { type: "button", class: "small", disabled: data.offset === 0, onclick: () => { this.#offset = Math.max(0, this.#offset - this.#limit); this.refresh(); } }, "Previous"),
      h("button", { type: "button", class: "small", disabled: !data.truncated, onclick: () => { this.#offset += this.#limit; this.refresh(); } }, "Next"));
  }
}

const text = (s, cls) => h("td", { class: cls }, s);

const mqttClients = new ListView($("mqtt-clients"), {
  title: "MQTT clients",
  path: "/api/admin/mqtt-clients",
  key: (c) => c.id,
  what: { key: "clients", one: "client", many: "clients" },
  columns: [
    { title: "Client id", cell: (c) => text(c.id, "mono") },
    { title: "User", cell: (c) => text(c.user) },
    { title: "Address", cell: (c) => text(c.remote, "mono") },
    { title: "Transport", cell: (c) => text(c.transport) },
    { title: "Connected", cell: (c) => h("td", {}, when(c.since)) },
    { title: "MQTT", cell: (c) => text(protocols[c.protocol_version] ?? String(c.protocol_version)) },
    { title: "Subscriptions", cell: (c) => filtersCell(c.subscriptions, c.subscription_count) },
    { title: "Queued", cell: (c) => text(c.inflight ? `${c.queued} · ${c.inflight} in flight` : String(c.queued), "num") },
  ],
});

const sessions = new ListView($("sessions"), {
  title: "Browser sessions",
  path: "/api/admin/sessions",
  key: (s) => s.id,
  what: { key: "sessions", one: "session", many: "sessions" },
  columns: [
    { title: "Session", cell: (s) => text(s.id, "mono") },
    { title: "User", cell: (s) => text(s.user) },
    { title: "Address", cell: (s) => text(s.remote, "mono") },
    { title: "Transport", cell: (s) => text(s.transport === "ws" ? "WebSocket" : "SSE") },
    { title: "Opened", cell: (s) => h("td", {}, when(s.since)) },
    { title: "Mount", cell: (s) => text(s.base === "" ? "/" : s.base, "mono") },
    { title: "Subscriptions", cell: (s) => filtersCell(s.subscriptions, s.subscription_count) },
    { title: "Queued", cell: (s) => text(s.queued ? `${s.queued} · ${bytes(s.queued_bytes)}` : "0", "num") },
  ],
});

// The retained-message manager: browse by filter, clear one topic or every
// topic of a filter after a dry run that lists them, undo a clear.
class RetainedView {
  #root; #filter; #summary; #body; #pager; #plan; #undo; #offset = 0; #limit = 100;
  #undoable = []; // the clears this page can undo, {filter, at, messages}: at most maxUndo

  constructor(root) {
    this.#root = root;
    this.#filter = h("input", { id: "retained-filter", name: "filter", value: "#", spellcheck: "false", autocomplete: "off", "aria-label": "MQTT filter" });
    this.#summary = h("p", { class: "admin-summary", "aria-live": "polite" });
    this.#body = h("div", { class: "admin-table-wrap" });
    this.#pager = h("div", { class: "admin-pager" });
    this.#plan = h("div", { id: "clear-plan", class: "admin-plan", hidden: true });
    this.#undo = h("div", { id: "undo", class: "admin-undo" });
    const form = h("form", { class: "admin-filter-form", onsubmit: (e) => { e.preventDefault(); this.#offset = 0; this.browse(); } },
      h("label", { for: "retained-filter" }, "Filter"), this.#filter,
      h("button", { type: "submit", class: "primary" }, "Browse"),
      h("button", { type: "button", id: "clear-filter", class: "danger", onclick: () => this.plan(this.#filter.value.trim()) }, "Clear matching…"));
    root.append(
      h("div", { class: "panel-head" }, h("h2", { id: "retained-title" }, "Retained messages")),
      form, this.#plan, this.#undo, this.#summary, this.#body, this.#pager);
  }

  async browse() {
    const filter = this.#filter.value.trim();
    let data;
    try {
      data = await call(`/api/admin/retained?filter=${encodeURIComponent(filter)}&offset=${this.#offset}&limit=${this.#limit}`);
    } catch (err) {
      if (err.code === "unsupported") {
        this.#root.dataset.loaded = "true";
        this.#summary.textContent = err.message;
      } else handle(err, this.#root);
      return;
    }
    this.#root.dataset.loaded = "true";
    this.#root.dataset.filter = filter;
    setText(this.#summary, `${number.format(data.total)} retained ${data.total === 1 ? "message" : "messages"} (${bytes(data.bytes)}) match ${filter}.`);
    this.#body.replaceChildren(data.messages.length === 0 ? h("p", { class: "admin-empty" }, "No retained message matches.") : h("table", { class: "admin-table retained-table" },
      h("thead", {}, h("tr", {}, ["Topic", "Size", "Age", "QoS", "Payload"].map((t) => h("th", { scope: "col" }, t)), h("th", {}, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, data.messages.map((m) => h("tr", { dataset: { topic: m.topic } },
        text(m.topic, "mono admin-topic"), text(bytes(m.size), "num"), h("td", {}, when(m.created)), text(String(m.qos), "num"),
        text(m.binary ? "binary" : m.preview, m.binary ? "muted" : "mono admin-preview"),
        h("td", { class: "admin-actions" }, h("button", { type: "button", class: "small danger", onclick: () => this.plan(m.topic) }, "Clear…")))))));
    this.#pager.replaceChildren();
    if (data.offset > 0 || data.truncated) {
      this.#pager.append(
        h("span", {}, `${number.format(data.offset + 1)}–${number.format(data.offset + data.messages.length)} of ${number.format(data.total)}`),
        h("button", { type: "button", class: "small", disabled: data.offset === 0, onclick: () => { this.#offset = Math.max(0, this.#offset - this.#limit); this.browse(); } }, "Previous"),
        h("button", { type: "button", class: "small", disabled: !data.truncated, onclick: () => { this.#offset += this.#limit; this.browse(); } }, "Next"));
    }
  }

  // plan asks for a dry run of clearing filter and shows what would go.
  async plan(filter) {
    let data;
    try {
      data = await call("/api/admin/retained/clear", { filter, dry_run: true });
    } catch (err) {
      handle(err, this.#root);
      return;
    }
    const shown = data.messages.slice(0, 50);
    this.#plan.replaceChildren(
      h("p", {}, data.count === 0 ? `Nothing to clear: no retained message you may clear matches ${filter}.`
        : `Clearing ${filter} removes ${number.format(data.count)} retained ${data.count === 1 ? "message" : "messages"} (${bytes(data.bytes)}):`),
      h("ul", { class: "admin-plan-list" }, shown.map((m) => h("li", { class: "mono" }, m.topic)),
        data.count > shown.length ? h("li", { class: "muted" }, `and ${number.format(data.count - shown.length)} more`) : null),
      data.skipped_count > 0 ? h("p", { class: "muted" }, `${number.format(data.skipped_count)} matching ${data.skipped_count === 1 ? "message stays" : "messages stay"}: ${data.skipped[0].message}.`) : null,
      data.truncated ? h("p", { class: "muted" }, "More match than one clear takes (10,000 messages or 16 MB): clear again for the rest.") : null,
      h("div", { class: "admin-plan-actions" },
        data.count > 0 ? h("button", { type: "button", id: "clear-confirm", class: "danger", onclick: (e) => this.clear(filter, e.currentTarget) },
          `Clear ${number.format(data.count)} ${data.count === 1 ? "message" : "messages"}`) : null,
        h("button", { type: "button", class: "quiet", onclick: () => { this.#plan.hidden = true; } }, data.count === 0 ? "Close" : "Cancel")));
    this.#plan.dataset.filter = filter;
    this.#plan.dataset.count = String(data.count);
    this.#plan.hidden = false;
  }

  async clear(filter, button) {
    button.disabled = true;
    let data;
    try {
      data = await call("/api/admin/retained/clear", { filter, dry_run: false });
    } catch (err) {
      handle(err, this.#root);
      button.disabled = false;
      return;
    }
    this.#plan.hidden = true;
    if (data.count > 0) {
      this.#undoable.push({ filter, at: new Date(), messages: data.messages.map((m) => ({ topic: m.topic, payload: m.payload, qos: m.qos })) });
      if (this.#undoable.length > maxUndo) {
        const gone = this.#undoable.shift();
        notify(`The clear of ${gone.filter} at ${gone.at.toLocaleTimeString()} can no longer be undone: the page keeps the last ${maxUndo}.`, "warn");
      }
      this.#renderUndo();
    }
    if (data.skipped_count > 0) notify(`${number.format(data.skipped_count)} messages were not cleared: ${data.skipped[0].message}.`, "warn");
    if (data.truncated) notify("More matched than one clear takes: clear again for the rest.", "warn");
    this.browse();
  }

  async undo(entry, button) {
    button.disabled = true;
    let data;
    try {
      data = await call("/api/admin/retained/restore", { messages: entry.messages });
    } catch (err) {
      handle(err, this.#root);
      button.disabled = false;
      return;
    }
    this.#undoable = this.#undoable.filter((e) => e !== entry);
    this.#renderUndo();
    notify(`Restored ${number.format(data.restored)} retained ${data.restored === 1 ? "message" : "messages"} of ${entry.filter}.`, data.skipped_count > 0 ? "warn" : "info");
    this.browse();
  }

  #renderUndo() {
    this.#undo.replaceChildren(...this.#undoable.map((e) => h("div", { class: "notice admin-undo-entry", dataset: { filter: e.filter } },
      h("span", {}, `Cleared ${number.format(e.messages.length)} retained ${e.messages.length === 1 ? "message" : "messages"} of ${e.filter} at ${e.at.toLocaleTimeString()}. Undo is possible until you leave this page.`),
      h("button", { type: "button", class: "small", onclick: (ev) => this.undo(e, ev.currentTarget) }, "Undo"))));
  }
}

const retained = new RetainedView($("retained"));

async function refreshLists() {
  if (refused || document.hidden) return;
  await Promise.all([mqttClients.refresh(), sessions.refresh()]);
}

refreshLists();
retained.browse();
setInterval(() => {
  refreshLists();
  tickTimes();
}, refreshEvery);

// For the tests and for curious people in the developer console.
window.motehubAdmin = { mqttClients, sessions, retained, refresh: refreshLists };
