// The detail view of a device: every entity (or topic) with its value, its
// whole state topic and field, its command topic, and when it last changed,
// in a dialog. It shows the device as it was when opened.

import { h } from "./dom.js";
import { ago } from "./values.js";

let dialog = null;

// openDetail shows {title, subtitle, rows: [{label, value, topic, field, command, time}]}.
export function openDetail({ title, subtitle, rows }) {
  if (!dialog) {
    dialog = h("dialog", { class: "detail", "aria-labelledby": "detail-title" });
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close(); // a click on the backdrop
    });
    document.body.append(dialog);
  }
  const now = Date.now();
  const body = rows.map((r) => h("tr", {},
    h("th", { scope: "row" }, r.label),
    h("td", { class: "detail-value" }, r.value),
    h("td", {}, h("code", { class: "detail-topic" }, r.topic || "—"), r.field ? h("span", { class: "detail-field" }, ` · ${r.field}`) : null),
    h("td", {}, r.command ? h("code", { class: "detail-topic" }, r.command) : "—"),
    h("td", { class: "detail-time", title: Number.isFinite(r.time) ? new Date(r.time).toLocaleString() : "" }, Number.isFinite(r.time) ? ago(Math.min(r.time, now), now) : "—")));
  dialog.replaceChildren(
    h("header", { class: "panel-head" },
      h("h2", { id: "detail-title" }, title),
      h("form", { method: "dialog" }, h("button", { class: "quiet", "aria-label": "Close the details" }, "Close"))),
    h("p", { class: "detail-subtitle" }, subtitle),
    h("div", { class: "detail-scroll" },
      h("table", { class: "detail-table" },
        h("thead", {}, h("tr", {}, ["Entity", "Value", "State topic", "Command topic", "Changed"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, body))));
  if (!dialog.open) dialog.showModal();
}
