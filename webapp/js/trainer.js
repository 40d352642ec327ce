// "Train from scratch", loaded when the visitor opens the trainer: a network the exporter marked for it (TRAINER=1) is
// trained here from a random start, every layer, with the "fit" step tinygrad generated for it, on MNIST's 60 000
// training digits (dataset.js). On WebAssembly it trains in a Worker (fit_worker.js); on WebGPU on the page's thread,
// one step at a time between predictions. Live: loss and accuracy per batch, held-out accuracy, speed, time left and
// the digits it gets wrong; after: the whole test set's report, "Use this model" (drawing, the inside view and teaching
// then run on it), a .safetensors download that tinygrad can LOAD=, and a copy kept in this browser.

import { loadDataset } from "./dataset.js";
import { fit, predict } from "./fit.js";
import { plot } from "./plot.js";
import { reportFrom, ReportView } from "./report.js";
import { openModel, writeSafetensors, sha256Hex } from "./model_runtime.js";
import { h, paintDigit, drawDigit } from "./dom.js";
import { folderOf } from "./models.js";

export const LIMITS = { samples: [1000, 60000], epochs: [0.1, 30], lr: [1e-5, 0.1], seed: [0, 2 ** 31 - 1] };
const HELD_OUT = 1000, EVAL_EVERY = 250;
const COLORS = { loss: "#6366f1", batch: "#94a3b8", heldOut: "#059669" };

/** The panel's numbers, checked: { settings } or { error } naming the field and its range. */
export function readSettings({ samples, epochs, lr, seed }) {
  const check = (name, text, [lo, hi], integer) => {
    const value = Number(text);
    if (text === "" || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < lo || value > hi) {
      const show = (v) => (integer ? v.toLocaleString("en-US") : String(v));
      return `${name} must be ${integer ? "a whole number" : "a number"} from ${show(lo)} to ${show(hi)}`;
    }
    return value;
  };
  const values = { samples: check("Training digits", samples, LIMITS.samples, true), epochs: check("Epochs", epochs, LIMITS.epochs, false),
                   lr: check("The learning rate", lr, LIMITS.lr, false), seed: check("The seed", seed, LIMITS.seed, true) };
  const error = Object.values(values).find((v) => typeof v === "string");
  return error ? { error } : { settings: values };
}

