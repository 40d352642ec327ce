// The answer: the drawing preprocessed as MNIST was, run on the selected model, and shown: the best guess, its
// confidence, the inference time (last and warm median), the softmax bars, the 28x28 image the model read, and an
// announcement for screen readers. With the inside view open the "taps" program runs instead, and every layer is handed
// to it.

import { INK_SIZE } from "./drawing.js";
import { preprocess, fromMnist } from "./preprocess.js";
import { ProbabilityChart } from "./chart.js";
import { BACKEND_NAMES, median } from "./model.js";
import { drawDigit } from "./dom.js";

const PREVIEW_ONLY = { mean: 0, std: 1 };   // before a model's metadata arrives the preview needs the image, not the input
const RECENT = 50;                          // runs kept per model and backend for the median
export const ms = (x) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;

function softmax(logits) {
  const max = Math.max(...logits), exps = Array.from(logits, (v) => Math.exp(v - max)), sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / sum);
}

export class Prediction {
  /** `ui`: { prediction, confidence, inference, hint, announce, preview, chart: [bars, labels, table] }; `pad`: the
   *  drawing; `models`: the page's Models (it logs each prediction and watches the timings); `inside()`: the inside view
   *  if it is open for a model ({ view, shownFor(model) }), else null. */
  constructor(ui, { pad, models, inside }) {
    Object.assign(this, { ui, pad, models, inside });
    this.chart = new ProbabilityChart(...ui.chart);
    this.timings = new Map();   // "model/backend" -> recent inference times (ms)
    this.image = null;          // the drawing as the model reads it (784 values in [0, 1]), for teaching
    this.announced = "";
  }

  /** The drawing as 784 bytes, as the model reads it (or null with nothing drawn). */
  get pixels() { return this.image && Uint8Array.from(this.image, (v) => Math.round(v * 255)); }

  /** Read the drawing with `model` (the selected one, or null before the manifest is in) and show the answer. */
  async predict(model) {
    // a test digit put on the canvas as it is (a sample, a digit from the report) is read exactly as in the test set
    const contract = model?.meta ?? PREVIEW_ONLY, exact = this.pad.exactImage;
    const processed = this.pad.isBlank ? null : exact ? fromMnist(exact, contract) : preprocess(this.pad.pixels(), INK_SIZE, INK_SIZE, contract);
    this.image = processed?.image ?? null;
    drawDigit(this.ui.preview, this.pixels);
    const inside = model && this.inside(model);
    if (!processed) { this.empty(); inside?.update(model, null); return; }
    this.ui.hint.classList.add("invisible");
    if (!model?.run) return;
    const backend = model.backend, start = performance.now();
    this.models.activity++;
    const result = await model.run(processed.input, inside ? { taps: true } : undefined);
    const elapsed = performance.now() - start, logits = inside ? result.logits : result;
    if (!inside) this.models.observe(model, backend, elapsed);
    // a stroke may have ended, or the canvas been cleared, while this ran: show nothing stale
    if (this.pad.isBlank) { this.empty(); inside?.update(model, null); return; }
    inside?.update(model, result.taps);
    this.show(softmax(logits), this.timed(`${model.name}/${backend}${inside ? "/taps" : ""}`, elapsed), backend, Boolean(inside));
    this.models.log("prediction", model);
  }

  timed(key, elapsed) {
    const recent = this.timings.get(key) ?? [];
    recent.push(elapsed);
    if (recent.length > RECENT) recent.shift();
    this.timings.set(key, recent);
    return { elapsed, median: median(recent) };
  }

  show(probabilities, time, backend, withTaps) {
    const best = probabilities.indexOf(Math.max(...probabilities)), ui = this.ui;
    ui.prediction.textContent = String(best);
    ui.confidence.textContent = `${(probabilities[best] * 100).toFixed(1)}%`;
    ui.inference.textContent = `${ms(time.elapsed)} · median ${ms(time.median)} · ${BACKEND_NAMES[backend]}` + (withTaps ? " · with every layer" : "");
    this.chart.update(probabilities);
    this.announce(`Prediction: ${best}, ${(probabilities[best] * 100).toFixed(0)} percent`);
  }

  /** No answer on screen (the selected model cannot run): nothing another model read stays up as if it were this one's. */
  clear() {
    this.ui.prediction.textContent = "";
    this.ui.confidence.textContent = "–";
    this.ui.inference.textContent = "–";
    this.chart.update(null);
    this.announce("");
  }

  /** Nothing drawn: the hint instead of an answer. */
  empty() {
    this.ui.prediction.textContent = "";
    this.ui.confidence.textContent = "–";
    this.ui.hint.classList.remove("invisible");
    this.chart.update(null);
    this.announce("");
  }

  /** The model or backend changed: the last time no longer says how this one does. */
  forgetTime() { this.ui.inference.textContent = "–"; }

  announce(text) {
    if (text === this.announced) return;
    this.announced = text;
    this.ui.announce.textContent = text;
  }
}
