// Publishing by hand: a topic and a JSON payload, sent over the session. A
// command (a topic ending in /set) is followed until its device confirms it.

import { h, setText } from "./dom.js";
import { isCommand } from "./topics.js";
import { describe } from "./commands.js";

let sent = 0;

export class PublishView {
  #store;
  #link;
  #topics = new Set();
  #datalist;
  #result;
  #ref = "";
  #topicTried = "";

  constructor(root, store, link) {
    this.#store = store;
    this.#link = link;
    const topic = h("input", {
      name: "topic", id: "publish-topic", required: true, list: "publish-topics", spellcheck: "false",
      autocomplete: "off", placeholder: "nodes/mote-1/relay/i2c0-3b/set",
    });
    const payload = h("textarea", { name: "payload", id: "publish-payload", rows: 3, spellcheck: "false" }, `{"state": true}`);
    this.#datalist = h("datalist", { id: "publish-topics" });
    this.#result = h("output", { class: "publish-result", for: "publish-topic publish-payload", "aria-live": "polite" });
    const form = h("form", { class: "publish-form", onsubmit: (e) => {
      e.preventDefault();
      this.#submit(topic.value.trim(), payload.value);
    } },
      h("label", { for: "publish-topic" }, "Topic"), topic,
      h("label", { for: "publish-payload" }, "Payload ", h("span", { class: "hint" }, "JSON: 21.5, true, \"text\", {\"state\": false}; bare text: {\"$text\": \"ON\"}")), payload,
      h("div", { class: "publish-actions" }, h("button", { type: "submit", class: "primary" }, "Publish"), this.#result),
      this.#datalist);
    payload.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    });
    root.append(h("div", { class: "panel-head" }, h("h2", {}, "Publish")), form);
  }

  #submit(topic, text) {
    let payload;
    try {
      payload = JSON.parse(text);
    } catch (err) {
      this.#show("failed", `The payload is not JSON (${err.message}). Text needs quotes: "on".`);
      return;
    }
    if (topic === "" || topic.includes("+") || topic.includes("#")) {
      this.#show("failed", "The topic must be a topic name, without + or #.");
      return;
    }
    this.#ref = `publish-${++sent}`;
    this.#topicTried = topic;
    this.#link.publish(topic, payload, this.#ref);
    this.#show(isCommand(topic) ? "pending" : "ok", isCommand(topic) ? describe({ state: "pending" }) : `Sent ${topic} to the hub.`);
  }

  #show(state, text) {
    this.#result.className = `publish-result ${state}`;
    setText(this.#result, text);
  }

  render(changes) {
    // Suggest every topic seen, and a command topic for each state.
    for (const topic of changes.all ? this.#store.tiles.keys() : changes.tiles) {
      if (this.#topics.has(topic)) continue;
      this.#topics.add(topic);
      const tile = this.#store.tiles.get(topic);
      this.#datalist.append(h("option", { value: tile.commandable ? topic + "/set" : topic }));
    }
    if (!this.#ref) return;
    const cmd = this.#store.byRef.get(this.#ref);
    if (cmd && changes.commands.has(cmd.topic)) this.#show(cmd.state, describe(cmd));
    for (const n of changes.notices) {
      if (n.ref === this.#ref || (n.topic && n.topic === this.#topicTried && !cmd)) this.#show("failed", n.text);
    }
  }
}
