// The message log: every line to and from the hub, newest first, with a
// topic filter (an MQTT filter such as nodes/+/relay/#, or plain text), and
// pause, so that a fast stream can be read.

import { h, setText } from "./dom.js";
import { isControl, topicQuery } from "./topics.js";
import { clock } from "./values.js";

const SHOWN = 200; // rows in the page
const PAYLOAD_CHARS = 2000; // shown on one line; the rest in a tooltip

export class LogView {
  #store;
  #list;
  #match = () => true;
  #paused = false;
  #pauseButton;
  #count;
  #hidden = 0; // lines that arrived while paused

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
    this.#pauseButton = h("button", { type: "button", class: "quiet", "aria-pressed": "false", onclick: () => this.#togglePause() }, "Pause");
    this.#count = h("span", { class: "log-count", "aria-live": "polite" });
    this.#list = h("ol", { class: "log-lines", "aria-label": "Messages, newest first" });
    root.append(
      h("div", { class: "panel-head" }, h("h2", { id: "log-title" }, "Messages"), this.#count, this.#pauseButton),
      filter,
      this.#list,
    );
  }

  render(changes) {
    if (changes.all) return this.#redraw();
    if (this.#paused) {
      this.#hidden += changes.lines.length;
      if (changes.lines.length) setText(this.#count, `${this.#hidden} new`);
      return;
    }
    const rows = changes.lines.filter((l) => this.#match(l.topic)).slice(-SHOWN).map(row);
    if (rows.length === 0) return;
    this.#list.prepend(...rows.reverse());
    while (this.#list.childElementCount > SHOWN) this.#list.lastElementChild.remove();
  }

  #togglePause() {
    this.#paused = !this.#paused;
    this.#pauseButton.setAttribute("aria-pressed", String(this.#paused));
    setText(this.#pauseButton, this.#paused ? "Resume" : "Pause");
    if (!this.#paused) this.#redraw();
  }

  #redraw() {
    this.#hidden = 0;
    setText(this.#count, "");
    const rows = this.#store.lines.filter((l) => this.#match(l.topic)).slice(-SHOWN).map(row);
    this.#list.replaceChildren(...rows.reverse());
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
