// The "Train from scratch" panel's elements and what they show: the settings (read and checked), Start / Pause / Stop and
// the status, the live curves, the held-out digits it gets wrong, the training data's progress and a grid of its first
// digits, and the result with its report. trainer.js decides what happens; this module only shows it.

import { plot } from "./plot.js";
import { ReportView } from "./report.js";
import { h, paintDigit, drawDigit, formatCount } from "./dom.js";
export const LIMITS = { samples: [1000, 60000], epochs: [0.1, 30], lr: [1e-5, 0.1], seed: [0, 2 ** 31 - 1] };
const COLORS = { loss: "#6366f1", batch: "#94a3b8", heldOut: "#059669" };

/** The panel's numbers, checked: { settings } or { error } naming the field and its range. */
export function readSettings({ samples, epochs, lr, seed }) {
  const check = (name, text, [lo, hi], integer) => {
    const value = Number(text);
    if (text === "" || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < lo || value > hi) {
      const show = (v) => (integer ? formatCount(v) : String(v));
      return `${name} must be ${integer ? "a whole number" : "a number"} from ${show(lo)} to ${show(hi)}`;
    }
    return value;
  };
  const values = { samples: check("Training digits", samples, LIMITS.samples, true), epochs: check("Epochs", epochs, LIMITS.epochs, false),
                   lr: check("The learning rate", lr, LIMITS.lr, false), seed: check("The seed", seed, LIMITS.seed, true) };
  const error = Object.values(values).find((v) => typeof v === "string");
  return error ? { error } : { settings: values };
}

