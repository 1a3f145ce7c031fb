// The message log: every line to and from the hub, newest first, with a
// topic filter (an MQTT filter such as nodes/+/relay/#, or plain text), and
// pause, so that a fast stream can be read. Far from the view (below 500
// device cards) it draws nothing: it catches up from the store's lines
// when it comes near.

import { h, setText } from "./dom.js";
import { isControl, topicQuery } from "./topics.js";
import { clock } from "./values.js";

const SHOWN = 200; // rows in the page
const PAYLOAD_CHARS = 2000; // shown on one line; the rest in a tooltip
const PACE = 250; // ms: new lines are drawn at most this often (500 devices send 1,500 a second)
const NEAR = "50% 0px"; // the log draws while within half a screen of the view

export class LogView {
  #store;
  #list;
  #match = () => true;
  #paused = false;
  #pauseButton;
  #count;
  #hidden = 0; // lines that arrived while paused
  #filter;
  #none; // says that no line matches the filter
  #waiting = []; // lines to draw at the next pace, ≤ SHOWN
  #timer = 0;
  #near = true; // the log is near the view (always, without IntersectionObserver)
  #behind = false; // lines came while the log was far: redraw when it comes near

  constructor(root, store) {
    this.#store = store;
    const filter = h("input", {
      type: "search", class: "log-filter", placeholder: "Filter: nodes/+/relay/# or text",
      "aria-label": "Filter the messages by topic", spellcheck: "false", autocomplete: "off",
      oninput: (e) => {
        this.#match = topicQuery(e.target.value);
        this.#redraw();
      },
    });
    this.#filter = filter;
    this.#none = h("p", { class: "log-none", role: "status", hidden: true });
    this.#pauseButton = h("button", { type: "button", class: "quiet", "aria-pressed": "false", onclick: () => this.#togglePause() }, "Pause");
    this.#count = h("span", { class: "log-count", "aria-live": "polite" });
    this.#list = h("ol", { class: "log-lines", "aria-label": "Messages, newest first" });
    root.append(
      h("div", { class: "panel-head" }, h("h2", { id: "log-title" }, "Messages"), this.#count, this.#pauseButton),
      filter,
      this.#none,
      this.#list,
    );
    if (typeof IntersectionObserver === "function") {
      new IntersectionObserver((entries) => {
        this.#near = entries[entries.length - 1].isIntersecting;
        if (this.#near && this.#behind && !this.#paused) this.#redraw();
      }, { rootMargin: NEAR }).observe(root);
    }
  }

  render(changes) {
    if (changes.all) return this.#redraw();
    if (this.#paused) {
      this.#hidden += changes.lines.length;
      if (changes.lines.length) setText(this.#count, `${this.#hidden} new`);
      return;
    }
    if (!this.#near) {
      if (changes.lines.length) this.#behind = true;
      return;
    }
    for (const l of changes.lines) if (this.#match(l.topic)) this.#waiting.push(l);
    if (this.#waiting.length > SHOWN) this.#waiting.splice(0, this.#waiting.length - SHOWN);
    if (this.#waiting.length && !this.#timer) this.#timer = setTimeout(() => this.#drawWaiting(), PACE);
  }

  #drawWaiting() {
    this.#timer = 0;
    const rows = this.#waiting.map(row);
    this.#waiting = [];
    if (this.#paused || rows.length === 0) return;
    this.#list.prepend(...rows.reverse());
    while (this.#list.childElementCount > SHOWN) this.#list.lastElementChild.remove();
    this.#noMatch();
  }

  // noMatch says so when a filter leaves no line to show.
  #noMatch() {
    const q = this.#filter.value.trim();
    const none = q !== "" && this.#list.childElementCount === 0;
    this.#none.hidden = !none;
    if (none) setText(this.#none, `No messages match “${q}”. New ones that do will show here.`);
  }

  #togglePause() {
    this.#paused = !this.#paused;
    this.#pauseButton.setAttribute("aria-pressed", String(this.#paused));
    setText(this.#pauseButton, this.#paused ? "Resume" : "Pause");
    if (!this.#paused) this.#redraw();
  }

  #redraw() {
    this.#behind = false;
    this.#hidden = 0;
    this.#waiting = [];
    setText(this.#count, "");
    const rows = this.#store.lines.filter((l) => this.#match(l.topic)).slice(-SHOWN).map(row);
    this.#list.replaceChildren(...rows.reverse());
    this.#noMatch();
  }
}

function row(line) {
  let payload = JSON.stringify(line.payload) ?? "";
  if (payload.length > PAYLOAD_CHARS) payload = payload.slice(0, PAYLOAD_CHARS - 1) + "…";
  const out = line.dir === "out";
  return h("li", { class: `line ${out ? "out" : "in"}${isControl(line.topic) ? " control" : ""}` },
    h("time", {}, clock(line.time)),
    h("span", { class: "dir", title: out ? "sent to the hub" : "from the hub" }, out ? "↑" : "↓"),
    h("span", { class: "line-topic" }, breakable(line.topic)),
    h("code", { class: "line-payload", title: payload.length > 60 ? payload : null }, payload));
}

// breakable lets a long topic wrap after its slashes rather than anywhere.
function breakable(topic) {
  const parts = [];
  for (const [i, level] of topic.split("/").entries()) {
    if (i > 0) parts.push("/", document.createElement("wbr"));
    parts.push(level);
  }
  return parts;
}
