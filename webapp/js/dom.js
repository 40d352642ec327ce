// Building DOM nodes without HTML strings: h("p", { class: "x", dataset: { testid: "y" } }, "text", child...). Text is
// always text (never parsed as HTML), so nothing a file or a visitor supplies can become markup or script. And drawing a
// 28x28 digit, which the preview, the report, the trainer and its samples all show.

/** A whole number with thousands separated as en-US writes them (12,345): toLocaleString's first call sets up ICU, some
 *  15 ms the first answer waited for on a slow phone. */
export const formatCount = (n) => String(Math.round(n)).replace(/\B(?=(\d{3})+$)/g, ",");

/** A size in bytes as people read it: "387 KB", "5.6 MB". */
export const formatBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`);

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

/** A 28x28 digit (784 grey levels, 0-255, white on black) into `image` (an ImageData) with its top left at (x0, y0). */
export function paintDigit(image, pixels, x0 = 0, y0 = 0) {
  for (let i = 0; i < 784; i++) {
    const v = pixels[i], at = ((y0 + Math.floor(i / 28)) * image.width + x0 + (i % 28)) * 4;
    image.data[at] = image.data[at + 1] = image.data[at + 2] = v;
    image.data[at + 3] = 255;
  }
}

/** A 28x28 digit (grey levels 0-255, or null for black) onto a 28x28 canvas. */
export function drawDigit(canvas, pixels) {
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(28, 28);
  paintDigit(image, pixels ?? new Uint8Array(784));
  ctx.putImageData(image, 0, 0);
}
