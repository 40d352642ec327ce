// Inside the model, loaded on demand: what each layer computes for the drawing on the canvas (live), and the learned
// weights of the first layer. The layers and their shapes come from the model's metadata (the exporter's taps).

import { h } from "./dom.js";

const MAX_UNITS_SHOWN = 64;   // the MLP's first layer has 1 024 units of 784 weights each: a sample of them

// values -> grey levels, 0 black; negative values (logits, weights) in a second hue
function paint(pixels, values, scale, signed) {
  for (let i = 0; i < values.length; i++) {
    const v = Math.max(-1, Math.min(1, values[i] / scale));
    const [r, g, b] = !signed ? [v * 255, v * 255, v * 255]
      : v >= 0 ? [255 * v, 120 * v, 40 * v] : [40 * -v, 140 * -v, 255 * -v];
    pixels.set([r, g, b, 255], i * 4);
  }
}

/** Lay `count` maps of h x w out on a grid, one pixel gap; returns the canvas size and where each map starts. */
function mosaic(count, h, w) {
  const columns = Math.ceil(Math.sqrt(count * h / w)), rows = Math.ceil(count / columns);
  return { width: columns * (w + 1) - 1, height: rows * (h + 1) - 1, at: (i) => [(i % columns) * (w + 1), Math.floor(i / columns) * (h + 1)] };
}

/** Draw maps (count x h x w values, channel-major) as a mosaic onto `canvas`; scale by the largest magnitude. */
function drawMaps(canvas, values, count, h, w, signed) {
  const grid = mosaic(count, h, w);
  canvas.width = grid.width;
  canvas.height = grid.height;
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(grid.width, grid.height);
  let scale = 1e-6;
  for (const v of values) scale = Math.max(scale, Math.abs(v));
  const tile = new Uint8ClampedArray(h * w * 4);
  for (let c = 0; c < count; c++) {
    paint(tile, values.subarray(c * h * w, (c + 1) * h * w), scale, signed);
    const [x0, y0] = grid.at(c);
    for (let y = 0; y < h; y++) image.data.set(tile.subarray(y * w * 4, (y + 1) * w * 4), ((y0 + y) * grid.width + x0) * 4);
  }
  ctx.putImageData(image, 0, 0);
}

// a layer's values as maps: conv outputs (1, C, H, W) are C maps; a vector of n units is one square-ish map
function asMaps(shape) {
  if (shape.length === 4) return { count: shape[1], h: shape[2], w: shape[3] };
  const n = shape[shape.length - 1], w = Math.ceil(Math.sqrt(n));
  return { count: 1, h: Math.ceil(n / w), w };
}

function describe(shape) { return shape.length === 4 ? `${shape[1]} maps of ${shape[2]}×${shape[3]}` : `${shape[shape.length - 1]} values`; }

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;

export class InsideView {
  /** `strip`: { first, firstName, logits }, the compact copy of the first layer and the logits beside the answer. */
  constructor(activations, weights, strip) {
    this.activations = activations;   // one <figure data-layer> per layer, filled with each prediction
    this.weights = weights;
    this.strip = strip;
    this.shownFor = null;
  }

  /** Build the figures for `model`'s layers (once per model), and its first layer's weights. */
  show(model, weightsTensor) {
    if (this.shownFor === model.name) return;
    this.shownFor = model.name;
    this.activations.replaceChildren(...model.meta.taps.map((tap) => h("figure", { class: "min-w-0", dataset: { layer: tap.name, mean: "" } },
      h("canvas", { class: "pixelated w-full rounded bg-black", role: "img", "aria-label": `Activations of layer ${tap.name}: ${describe(tap.shape)}` }),
      h("figcaption", { class: "mt-1 text-xs text-slate-600 dark:text-slate-400" },
        h("span", { class: "font-medium text-slate-800 dark:text-slate-200" }, tap.name), ` · ${describe(tap.shape)} · `,
        h("span", { "data-summary": true }, "–")))));
    this.showWeights(model, weightsTensor);
  }

  /** The values each layer computed for the current drawing (null: the canvas is empty). */
  update(model, taps) {
    for (const tap of model.meta.taps) {
      const figure = this.activations.querySelector(`[data-layer="${tap.name}"]`), values = taps?.[tap.name];
      if (!figure) continue;
      const { count, h, w } = asMaps(tap.shape), data = values ?? new Float32Array(count * h * w);
      const signed = data.some((v) => v < 0);
      drawMaps(figure.querySelector("canvas"), data, count, h, w, signed);
      const m = values ? mean(values) : NaN;
      figure.dataset.mean = values ? String(m) : "";
      let active = 0;
      if (values) for (const v of values) active += v > 0;
      figure.querySelector("[data-summary]").textContent = values
        ? `mean ${m.toFixed(3)}, ${Math.round((100 * active) / values.length)}% positive` : "–";
      if (tap === model.meta.taps[0]) {
        drawMaps(this.strip.first, data, count, h, w, signed);
        this.strip.firstName.textContent = tap.name;
      } else if (tap === model.meta.taps.at(-1)) drawMaps(this.strip.logits, data, 1, 1, data.length, true);
    }
  }

  showWeights(model, tensor) {
    const first = model.meta.taps.find((t) => t.weight);
    if (!first) { this.weights.replaceChildren(); return; }
    const { data, shape } = tensor(first.weight);
    let maps, caption;
    if (shape.length === 4) {                      // conv filters (out, in, kh, kw): the first input channel of each
      const [out, , kh, kw] = shape, per = data.length / out;
      maps = { count: out, h: kh, w: kw, values: new Float32Array(out * kh * kw) };
      for (let o = 0; o < out; o++) maps.values.set(data.subarray(o * per, o * per + kh * kw), o * kh * kw);
      caption = `${out} filters of ${kh}×${kw}, the first layer's (${first.weight}): what each feature map looks for`;
    } else {                                       // linear (out, 784): each unit's weights as a 28x28 image
      const [out, inputs] = shape, side = Math.round(Math.sqrt(inputs)), shown = Math.min(out, MAX_UNITS_SHOWN);
      const stride = Math.floor(out / shown);
      maps = { count: shown, h: side, w: side, values: new Float32Array(shown * inputs) };
      for (let u = 0; u < shown; u++) maps.values.set(data.subarray(u * stride * inputs, (u * stride + 1) * inputs), u * inputs);
      caption = `${shown} of the first layer's ${out} units (${first.weight}), each unit's 784 weights as a 28×28 image`;
    }
    const canvas = h("canvas", { class: "pixelated w-full max-w-md rounded bg-black", role: "img", "aria-label": caption });
    drawMaps(canvas, maps.values, maps.count, maps.h, maps.w, true);
    this.weights.replaceChildren(h("figure", {}, canvas,
      h("figcaption", { class: "mt-1 text-xs text-slate-600 dark:text-slate-400" }, `${caption}. Orange: positive weights, blue: negative.`)));
  }
}
