// Who is logged in, and what they may do: the user's name in the header
// with log-out (or log-in), an Admin link for admins, the Publish form only
// for users who may write something, and the controls of topics the user
// may not write disabled, with the reason in their title.
//
// The rights come from GET /api/me when the page loads (which also says how
// the user logged in), then from each config/ok of the live session (the
// status's "me", set by session.js), so a reload of the users file shows at
// the next reconnection. They are the users file's rules, decided here with
// the same MQTT filter matching as the hub's; the hub still checks every
// command, so a page with stale rights gets a "forbidden" answer, not more.

import { h } from "./dom.js";
import { mayWrite, readOnlyTitle, rightsOf, writesNothing } from "./rights.js";

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export class MeView {
  #store;
  #el;
  #publish;
  #devices;
  #rights = null;
  #login = ""; // how the user logged in, from /api/me
  #observer;
  #checkedAttempt = -1;

  // el is the header's place for the user; publish the Publish form's
  // section; devices the root of the cards, whose controls it watches.
  constructor(el, publish, devices, store) {
    this.#store = store;
    this.#el = el;
    this.#publish = publish;
    this.#devices = devices;
    this.#observer = new MutationObserver((records) => {
      for (const rec of records) for (const n of rec.addedNodes) if (n.nodeType === Node.ELEMENT_NODE) this.#mark(n);
    });
    this.#fetch();
  }

  // fetch asks the hub who this page is; a 401 means the login is gone
  // (expired, logged out elsewhere, the hub restarted): off to the login page.
  async #fetch() {
    let res;
    try {
      res = await fetch("/api/me", { headers: { Accept: "application/json" }, cache: "no-store" });
    } catch {
      return; // the hub is down: the connection indicator says so
    }
    if (res.status === 401) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      return;
    }
    if (!res.ok) return;
    const body = await res.json().catch(() => null);
    this.#login = typeof body?.login === "string" ? body.login : "";
    // The live session's rights, once it has them, are the newer ones.
    this.#set(rightsOf(this.#store.status.me) ?? rightsOf(body), true);
  }

  render(changes) {
    if (!changes.all && !changes.status) return;
    const s = this.#store.status;
    const rights = rightsOf(s.me);
    if (rights && !same(rights, this.#rights)) this.#set(rights, false);
    // With a users file, each failed attempt to reconnect may be a login
    // that is gone (an open hub turns nobody away: no need to ask, nor to
    // log a refused request in the console while it is down).
    if (this.#rights && !this.#rights.open && s.state === "reconnecting" && s.attempt !== this.#checkedAttempt) {
      this.#checkedAttempt = s.attempt;
      this.#fetch();
    }
  }

  #set(rights, force) {
    if (!rights || (!force && same(rights, this.#rights))) return;
    this.#rights = rights;
    this.#draw();
    this.#publish.hidden = writesNothing(rights);
    if (rights.open) this.#observer.disconnect();
    else this.#observer.observe(this.#devices, { childList: true, subtree: true });
    this.#mark(this.#devices);
  }

  #draw() {
    const r = this.#rights;
    const parts = [];
    if (r.open) {
      parts.push(h("span", { class: "badge me-open", title: "No users file: everyone may read and write everything" }, "open hub"));
    } else {
      const how = { session: "logged in", basic: "logged in with HTTP Basic", token: "logged in with an API token", anonymous: "not logged in" }[this.#login] ?? "logged in";
      const user = h("span", { class: "me-user", title: `${r.user}: ${how}` }, r.user);
      parts.push(user);
      if (writesNothing(r)) parts.push(h("span", { class: "badge me-read-only", title: "You may read, not publish or command" }, "read-only"));
    }
    if (r.admin) parts.push(h("a", { class: "me-admin", href: "/admin" }, "Admin"));
    if (this.#login === "session") {
      parts.push(h("form", { class: "me-logout", method: "post", action: "/logout" },
        h("button", { type: "submit", class: "quiet small" }, "Log out")));
    } else if (!r.open && this.#login === "anonymous") {
      parts.push(h("a", { class: "me-login", href: `/login?next=${encodeURIComponent(location.pathname + location.search)}` }, "Log in"));
    }
    this.#el.replaceChildren(...parts);
    this.#el.dataset.user = r.user;
  }

  // mark disables the controls of the tiles in or around root whose command
  // topic the user may not write, and enables those they may.
  #mark(root) {
    const tile = root.closest("[data-command-topic]");
    const tiles = tile ? [tile] : root.querySelectorAll("[data-command-topic]");
    for (const tile of tiles) {
      const topic = tile.dataset.commandTopic;
      const ok = mayWrite(this.#rights, topic);
      tile.classList.toggle("read-only", !ok);
      for (const control of tile.querySelectorAll("button, input, select")) {
        if (control.disabled === !ok) continue;
        control.disabled = !ok;
        if (ok) control.removeAttribute("title");
        else control.title = readOnlyTitle(topic);
      }
    }
  }
}
