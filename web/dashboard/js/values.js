// What a payload is, and how to show it. Payloads are JSON values as the hub
// delivers them (Clown.Talk): numbers, [number, "unit"], {"state": bool},
// booleans, strings, objects, and {"$base64": "..."} for binary data.

// classify describes a payload:
//   {kind: "number", value, unit}   21.5, or [21.5, "°C"]
//   {kind: "switch", on, shape}     {"state": true} or true: a state a command can change
//   {kind: "text", text}            any other value, shown compactly
// shape is "object" for {"state": bool} and "bool" for a bare boolean, so
// that a command asks in the same shape as the device reports.
export function classify(payload) {
  if (typeof payload === "number" && Number.isFinite(payload)) {
    return { kind: "number", value: payload, unit: "" };
  }
  if (
    Array.isArray(payload) && payload.length === 2 &&
    typeof payload[0] === "number" && Number.isFinite(payload[0]) && typeof payload[1] === "string"
  ) {
    return { kind: "number", value: payload[0], unit: payload[1] };
  }
  if (typeof payload === "boolean") return { kind: "switch", on: payload, shape: "bool" };
  if (isObject(payload) && typeof payload.state === "boolean" && Object.keys(payload).length === 1) {
    return { kind: "switch", on: payload.state, shape: "object" };
  }
  return { kind: "text", text: formatText(payload) };
}

// commandFor is the payload that asks a switch for the state on.
export const commandFor = (shape, on) => (shape === "object" ? { state: on } : on);

// formatNumber shows a reading: grouped digits, at most three decimals.
export function formatNumber(value, locale) {
  return numberFormat(locale).format(value);
}

// numberFormat is formatNumber's formatter for locale, made once: making
// one costs far more than formatting (500 devices format thousands of
// readings a second). At most MAX_FORMATS are kept.
const MAX_FORMATS = 8;
const formats = new Map(); // locale ("" for the page's) → Intl.NumberFormat, ≤ MAX_FORMATS
function numberFormat(locale) {
  const key = locale ?? "";
  let f = formats.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, { maximumFractionDigits: 3 });
    if (formats.size >= MAX_FORMATS) formats.delete(formats.keys().next().value);
    formats.set(key, f);
  }
  return f;
}

// formatValue is a payload as one line of text, with its unit: [21.5, "°C"]
// is "21.5 °C", {"state": true} is "on".
export function formatValue(payload, locale) {
  const c = classify(payload);
  switch (c.kind) {
    case "number":
      return c.unit ? `${formatNumber(c.value, locale)} ${c.unit}` : formatNumber(c.value, locale);
    case "switch":
      return c.on ? "on" : "off";
    default:
      return c.text;
  }
}

// formatText shows any other payload briefly: a string as itself, an
// object as "key value · key value", binary data by its size.
export function formatText(payload) {
  if (payload === null) return "null";
  if (typeof payload === "string") return payload;
  if (isObject(payload)) {
    const keys = Object.keys(payload);
    if (keys.length === 1 && typeof payload.$base64 === "string") {
      return `binary, ${base64Bytes(payload.$base64)} bytes`;
    }
    if (keys.length === 0) return "{}";
    return keys.map((k) => `${k} ${short(payload[k])}`).join(" · ");
  }
  return short(payload);
}

function short(v) {
  if (typeof v === "string") return v;
  const s = JSON.stringify(v);
  return s.length > 80 ? s.slice(0, 79) + "…" : s;
}

function base64Bytes(s) {
  const clean = s.replace(/=+$/, "");
  return Math.floor((clean.length * 3) / 4);
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// ago is how long before now a time in milliseconds was: "just now", "5 s",
// "3 min", "2 h", "4 d".
export function ago(time, now = Date.now()) {
  const s = Math.max(0, Math.round((now - time) / 1000));
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

// clock is a time of day with milliseconds, for the message log.
export function clock(time) {
  const d = new Date(time);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
