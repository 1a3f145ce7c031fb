// The board: the device cards of the page, which of them show and in what
// order (search, sort, forgotten devices, collapsed cards), and when each
// is drawn. A card in view is drawn in the frame its device changes; one
// out of view is drawn when the page has idle time, a few at a time, and,
// in a page of many cards, at most every OFFSCREEN_PACE (it is drawn at
// once when it comes near the view), so that 500 devices updating every
// second never hold the main thread long.
//
// A card is an object the devices view makes:
//   key       unique, stable ("m:<model id>", "g:<generic key>")
//   el        its element, with a header (.device-head)
//   draw()    brings its element up to date with the store
//   tick(now) refreshes what depends on the clock
//   facts()   {name, id, area, time, topics, gone, shown} for search and sort:
//             time of its last change (ms), gone when offline or silent,
//             shown when it has something to show; asked after each drawing
//             and kept, so that arranging 500 cards costs little

import { h, setText } from "./dom.js";
import { compareNatural, topicQuery } from "./topics.js";

const IDLE_BUDGET = 6; // ms of drawing off-screen cards per idle period
const FRAME_BUDGET = 8; // ms of drawing in-view cards per frame; the rest waits a frame
const RECENT_REORDER = 5_000; // ms between two reorders by last change (they churn)
const NEAR = "25% 0px"; // a card this near the view is drawn as it changes, and its charts
const FAR = "200% 0px"; // a card further than two screens from the view is not laid out...
const MANY = 60; // ...once the page has more cards than this (fewer cost little to lay out)
const OFFSCREEN_PACE = 5_000; // ms between two drawings of a card out of view, once there are MANY
const MAX_REMEMBERED = 1_000; // forgotten devices and collapsed cards kept in localStorage, each

export class Board {
  #after; // cards go after this element
  #cards = new Map(); // key → card, ≤ the devices the store knows
  #visible = new Set(); // keys of cards in (or near) view, ≤ #cards
  #dirty = new Set(); // keys of cards to draw, oldest change first, ≤ #cards
  #observer = null;
  #farObserver = null;
  #idle = 0;
  #idleTimer = 0; // waits until an off-screen card is due to be drawn again
  #frame = 0;
  #arranged = 0; // when the cards were last ordered
  #onArrange;
  #onDrawn;
  #match = () => true;
  #sort = "name";
  #forgotten; // key → when it was forgotten (ms), ≤ MAX_REMEMBERED
  #collapsed; // keys of collapsed cards, ≤ MAX_REMEMBERED
  #detail = null; // (card) → void: opens a card's details
  shown = 0; // cards in the page: drawn, not forgotten, and that pass the search
  total = 0; // cards with something to show, forgotten ones too
  hidden = 0; // forgotten cards not shown
  hasAreas = false; // a card's device has an area (room)
  anyGone = false; // a shown card's device went away

