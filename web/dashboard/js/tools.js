// The tools above the device cards: search (a name, a topic, or an MQTT
// filter with + and #), sort (name, last change, area when devices have
// one), cards or a compact list (kept in localStorage), fold or unfold every
// card, forget the devices that went away, and how many cards show.

import { h, setText } from "./dom.js";

const VIEW_KEY = "motehub.view"; // "cards" | "list"

export class DeviceTools {
  #board;
  #count;
  #none;
  #restore;
  #forgetGone;
  #fold;
  #areaOption;
  #search;

  // root gets the tools; devices is the element of the cards (its class
  // says cards or list).
  constructor(root, devices, board) {
    this.#board = board;
    const search = h("input", {
      type: "search", class: "device-search", placeholder: "Search: name, topic or nodes/+/relay/#",
      "aria-label": "Search the devices by name, topic or MQTT filter", spellcheck: "false", autocomplete: "off",
      oninput: () => board.search(search.value),
    });
    this.#areaOption = h("option", { value: "area", hidden: true }, "Area");
    const sort = h("select", { class: "device-sort", "aria-label": "Sort the devices", onchange: () => board.order(sort.value) },
      h("option", { value: "name" }, "Name"), h("option", { value: "recent" }, "Last change"), this.#areaOption);
    const list = localStorage.getItem(VIEW_KEY) === "list";
    devices.classList.toggle("list", list);
    const view = h("button", {
      type: "button", class: "quiet view-toggle", "aria-pressed": String(list), title: "One row per device",
      onclick: () => {
        const on = !devices.classList.contains("list");
        devices.classList.toggle("list", on);
        view.setAttribute("aria-pressed", String(on));
        try {
          localStorage.setItem(VIEW_KEY, on ? "list" : "cards");
        } catch {
          // Not kept: the page still switches.
        }
      },
    }, "List view");
    this.#fold = h("button", {
      type: "button", class: "quiet fold-all",
      onclick: () => {
        board.collapse(undefined, !board.allCollapsed);
        this.#foldText();
      },
    }, "Fold all");
    this.#forgetGone = h("button", { type: "button", class: "quiet forget-gone", hidden: true, title: "Hide every device that is offline or silent, until it sends again",
      onclick: () => board.forgetGone() }, "Forget gone");
    this.#restore = h("button", { type: "button", class: "quiet small show-forgotten", hidden: true, onclick: () => board.unforget() }, "Show them");
    this.#count = h("span", { class: "device-count", role: "status", "aria-live": "polite" });
    this.#none = h("p", { class: "empty device-none", hidden: true });
    root.append(
      h("label", { class: "device-search-label" }, search),
      h("label", { class: "device-sort-label" }, "Sort ", sort),
      view, this.#fold, this.#forgetGone,
      h("span", { class: "device-counts" }, this.#count, this.#restore),
    );
    devices.before(this.#none);
    this.#search = search;
  }

  // counted is told after each arrangement of the cards.
  counted(board) {
    const { shown, total, hidden } = board;
    const searching = this.#search.value.trim() !== "";
    let text = "";
    if (searching) text = `${shown} of ${total - hidden} device${total - hidden === 1 ? "" : "s"}`;
    if (hidden) text += `${text ? " · " : ""}${hidden} forgotten`;
    setText(this.#count, text);
    this.#restore.hidden = hidden === 0;
    this.#none.hidden = !(searching && shown === 0 && total > 0);
    setText(this.#none, `No device matches “${this.#search.value.trim()}”.`);
    this.#areaOption.hidden = !board.hasAreas;
    this.#forgetGone.hidden = !board.anyGone;
    this.#foldText();
  }

  #foldText() {
    setText(this.#fold, this.#board.allCollapsed ? "Unfold all" : "Fold all");
  }
}
