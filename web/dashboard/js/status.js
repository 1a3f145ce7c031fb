// The connection indicator, and the hub's notices (errors, resyncs).

import { h, setText } from "./dom.js";

const NOTICE_MS = { info: 6000, warn: 10000, error: 15000 };

export class StatusView {
  #store;
  #el;
  #text;
  #detail;
  #retry;
  #summary;
  #notices;
  #link;

  constructor(indicator, summary, notices, store, link) {
    this.#store = store;
    this.#el = indicator;
    this.#summary = summary;
    this.#notices = notices;
    this.#text = h("span", { class: "conn-text" });
    this.#detail = h("span", { class: "conn-detail" });
    this.#retry = h("button", { type: "button", class: "quiet small", hidden: true, onclick: () => link.retry() }, "Retry now");
    indicator.append(h("span", { class: "conn-dot", "aria-hidden": "true" }), this.#text, this.#detail, this.#retry);
    this.#link = link;
  }

  render(changes) {
    if (changes.all || changes.status) this.tick();
    if (changes.all || changes.structure || changes.devices.size || changes.modelStructure) {
      const d = this.#store.shownDevices();
      const t = this.#store.tiles.size;
      setText(this.#summary, d ? `${d} device${d === 1 ? "" : "s"} · ${t} topic${t === 1 ? "" : "s"}` : "");
    }
    for (const n of changes.notices) this.#notice(n);
  }

  // tick refreshes the countdown to the next attempt.
  tick(now = Date.now()) {
    const s = this.#store.status;
    this.#el.dataset.state = s.state;
    document.body.classList.toggle("offline", s.state !== "live");
    let text = "Connecting…";
    let detail = "";
    if (s.state === "live") {
      text = "Live";
      detail = s.tabs > 1 ? `shared by ${s.tabs} tabs` : "";
      if (s.resumed === "resynced") detail = detail ? `${detail} · resynced` : "resynced";
    } else if (s.state === "reconnecting") {
      const wait = Math.max(0, Math.ceil((s.retryAt - now) / 1000));
      text = s.retryAt && wait > 0 ? `Reconnecting in ${wait} s` : "Reconnecting…";
      detail = s.closeReason || "";
    }
    setText(this.#text, text);
    setText(this.#detail, detail);
    this.#el.title = `${text}${detail ? ` (${detail})` : ""}; ${this.#link.mode === "shared" ? "one connection shared by this browser's tabs" : "this tab's own connection"}`;
    this.#retry.hidden = s.state !== "reconnecting";
  }

  #notice(n) {
    const close = h("button", { type: "button", class: "quiet small", "aria-label": "Dismiss" }, "✕");
    const el = h("div", { class: `notice ${n.level}`, role: n.level === "error" ? "alert" : "status" }, h("span", {}, n.text), close);
    const remove = () => el.remove();
    close.addEventListener("click", remove);
    setTimeout(remove, NOTICE_MS[n.level] ?? 8000);
    this.#notices.append(el);
    while (this.#notices.childElementCount > 4) this.#notices.firstElementChild.remove();
  }
}
