// A user's rights as the hub states them (config/ok, GET /api/me): the
// users file's rules, decided with MQTT filter matching as the hub decides.
// Pure functions, no DOM: the SharedWorker's client uses them too.

import { matchFilter } from "./topics.js";

// rightsOf takes {user, open, admin, rules} from an answer of the hub, or
// null when it has none.
export function rightsOf(p) {
  if (p === null || typeof p !== "object" || typeof p.user !== "string") return null;
  const rules = Array.isArray(p.rules) ? p.rules.filter((r) => r && typeof r.filter === "string") : [];
  return { user: p.user, open: p.open === true, admin: p.admin === true, rules: rules.map((r) => ({ filter: r.filter, read: r.read === true, write: r.write === true })) };
}

// mayWrite reports whether rights let their user publish on topic; with
// no rights known yet, the hub will say.
export function mayWrite(rights, topic) {
  if (!rights || rights.open) return true;
  return rights.rules.some((r) => r.write && matchFilter(r.filter, topic));
}

// writesNothing: rights that let their user publish nowhere.
export const writesNothing = (rights) => rights !== null && !rights.open && !rights.rules.some((r) => r.write);

// readOnlyTitle is what a control the user may not use says.
export const readOnlyTitle = (topic) => `read-only: you may not write ${topic}`;
