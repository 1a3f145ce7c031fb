// h builds an element: h("li", {class: "tile", dataset: {topic}}, child, "text").
// Attributes with a value of false, null or undefined are left out.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// setText changes an element's text only when it differs (no layout work otherwise).
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