const fmtTime = (s) => (s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${s.toFixed(s < 10 ? 1 : 0)} s`);

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

export class Trainer {
  /** `panel`: the (empty) #trainer-panel; `models`: the manifest's trainable models ({ name, label, meta }); `device()`:
   *  the page's GPUDevice or null; `predictsOn()`: the backend the page predicts on (the default for training); `wasm`:
   *  the page's WebAssembly settings (threads, relaxed SIMD; models.wasmSettings);
   *  `onUse({ entry, custom })`: "Use this model", a model for the page's runtime; `storage()`: the storage module, as
   *  a promise; `drawDigit(pixels)`: a misread test digit picked in the report, onto the canvas. */
  constructor(panel, { models, device, predictsOn, wasm, onUse, storage, drawDigit }) {
    const ui = buildPanel(panel);
    Object.assign(this, { ui, entries: models, device, predictsOn, wasm, onUse, storage });
    this.models = new Map();     // name -> { meta, label, base, source }
    this.data = null;
    this.state = "idle";
    this.job = null;             // the training in progress
    this.result = null;          // the last finished training
    ui.start.addEventListener("click", () => this.start().catch((e) => this.fail(e)));
    ui.pause.addEventListener("click", () => this.togglePause());
    ui.stop.addEventListener("click", () => this.stop());
    ui.use.addEventListener("click", () => this.use().catch((e) => this.fail(e)));
    ui.download.addEventListener("click", () => this.download().catch((e) => this.fail(e)));
    ui.model.addEventListener("change", () => this.showDefaults());
    this.report = new ReportView(ui.report, drawDigit, { label: "Confusion matrix of the model trained here: rows are the true digits, columns what it read" });
  }

  setState(state, text) {
    this.state = state;
    this.ui.status.dataset.state = state;
    if (text !== undefined) this.ui.status.textContent = text;
    const running = state === "training" || state === "paused";
    this.ui.start.disabled = running || state === "loading";
    this.ui.pause.disabled = !running;
    this.ui.stop.disabled = !running;
    this.ui.pause.textContent = state === "paused" ? "Resume" : "Pause";
    this.ui.pause.setAttribute("aria-pressed", String(state === "paused"));
    for (const field of [this.ui.model, this.ui.samples, this.ui.epochs, this.ui.lr, this.ui.seed, this.ui.backend]) field.disabled = running;
  }

  fail(e) { this.setState("error", `Training failed: ${e?.message ?? e}`); }

  /** The panel opened: the trainable models' metadata, then MNIST's files in the background. */
  async open() {
    if (this.opened) return this.opened;
    this.opened = (async () => {
      for (const { name, label, meta } of this.entries) if (meta.fit) this.models.set(name, { meta, label, base: folderOf(name) });
      if (!this.models.size) throw new Error("this site has no model to train (models.json lists none)");
      this.ui.model.replaceChildren(...[...this.models].map(([name, { meta, label }]) =>
        Object.assign(document.createElement("option"), { value: name, textContent: `${label}: ${meta.architecture}` })));
      this.showDefaults();
      this.startData();
      await this.showKept();
      if (this.state === "loading") this.setState("idle", "Ready to train: pick the settings and press Start.");
    })();
    this.opened.catch((e) => { this.opened = null; this.fail(e); });
    return this.opened;
  }

  startData() {
    if (this.data) return;
    const ui = this.ui;
    this.data = loadDataset(({ file, split, loaded, total }) => {
      ui.dataProgress.max = total || 1;
      ui.dataProgress.value = loaded;
      ui.dataText.textContent = `MNIST: ${(loaded / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB · ${this.data.train.count.toLocaleString("en-US")} training and ` +
        `${this.data.test.count.toLocaleString("en-US")} test digits in`;
      if (file) {
        this.worker?.postMessage({ kind: "data", split, ...this.lastFile(split) });
        if (split === "train" && this.data.train.labels.length === 1) this.drawSamples();
        this.dataArrived?.();
      }
    });
    this.data.done.then(() => { ui.dataText.textContent += " (all)"; }, (e) => {
      this.data = null;
      ui.dataText.textContent = `Could not load MNIST: ${e.message}`;
      ui.dataRetry.hidden = false;
      if (this.state === "training" || this.state === "loading") this.fail(e);
    });
    ui.dataRetry.hidden = true;
    ui.dataRetry.onclick = () => this.startData();
  }

  lastFile(split) {
    const d = this.data[split];
    return { labels: d.labels.at(-1), images: d.images.at(-1) };
  }

  /** The first training digits, with their labels, as a grid. */
  drawSamples() {
    const canvas = this.ui.samplesGrid, columns = 20, rows = 3, ctx = canvas.getContext("2d");
    canvas.width = columns * 29 - 1;
    canvas.height = rows * 29 - 1;
    const image = ctx.createImageData(canvas.width, canvas.height), labels = [];
    for (let k = 0; k < columns * rows; k++) {
      paintDigit(image, this.data.train.image(k), (k % columns) * 29, Math.floor(k / columns) * 29);
      labels.push(this.data.train.label(k));
    }
    ctx.putImageData(image, 0, 0);
    this.ui.samplesLabels.textContent = `Labels, row by row: ${labels.join(" ")}`;
  }

  showDefaults() {
    const { meta } = this.models.get(this.ui.model.value);
    this.ui.lr.value = String(Number(meta.fit.lr.toPrecision(6)));   // the float32 the kernels hold, as it was typed
    this.ui.epochs.value = String(meta.fit.epochs ?? 3);
    const kernels = meta.fit;
    this.ui.fixed.textContent = `Batch: ${kernels.batch} digits (fixed by the exported kernels) · ${kernels.optimizer} · ${kernels.schedule.kind} schedule` +
      (kernels.batch_norm ? " · batch norm on batch statistics" : "") + ` · tinygrad reached ${meta.test_accuracy.toFixed(2)}% with these settings`;
  }

  backendFor() {
    const choice = this.ui.backend.value;
    if (choice !== "auto") return choice;
    return this.device() && this.predictsOn() === "webgpu" ? "webgpu" : "wasm";
  }

  async start() {
    await this.open();
    if (this.ui.seed.value.trim() === "") this.ui.seed.value = String(Math.floor(Math.random() * 2 ** 31));   // none given: a fresh one, shown
    const { error, settings } = readSettings({ samples: this.ui.samples.value.trim(), epochs: this.ui.epochs.value.trim(), lr: this.ui.lr.value.trim(),
                                               seed: this.ui.seed.value.trim() });
    if (error) { this.setState("error", error); return; }
    const name = this.ui.model.value, { meta, base } = this.models.get(name), backend = this.backendFor();
    if (backend === "webgpu" && !this.device()) { this.setState("error", "WebGPU is not available here: choose WebAssembly."); return; }
    this.startData();
    this.ui.result.hidden = true;
    this.setState("loading", "Waiting for the first training digits…");
    while (!this.data?.train.count) {
      if (!this.data) throw new Error("MNIST could not be loaded; retry the download");
      await new Promise((resolve) => { this.dataArrived = resolve; });
    }
    const job = this.job = {
      name, meta, backend, settings: { ...settings, schedule: meta.fit.schedule, heldOut: HELD_OUT,
                                       evalEvery: EVAL_EVERY, readEvery: backend === "webgpu" ? 8 : 1 },
      curves: { loss: [], batch: [], heldOut: [] }, step: 0, total: 0, active: 0, since: performance.now(), stopped: false,
    };
    const source = await this.source(name);
    this.setState("training", `Training the ${this.models.get(name).label} on ${backend === "wasm" ? "WebAssembly (in a worker)" : "WebGPU"}…`);
    const finished = backend === "wasm" ? this.inWorker(job, source) : this.onPage(job, source);
    const outcome = await finished;
    if (this.job !== job) return;      // closed meanwhile
    this.job = null;
    this.worker?.terminate();
    this.worker = null;
    await this.finish(job, outcome);
  }

  /** WebAssembly: fit_worker.js, given the model's metadata and its plan, checked here (the worker checks the WebAssembly
   *  module it downloads against that metadata); resolves with { predictions, weights, steps, stopped }. */
  inWorker(job, source) {
    const worker = this.worker = new Worker(new URL("./fit_worker.js", import.meta.url), { type: "module" });
    return new Promise((resolve, reject) => {
      worker.onmessage = ({ data: event }) => {
        if (event.kind === "done") resolve(event);
        else if (event.kind === "error") reject(new Error(event.message));
        else if (event.kind === "wasm" || event.kind === "threads-lost") this.onWasm(job, event);
        else this.progress(job, event);
      };
      worker.onerror = (e) => reject(new Error(e.message || "the training worker failed"));
      for (const split of ["train", "test"]) {
        const d = this.data[split];
        d.labels.forEach((labels, k) => worker.postMessage({ kind: "data", split, labels, images: d.images[k] }));
      }
      worker.postMessage({ kind: "start", meta: source.meta, base: source.folder.href, plan: source.plan, contract: { mean: job.meta.mean, std: job.meta.std },
                           settings: job.settings, testCount: 10000, wasm: { threads: this.wasm.threads, fma: this.wasm.fma } });
    });
  }

  /** WebGPU: the page's device, one step at a time; predictions of the drawing go in between. */
  async onPage(job, model) {
    const run = await model.load(this.device(), { weights: null });
    job.pause = null;
    const control = { report: (e) => this.progress(job, e), waitIfPaused: () => job.pause?.promise ?? Promise.resolve(), stopped: () => job.stopped };
    const contract = { mean: job.meta.mean, std: job.meta.std };
    const result = await fit(run, contract, model.fit, this.data, job.settings, control);
    while (this.data && this.data.test.count < 10000) await new Promise((resolve) => { this.dataArrived = resolve; });
    const { predictions, confidences } = await predict(run, contract, this.data.test, 0, this.data.test.count);
    return { ...result, predictions, confidences, weights: await run.readWeights(model.weights.map((w) => w.name)) };
  }

  /** What the Worker trains on (threads, relaxed SIMD), or why it went back to one thread. */
  onWasm(job, event) {
    job.wasm = event.kind === "wasm" ? event : { ...job.wasm, threads: 1, why: event.why };
    const { threads, fma, why } = job.wasm;
    this.ui.status.dataset.threads = String(threads);
    if (this.state === "training") {
      this.setState("training", `Training the ${this.models.get(job.name).label} on WebAssembly (in a worker, ${threads} thread${threads === 1 ? "" : "s"}` +
        `${fma ? ", FMA" : ""})…` + (why ? ` One thread: ${why}.` : ""));   // threads lost in use; the backend line says the rest
    }
  }

  progress(job, event) {
    const now = performance.now();
    if (event.kind === "started") job.active = 0;
    else if (this.state === "training") job.active += now - job.since;
    job.since = now;
    job.total = event.total;
    if (event.kind === "steps") {
      job.step = event.step;
      job.curves.loss.push(...event.loss);
      job.curves.batch.push(...event.accuracy);
      job.available = event.available;
    } else if (event.kind === "held-out") {
      job.curves.heldOut.push([event.step, event.accuracy, job.active / 1000]);   // and when: time to accuracy
      job.wrong = event.wrong;
      job.heldOut = event.accuracy;
    }
    this.frame ||= requestAnimationFrame(() => { this.frame = 0; this.draw(job); });
  }

  draw(job) {
    const ui = this.ui, seconds = job.active / 1000, batch = job.meta.fit.batch;
    const rate = seconds > 0 ? (job.step * batch) / seconds : 0, left = rate > 0 ? ((job.total - job.step) * batch) / rate : NaN;
    ui.progress.max = job.total || 1;
    ui.progress.value = job.step;
    ui.stats.textContent = `step ${job.step.toLocaleString("en-US")} of ${job.total.toLocaleString("en-US")} · ${Math.round(rate).toLocaleString("en-US")} digits/s · ` +
      `${fmtTime(seconds)} so far` + (Number.isFinite(left) ? ` · about ${fmtTime(left)} left` : "") +
      (job.heldOut !== undefined ? ` · held-out accuracy ${job.heldOut.toFixed(1)}%` : "") +
      (job.available < job.settings.samples ? ` · training on the ${job.available.toLocaleString("en-US")} digits in so far` : "");
    const top = Math.max(2.5, ...job.curves.loss.slice(0, 5).map(([, l]) => l));
    plot(ui.lossChart, { series: [{ points: job.curves.loss, color: COLORS.loss }], xMax: job.total, yMin: 0, yMax: top, yTicks: [0, 1, 2], label: "loss per batch" });
    plot(ui.accuracyChart, { series: [{ points: job.curves.batch, color: COLORS.batch, width: 1 }, { points: job.curves.heldOut, color: COLORS.heldOut, width: 2.5 }],
                             xMax: job.total, yMin: 0, yMax: 100, yTicks: [0, 50, 90, 100], label: "accuracy: batch (grey), held-out (green), %" });
    if (job.wrong !== job.wrongShown) this.drawWrong(job.wrongShown = job.wrong);
  }

  /** The held-out digits it gets wrong now, as small images (the canvases are reused from one update to the next). */
  drawWrong(wrong) {
    const shown = this.ui.wrong;
    while (shown.children.length > wrong.length) shown.lastChild.remove();
    while (shown.children.length < wrong.length) {
      shown.append(h("canvas", { width: 28, height: 28, class: "pixelated h-10 w-10 rounded bg-black", role: "img" }));
    }
    wrong.forEach(({ index, label, pred }, k) => {
      const canvas = shown.children[k];
      canvas.title = `test digit ${index}: a ${label} read as ${pred}`;
      canvas.setAttribute("aria-label", canvas.title);
      drawDigit(canvas, this.data.test.image(index));
    });
  }

  togglePause() {
    const job = this.job;
    if (!job) return;
    const pausing = this.state === "training";
    if (job.backend === "wasm") this.worker?.postMessage({ kind: pausing ? "pause" : "resume" });
    else if (pausing) { job.pause = {}; job.pause.promise = new Promise((resolve) => { job.pause.resolve = resolve; }); }
    else { const p = job.pause; job.pause = null; p?.resolve(); }
    this.progress(job, { kind: "time", total: job.total });
    this.setState(pausing ? "paused" : "training", pausing ? `Paused at step ${job.step.toLocaleString("en-US")}: Resume goes on exactly where it stopped.`
      : `Training on ${job.backend === "wasm" ? "WebAssembly (in a worker)" : "WebGPU"}…`);
  }

  /** Stop early: the steps so far are the model; it is measured on the whole test set like a finished one. */
  stop() {
    const job = this.job;
    if (!job) return;
    job.stopped = true;
    if (job.backend === "wasm") this.worker?.postMessage({ kind: "stop" });
    else { const p = job.pause; job.pause = null; p?.resolve(); }
    this.setState("training", "Stopping: measuring the model on the 10 000 test digits…");
  }

  /** The panel was closed: training ends and nothing of it is kept. */
  close() {
    if (!this.job) return;
    this.job = null;
    this.worker?.terminate();
    this.worker = null;
    this.setState("idle", "Stopped when the panel was closed.");
  }

  async finish(job, outcome) {
    const labels = Array.from({ length: this.data.test.count }, (_, i) => this.data.test.label(i));
    const report = reportFrom(outcome.predictions, outcome.confidences, labels, (i) => this.data.test.image(i));
    const seconds = job.active / 1000;
    const result = this.result = {
      name: job.name, label: this.models.get(job.name).label, report, weights: outcome.weights,
      curves: job.curves,
      summary: { accuracy: report.accuracy, seconds, steps: outcome.steps, stopped: outcome.stopped, backend: job.backend, samples: job.settings.samples,
                 ...(job.backend === "wasm" && job.wasm ? { threads: job.wasm.threads, fma: job.wasm.fma } : {}),
                 epochs: job.settings.epochs, lr: job.settings.lr, batch: job.meta.fit.batch, seed: job.settings.seed, at: new Date().toISOString() },
    };
    await this.showResult(result);
    let kept = true;
    try { await (await this.storage()).keepTrained(result); }
    catch { kept = false; }
    this.setState("done", `Done: ${report.accuracy.toFixed(2)}% of the 10 000 test digits in ${fmtTime(seconds)} of training ` +
      `(${outcome.steps.toLocaleString("en-US")} steps${outcome.stopped ? ", stopped early" : ""}) on ${job.backend === "wasm" ? "WebAssembly" : "WebGPU"}` +
      (kept ? "; kept in this browser." : "; kept for this visit only: this browser's storage is full or disabled."));
  }

  async showResult(result) {
    const ui = this.ui, meta = this.models.get(result.name).meta;
    ui.result.hidden = false;
    ui.accuracy.dataset.value = String(result.report.accuracy);
    ui.accuracy.textContent = `${result.report.accuracy.toFixed(2)}% on all 10 000 test digits (the same network trained by tinygrad ` +
      `with the default settings: ${meta.test_accuracy.toFixed(2)}%)`;
    this.report.show({ meta: { architecture: `${meta.architecture}, trained here` } }, result.report);
  }

  /** A model trained on an earlier visit, shown with its report. */
  async showKept() {
    try {
      const kept = await (await this.storage()).keptTrained([...this.models.keys()]);
      if (!kept || this.result) return;
      this.result = kept;
      await this.showResult(kept);
      this.setState("idle", `Kept from an earlier visit: your ${kept.label}, ${kept.report.accuracy.toFixed(2)}% (${new Date(kept.summary.at).toLocaleString()}). Start trains a new one.`);
    } catch (e) { console.warn("trainer: the kept model could not be read", e); }
  }

  /** The trainer model (the runtime's: its plan checked against its metadata), opened once. */
  source(name) {
    const entry = this.models.get(name);
    entry.source ??= openModel(entry.meta, { base: entry.base });
    entry.source.catch(() => { entry.source = null; });
    return entry.source;
  }

  async safetensors(result) {
    const { meta } = this.models.get(result.name), source = await this.source(result.name);
    const tensors = source.weights.map(({ name, shape }) => ({ name, shape, data: result.weights[name] }));
    // LOAD= reads how the weights were trained from here: the script's knobs, and this training
    return writeSafetensors(tensors, { config: JSON.stringify(meta.config), training: JSON.stringify({
      device: `browser (${result.summary.backend})`, seconds: Math.round(result.summary.seconds * 100) / 100, final_loss: null, page: result.summary }) });
  }

  async download() {
    if (!this.result) return;
    const url = URL.createObjectURL(new Blob([await this.safetensors(this.result)], { type: "application/octet-stream" }));
    const a = Object.assign(document.createElement("a"), { href: url, download: `${this.result.name.replace(/_trainer$/, "")}_trained_here.safetensors` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  /** The trained network as a model of the page: the trainer's metadata with this training's weights and accuracy. */
  async use() {
    if (!this.result) return;
    const { meta, base, label } = this.models.get(this.result.name), source = await this.source(this.result.name);
    const bytes = await this.safetensors(this.result), report = this.result.report;
    const weights = { name: `${this.result.name}_trained_here.safetensors`, sha256: await sha256Hex(bytes), bytes: bytes.length };
    await this.onUse({
      entry: { name: "trained", label: `Trained here (${label})`,
               meta: { ...meta, test_accuracy: report.accuracy, architecture: `${meta.architecture}, trained here`, files: { ...meta.files, weights },
                       trained_here: this.result.summary } },
      custom: { base, plan: source.plan, bytes, report },
    });
  }
}
