// Building DOM nodes without HTML strings: h("p", { class: "x", dataset: { testid: "y" } }, "text", child...). Text is
// always text (never parsed as HTML), so nothing a file or a visitor supplies can become markup or script.

/** An element: `props` are attributes (class, id, aria-*, type...), with `dataset` and `on<event>` handled apart. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}
