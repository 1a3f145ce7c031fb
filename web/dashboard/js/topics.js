// Topic rules of the dashboard: which device a topic belongs to, what to
// call it on its tile, and MQTT filter matching for the message log.

// CONTROL is the prefix of the hub's own Clown.Talk topics.
export const CONTROL = "clown.talk/-/";

export const isControl = (topic) => topic.startsWith(CONTROL);

// isCommand: a publish on ".../set" is a command to a device, not a reading.
export const isCommand = (topic) => topic.endsWith("/set");

// deviceOf says which device a topic belongs to.
//
// The rule: devices publish under "<prefix>/<device>/<rest...>", the layout
// of Clown.Talk and HARDWARIO ("nodes/mote-1/thermometer/0:1/temperature",
// "node/kit-1/led/-/state"), so the device is the level after the first and
// the tile is named by the rest. A topic with only two levels ("demo/a") is
// the device "demo" with the tile "a"; a topic with one level is a device of
// its own. The key keeps the prefix, so "nodes/x" and "sites/x" stay apart.
export function deviceOf(topic) {
  const levels = topic.split("/");
  if (levels.length >= 3) {
    return { key: levels.slice(0, 2).join("/"), prefix: levels[0], name: levels[1], rest: levels.slice(2).join("/") };
  }
  if (levels.length === 2) {
    return { key: levels[0], prefix: "", name: levels[0], rest: levels[1] };
  }
  return { key: topic, prefix: "", name: topic, rest: topic };
}

// labelOf names a tile from the rest of its topic: the first and the last
// level ("thermometer/0:1/temperature" is "thermometer temperature"), where
// "-" (HARDWARIO's "any channel") and a final "state" say nothing.
export function labelOf(rest) {
  const levels = rest.split("/").filter((l) => l !== "-" && l !== "");
  if (levels.length > 1 && levels[levels.length - 1] === "state") levels.pop();
  if (levels.length === 0) return rest;
  if (levels.length === 1) return levels[0];
  return `${levels[0]} ${levels[levels.length - 1]}`;
}

// matchFilter reports whether an MQTT topic filter (with + and #) matches topic.
export function matchFilter(filter, topic) {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return i > 0 || !topic.startsWith("$");
    if (i >= t.length) return false;
    if (f[i] === "+") {
      if (i === 0 && topic.startsWith("$")) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

// topicQuery turns what someone typed in a filter box into a predicate: an
// MQTT filter when it has a wildcard, else a case-insensitive substring.
export function topicQuery(text) {
  const q = text.trim();
  if (q === "") return () => true;
  if (q.includes("+") || q.includes("#")) return (topic) => matchFilter(q, topic);
  const lower = q.toLowerCase();
  return (topic) => topic.toLowerCase().includes(lower);
}

// compareNatural orders "mote-2" before "mote-10".
const collator = new Intl.Collator("en", { numeric: true });
export const compareNatural = (a, b) => collator.compare(a, b);