  // The cards go after the element after (in its parent); onArrange(board) is told
  // after each arrangement (the toolbar's counts); onDrawn() when new cards
  // have been drawn (to arrange them in).
  constructor(after, onArrange = () => {}, onDrawn = () => {}) {
    this.#after = after;
    this.#onArrange = onArrange;
    this.#onDrawn = onDrawn;
    this.#forgotten = new Map(load("motehub.forgotten", []));
    this.#collapsed = new Set(load("motehub.collapsed", []));
    if (typeof IntersectionObserver === "function") {
      // Cards within a quarter of a screen of the view count as in view:
      // scrolling finds them drawn. (Each card drawn in view is laid out
      // anew in that frame: the margin is what a frame can afford.)
      this.#observer = new IntersectionObserver((entries) => this.#seen(entries), { rootMargin: NEAR });
      // Far cards skip layout and paint (class "far"): with 500 cards in
      // the page, laying them all out is what costs, not drawing them.
      this.#farObserver = new IntersectionObserver((entries) => {
        const many = this.#cards.size > MANY;
        for (const e of entries) e.target.classList.toggle("far", many && !e.isIntersecting);
      }, { rootMargin: FAR });
    }
  }

  set detail(fn) {
    this.#detail = fn;
  }

  get sort() {
    return this.#sort;
  }

  // add takes a new card; it is drawn soon and placed at the next arrange.
  add(card) {
    this.#cards.set(card.key, card);
    this.#decorate(card);
    this.#observer?.observe(card.el);
    this.#farObserver?.observe(card.el);
    this.touch(card.key);
  }

  remove(key) {
    const card = this.#cards.get(key);
    if (!card) return;
    this.#observer?.unobserve(card.el);
    this.#farObserver?.unobserve(card.el);
    card.el.remove();
    this.#cards.delete(key);
    this.#visible.delete(key);
    this.#dirty.delete(key);
  }

  get(key) {
    return this.#cards.get(key);
  }

  keys() {
    return this.#cards.keys();
  }

  // touch notes that a card needs drawing.
  touch(key) {
    if (!this.#cards.has(key)) return;
    this.#dirty.delete(key); // to the end: the oldest change is drawn first
    this.#dirty.add(key);
  }

  // flush draws the touched cards in view, and new ones, now (within a
  // frame's budget, the rest in the next frames), and leaves the others to
  // idle time. A card goes in the page once drawn.
  flush() {
    const start = performance.now();
    let placed = false;
    for (const key of this.#dirty) {
      if (!this.#urgent(key)) continue;
      if (performance.now() - start > FRAME_BUDGET) break;
      placed = this.#draw(key) || placed;
    }
    if (placed) this.#onDrawn();
    this.#later();
  }

  // urgent: a card in view, or one never drawn.
  #urgent(key) {
    return this.#visible.has(key) || !this.#cards.get(key).drawn;
  }

  // draw draws a card, and says whether the page must be arranged anew:
  // the card is new, or has come to have something to show, or none.
  #draw(key) {
    this.#dirty.delete(key);
    const card = this.#cards.get(key);
    const was = card.drawn ? card.known.shown : undefined;
    card.draw();
    if (this.#visible.has(key)) showCharts(card, true); // charts it may have made
    card.drawn = true;
    card.drawnAt = Date.now();
    this.#mark(card);
    return card.known.shown !== was;
  }

  // later asks for another frame for urgent cards still to draw, and idle
  // time for the others.
  #later() {
    let urgent = false;
    for (const key of this.#dirty) {
      if (this.#urgent(key)) {
        urgent = true;
        break;
      }
    }
    if (urgent && !this.#frame) {
      this.#frame = requestAnimationFrame(() => {
        this.#frame = 0;
        this.flush();
      });
    }
    if (this.#dirty.size && !this.#idle && !this.#idleTimer) this.#idle = idleCallback((deadline) => this.#drawIdle(deadline));
  }

  // drawIdle draws cards out of view that are due, within the idle
  // period's budget; when none is due, it waits for the first that will be.
  #drawIdle(deadline) {
    this.#idle = 0;
    const start = performance.now();
    const now = Date.now();
    const pace = this.#cards.size > MANY ? OFFSCREEN_PACE : 0;
    let placed = false;
    let next = Infinity; // when the next card is due
    for (const key of this.#dirty) {
      if (performance.now() - start > IDLE_BUDGET || deadline.timeRemaining() <= 0) {
        next = now;
        break;
      }
      const card = this.#cards.get(key);
      const due = card.drawn && !this.#visible.has(key) ? card.drawnAt + pace : 0;
      if (due > now) next = Math.min(next, due);
      else placed = this.#draw(key) || placed;
    }
    if (placed) this.#onDrawn();
    if (next > now && next < Infinity) {
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = 0;
        this.#later();
      }, next - now);
    }
    this.#later();
  }

  #seen(entries) {
    let drawNow = false;
    for (const e of entries) {
      const key = e.target.dataset.boardKey;
      const card = this.#cards.get(key);
      if (!card) continue;
      if (e.isIntersecting) {
        this.#visible.add(key);
        if (this.#dirty.has(key)) drawNow = true;
        else card.tick(Date.now());
      } else {
        this.#visible.delete(key);
      }
      showCharts(card, e.isIntersecting);
    }
    if (drawNow) this.flush();
  }

  // tick refreshes the clock of the cards in view (the others when drawn),
  // and reorders by last change now and then.
  tick(now = Date.now()) {
    for (const key of this.#visible) {
      const card = this.#cards.get(key);
      card?.tick(now);
      if (card) this.#mark(card);
    }
    if (this.#sort === "recent" && now - this.#arranged >= RECENT_REORDER) this.arrange();
  }

  // search sets what the cards must match: a name, a topic, or an MQTT
  // filter with + and # that one of the card's topics matches.
  search(text) {
    const q = text.trim();
    const byTopic = topicQuery(q);
    const lower = q.toLowerCase();
    const wildcard = q.includes("+") || q.includes("#");
    this.#match = q === "" ? () => true : (f) => f.topics.some(byTopic) ||
      (!wildcard && [f.name, f.id, f.area].some((s) => s && s.toLowerCase().includes(lower)));
    this.arrange(true);
  }

  // order sorts the cards: "name", "recent" (last change first) or "area".
  order(sort) {
    this.#sort = sort;
    this.arrange(true);
  }

  // arrange shows the cards that match, in order, and hides the others
  // (and those forgotten, until their device speaks again). It goes by what
  // each card was when last drawn, or, fresh (for a person's search or
  // sort), by what each is now.
  arrange(fresh = false) {
    this.#arranged = Date.now();
    const list = [];
    let total = 0;
    let hidden = 0;
    let areas = false;
    let gone = false;
    for (const card of this.#cards.values()) {
      if (!card.drawn) continue; // not in the page yet
      if (fresh) card.known = card.facts();
      const f = card.known;
      let show = f.shown;
      if (f.shown) {
        total++;
        areas ||= Boolean(f.area);
        const forgotten = this.#forgotten.get(card.key);
        if (forgotten !== undefined && f.time > forgotten) this.#remember(card.key, undefined); // it spoke again
        else if (forgotten !== undefined) {
          hidden++;
          show = false;
        }
      }
      if (show && this.#match(f)) {
        list.push({ card, f });
        gone ||= f.gone;
      } else if (card.el.isConnected) {
        card.el.remove();
      }
    }
    list.sort(comparer(this.#sort));
    let prev = this.#after;
    for (const { card } of list) {
      if (prev.nextSibling !== card.el) prev.after(card.el);
      prev = card.el;
    }
    this.shown = list.length;
    this.total = total;
    this.hidden = hidden;
    this.hasAreas = areas;
    this.anyGone = gone;
    this.#onArrange(this);
  }

  // forget hides a card until its device changes again; forgetAll every
  // card whose device went away.
  forget(key) {
    const card = this.#cards.get(key);
    if (!card) return;
    this.#remember(key, Math.max(card.known?.time ?? 0, Date.now()));
    this.arrange();
  }

  forgetGone() {
    for (const card of this.#cards.values()) {
      const f = card.known;
      if (f?.shown && f.gone) this.#remember(card.key, Math.max(f.time, Date.now()));
    }
    this.arrange();
  }

  // unforget shows every forgotten card again.
  unforget() {
    this.#forgotten.clear();
    save("motehub.forgotten", []);
    this.arrange(true);
  }

  #remember(key, when) {
    if (when === undefined) this.#forgotten.delete(key);
    else {
      this.#forgotten.delete(key);
      this.#forgotten.set(key, when);
      while (this.#forgotten.size > MAX_REMEMBERED) this.#forgotten.delete(this.#forgotten.keys().next().value);
    }
    save("motehub.forgotten", [...this.#forgotten]);
  }

  // collapse folds one card (or, without a key, every card) to its header.
  collapse(key, folded) {
    const keys = key === undefined ? [...this.#cards.keys()] : [key];
    for (const k of keys) {
      this.#collapsed.delete(k);
      if (folded) this.#collapsed.add(k);
      const card = this.#cards.get(k);
      if (card) this.#mark(card);
    }
    while (this.#collapsed.size > MAX_REMEMBERED) this.#collapsed.delete(this.#collapsed.values().next().value);
    save("motehub.collapsed", [...this.#collapsed]);
  }

  get allCollapsed() {
    for (const k of this.#cards.keys()) if (!this.#collapsed.has(k)) return false;
    return this.#cards.size > 0;
  }

  // decorate gives a card's header its buttons: fold, details, forget.
  #decorate(card) {
    card.el.dataset.boardKey = card.key;
    // Not laid out until the observer finds it near the view.
    if (this.#farObserver && this.#cards.size > MANY) card.el.classList.add("far");
    const head = card.el.querySelector(".device-head");
    const name = head.querySelector("h2")?.textContent ?? card.key;
    const fold = h("button", { type: "button", class: "quiet small card-fold", "aria-expanded": "true", title: "Fold this card to its name",
      onclick: () => this.collapse(card.key, fold.getAttribute("aria-expanded") === "true") }, "▾");
    const details = h("button", { type: "button", class: "quiet small card-details", title: "Charts of its history, and all its entities with their full topics",
      onclick: () => this.#detail?.(card) }, "Details");
    const forget = h("button", { type: "button", class: "quiet small card-forget", title: "Hide this device until it sends something again",
      onclick: () => this.forget(card.key) }, "Forget");
    fold.setAttribute("aria-label", `Fold ${name}`);
    head.prepend(fold);
    head.append(h("span", { class: "card-actions" }, details, forget));
    card.fold = fold;
  }

  // mark sets the classes a card's state calls for (folded, gone).
  #mark(card) {
    card.known = card.facts(); // what arrange sorts and searches by, as of this drawing
    const gone = String(card.known.gone);
    if (card.el.dataset.gone !== gone) {
      card.el.dataset.gone = gone;
      if (gone === "true") this.anyGone = true;
    }
    const folded = this.#collapsed.has(card.key);
    card.el.classList.toggle("folded", folded);
    if (card.fold.getAttribute("aria-expanded") !== String(!folded)) {
      card.fold.setAttribute("aria-expanded", String(!folded));
      setText(card.fold, folded ? "▸" : "▾");
      card.fold.title = folded ? "Unfold this card" : "Fold this card to its name";
    }
  }
}

// showCharts tells the charts of a card (chart.js) whether it is in view:
// out of view they keep their series and draw it when seen.
function showCharts(card, visible) {
  for (const el of card.el.querySelectorAll("figure.chart")) el.chart?.seen(visible);
}

function comparer(sort) {
  const byName = (a, b) => compareNatural(a.f.name, b.f.name) || compareNatural(a.f.id, b.f.id);
  switch (sort) {
    case "recent":
      return (a, b) => b.f.time - a.f.time || byName(a, b);
    case "area":
      // Devices without an area go last.
      return (a, b) => (a.f.area ? 0 : 1) - (b.f.area ? 0 : 1) || compareNatural(a.f.area ?? "", b.f.area ?? "") || byName(a, b);
    default:
      return byName;
  }
}

// idleCallback runs fn when the page is idle, or within half a second.
function idleCallback(fn) {
  if (typeof requestIdleCallback === "function") return requestIdleCallback(fn, { timeout: 500 });
  return setTimeout(() => {
    const start = performance.now();
    fn({ timeRemaining: () => Math.max(0, IDLE_BUDGET - (performance.now() - start)) });
  }, 50);
}

function load(name, fallback) {
  try {
    const v = JSON.parse(localStorage.getItem(name) ?? "null");
    return Array.isArray(v) ? v.slice(-MAX_REMEMBERED) : fallback;
  } catch {
    return fallback;
  }
}

function save(name, value) {
  try {
    localStorage.setItem(name, JSON.stringify(value));
  } catch {
    // Private mode or full: the page forgets it at reload, nothing worse.
  }
}