export const fmtTime = (s) => (s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${s.toFixed(s < 10 ? 1 : 0)} s`);

const field = (label, control, wide = false) => h("label", { class: `grid gap-1 text-sm${wide ? " col-span-2 sm:col-span-1" : ""}` }, label, control);
const number = (id, attrs) => h("input", { id, dataset: { testid: id }, type: "number", class: "select w-full min-w-0", ...attrs });
const note = "text-xs text-slate-600 dark:text-slate-400";

/** The panel's contents, into `panel`; returns its elements by role. */
function buildPanel(panel) {
  const ui = {
    model: h("select", { id: "train-model", dataset: { testid: "train-model" }, class: "select w-full min-w-0" }),
    samples: number("train-samples", { inputmode: "numeric", min: LIMITS.samples[0], max: LIMITS.samples[1], step: 1000, value: 60000 }),
    epochs: number("train-epochs", { inputmode: "decimal", min: LIMITS.epochs[0], max: LIMITS.epochs[1], step: 0.5, value: 2 }),
    lr: number("train-lr", { inputmode: "decimal", min: LIMITS.lr[0], max: LIMITS.lr[1], step: "any" }),
    seed: number("train-seed", { inputmode: "numeric", min: LIMITS.seed[0], max: LIMITS.seed[1], step: 1 }),
    backend: h("select", { id: "train-backend", dataset: { testid: "train-backend" }, class: "select w-full min-w-0" },
               h("option", { value: "auto", selected: true }, "Auto"), h("option", { value: "webgpu" }, "WebGPU"), h("option", { value: "wasm" }, "WebAssembly")),
    fixed: h("p", { class: `mt-2 ${note}` }),
    start: h("button", { type: "button", class: "tool", dataset: { testid: "train-start" } }, "Start"),
    pause: h("button", { type: "button", class: "tool", dataset: { testid: "train-pause" }, "aria-pressed": "false", disabled: true }, "Pause"),
    stop: h("button", { type: "button", class: "tool", dataset: { testid: "train-stop" }, disabled: true }, "Stop"),
    status: h("p", { dataset: { testid: "train-status", state: "idle" }, role: "status", class: "min-w-0 flex-1 text-sm text-slate-700 dark:text-slate-300" }),
    progress: h("progress", { class: "mt-2 h-2 w-full accent-indigo-600", value: 0, "aria-label": "Training progress" }),
    stats: h("p", { class: `min-h-[1.25rem] tabular-nums ${note}` }),
    lossChart: h("canvas", { dataset: { testid: "train-loss-chart" }, class: "h-32 w-full rounded bg-slate-100 dark:bg-slate-800", role: "img", "aria-label": "Loss per batch, step by step" }),
    accuracyChart: h("canvas", { dataset: { testid: "train-accuracy-chart" }, class: "h-32 w-full rounded bg-slate-100 dark:bg-slate-800", role: "img",
                                 "aria-label": "Accuracy per batch and on held-out test digits, step by step" }),
    wrong: h("div", { class: "mt-1 flex min-h-[2.5rem] flex-wrap gap-1" }),
    dataProgress: h("progress", { class: "h-2 w-40 accent-indigo-600", value: 0, "aria-label": "MNIST download" }),
    dataText: h("span", { class: "tabular-nums" }),
    dataRetry: h("button", { type: "button", class: "tool min-h-0 py-1 text-xs", hidden: true }, "Retry"),
    samplesGrid: h("canvas", { class: "pixelated mt-2 block w-full max-w-xl rounded bg-black", role: "img", "aria-label": "The first MNIST training digits" }),
    samplesLabels: h("p", { class: `mt-1 ${note}` }),
    accuracy: h("p", { dataset: { testid: "train-accuracy", value: "" }, class: "font-semibold" }),
    use: h("button", { type: "button", class: "tool", dataset: { testid: "train-use" } }, "Use this model"),
    download: h("button", { type: "button", class: "tool", dataset: { testid: "train-download" } }, "Download .safetensors"),
    report: h("div", { class: "mt-2" }),
  };
  ui.result = h("div", { hidden: true, class: "mt-4 border-t border-slate-200 pt-4 dark:border-slate-800" },
    ui.accuracy, h("div", { class: "mt-2 flex flex-wrap gap-2" }, ui.use, ui.download), ui.report);
  panel.replaceChildren(
    h("h2", { id: "trainer-title", class: "text-lg font-semibold" }, "Train a network from scratch"),
    h("p", { class: "mt-1 text-sm text-slate-600 dark:text-slate-400" }, "Every layer, from a random start, with the training step tinygrad generated for " +
      "this network (forward, cross-entropy, backward and the optimizer, as WebAssembly or WGSL), on MNIST's 60 000 training digits, here in your " +
      "browser. Drawing keeps working while it trains."),
    // Start, the status and the curves first: on a phone they are on one screen while it trains
    h("div", { class: "mt-3 flex flex-wrap items-center gap-2" }, ui.start, ui.pause, ui.stop, ui.status),
    ui.progress, ui.stats,
    h("div", { class: "mt-2 grid gap-3 sm:grid-cols-2" }, ui.lossChart, ui.accuracyChart),
    h("div", { class: "mt-3 grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-6" }, field("Network", ui.model, true), field("Training digits", ui.samples),
      field("Epochs", ui.epochs), field("Learning rate", ui.lr), field("Seed", ui.seed), field("Backend", ui.backend)),
    ui.fixed,
    h("h3", { class: "mt-3 text-sm font-semibold" }, "Held-out test digits it gets wrong now"), ui.wrong,
    h("h3", { class: "mt-3 text-sm font-semibold" }, "The training data"),
    h("div", { class: `mt-1 flex flex-wrap items-center gap-2 ${note}` }, ui.dataProgress, ui.dataText, ui.dataRetry),
    ui.samplesGrid, ui.samplesLabels, ui.result);
  return ui;
}


export class TrainerView {
  /** `panel`: the (empty) #trainer-panel, filled here; `drawDigit(pixels)`: a misread test digit picked in the report. */
  constructor(panel, drawDigit) {
    this.ui = buildPanel(panel);
    this.report = new ReportView(this.ui.report, drawDigit, { label: "Confusion matrix of the model trained here: rows are the true digits, columns what it read" });
  }

  /** The buttons and fields for `state` ("idle", "loading", "training", "paused", "done", "error"), and the status text. */
  setState(state, text) {
    const ui = this.ui, running = state === "training" || state === "paused";
    ui.status.dataset.state = state;
    if (text !== undefined) ui.status.textContent = text;
    ui.start.disabled = running || state === "loading";
    ui.pause.disabled = !running;
    ui.stop.disabled = !running;
    ui.pause.textContent = state === "paused" ? "Resume" : "Pause";
    ui.pause.setAttribute("aria-pressed", String(state === "paused"));
    for (const field of [ui.model, ui.samples, ui.epochs, ui.lr, ui.seed, ui.backend]) field.disabled = running;
  }

  /** The trainable models ({ name: { meta, label } }) in the network menu. */
  showModels(models) {
    this.ui.model.replaceChildren(...[...models].map(([name, { meta, label }]) => h("option", { value: name }, `${label}: ${meta.architecture}`)));
  }

  /** The chosen network's defaults (its learning rate and epochs as tinygrad trained it) and what the kernels fix. */
  showDefaults(meta) {
    const ui = this.ui, fit = meta.fit;
    ui.lr.value = String(Number(fit.lr.toPrecision(6)));   // the float32 the kernels hold, as it was typed
    ui.epochs.value = String(fit.epochs ?? 3);
    ui.fixed.textContent = `Batch: ${fit.batch} digits (fixed by the exported kernels) · ${fit.optimizer} · ${fit.schedule.kind} schedule` +
      (fit.batch_norm ? " · batch norm on batch statistics" : "") + ` · tinygrad reached ${meta.test_accuracy.toFixed(2)}% with these settings`;
  }

  /** MNIST's download: bytes of total and the digits in so far. */
  showData({ loaded, total }, data) {
    const ui = this.ui;
    ui.dataProgress.max = total || 1;
    ui.dataProgress.value = loaded;
    ui.dataText.textContent = `MNIST: ${(loaded / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB · ${formatCount(data.train.count)} training and ` +
      `${formatCount(data.test.count)} test digits in`;
  }

  dataDone() { this.ui.dataText.textContent += " (all)"; this.ui.dataRetry.hidden = true; }

  /** MNIST could not be loaded: why, and a Retry that calls `retry()`. */
  dataFailed(e, retry) {
    this.ui.dataText.textContent = `Could not load MNIST: ${e.message}`;
    this.ui.dataRetry.hidden = false;
    this.ui.dataRetry.onclick = () => { this.ui.dataRetry.hidden = true; retry(); };
  }

  /** The settings as typed (a seed left empty gets a fresh one, shown). */
  fields() {
    const ui = this.ui;
    if (ui.seed.value.trim() === "") ui.seed.value = String(Math.floor(Math.random() * 2 ** 31));
    return { samples: ui.samples.value.trim(), epochs: ui.epochs.value.trim(), lr: ui.lr.value.trim(), seed: ui.seed.value.trim() };
  }

  hideResult() { this.ui.result.hidden = true; }

  /** The first training digits, with their labels, as a grid. */
  drawSamples(train) {
    const canvas = this.ui.samplesGrid, columns = 20, rows = 3, ctx = canvas.getContext("2d");
    canvas.width = columns * 29 - 1;
    canvas.height = rows * 29 - 1;
    const image = ctx.createImageData(canvas.width, canvas.height), labels = [];
    for (let k = 0; k < columns * rows; k++) {
      paintDigit(image, train.image(k), (k % columns) * 29, Math.floor(k / columns) * 29);
      labels.push(train.label(k));
    }
    ctx.putImageData(image, 0, 0);
    this.ui.samplesLabels.textContent = `Labels, row by row: ${labels.join(" ")}`;
  }

  /** A training in progress: its progress, speed, time so far and left, the curves and the digits it gets wrong now. */
  draw(job, test) {
    const ui = this.ui, seconds = job.active / 1000, batch = job.meta.fit.batch;
    const rate = seconds > 0 ? (job.step * batch) / seconds : 0, left = rate > 0 ? ((job.total - job.step) * batch) / rate : NaN;
    ui.progress.max = job.total || 1;
    ui.progress.value = job.step;
    ui.stats.textContent = `step ${formatCount(job.step)} of ${formatCount(job.total)} · ${formatCount(rate)} digits/s · ` +
      `${fmtTime(seconds)} so far` + (Number.isFinite(left) ? ` · about ${fmtTime(left)} left` : "") +
      (job.heldOut !== undefined ? ` · held-out accuracy ${job.heldOut.toFixed(1)}%` : "") +
      (job.available < job.settings.samples ? ` · training on the ${formatCount(job.available)} digits in so far` : "");
    const top = Math.max(2.5, ...job.curves.loss.slice(0, 5).map(([, l]) => l));
    plot(ui.lossChart, { series: [{ points: job.curves.loss, color: COLORS.loss }], xMax: job.total, yMin: 0, yMax: top, yTicks: [0, 1, 2], label: "loss per batch" });
    plot(ui.accuracyChart, { series: [{ points: job.curves.batch, color: COLORS.batch, width: 1 }, { points: job.curves.heldOut, color: COLORS.heldOut, width: 2.5 }],
                             xMax: job.total, yMin: 0, yMax: 100, yTicks: [0, 50, 90, 100], label: "accuracy: batch (grey), held-out (green), %" });
    if (job.wrong !== job.wrongShown) this.drawWrong(job.wrongShown = job.wrong, test);
  }

  /** The held-out digits it gets wrong now, as small images (the canvases are reused from one update to the next). */
  drawWrong(wrong, test) {
    const shown = this.ui.wrong;
    while (shown.children.length > wrong.length) shown.lastChild.remove();
    while (shown.children.length < wrong.length) shown.append(h("canvas", { width: 28, height: 28, class: "pixelated h-10 w-10 rounded bg-black", role: "img" }));
    wrong.forEach(({ index, label, pred }, k) => {
      const canvas = shown.children[k];
      canvas.title = `test digit ${index}: a ${label} read as ${pred}`;
      canvas.setAttribute("aria-label", canvas.title);
      drawDigit(canvas, test.image(index));
    });
  }

  /** A finished training: its accuracy beside tinygrad's for the same network, and its report. */
  showResult(result, meta) {
    const ui = this.ui;
    ui.result.hidden = false;
    ui.accuracy.dataset.value = String(result.report.accuracy);
    ui.accuracy.textContent = `${result.report.accuracy.toFixed(2)}% on all 10 000 test digits (the same network trained by tinygrad ` +
      `with the default settings: ${meta.test_accuracy.toFixed(2)}%)`;
    this.report.show({ meta: { architecture: `${meta.architecture}, trained here` } }, result.report);
  }
}
