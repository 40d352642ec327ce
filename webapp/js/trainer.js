// "Train from scratch", loaded when the visitor opens the trainer: a network the exporter marked for it (TRAINER=1) is
// trained here from a random start, every layer, with the "fit" step tinygrad generated for it, on MNIST's 60 000
// training digits (dataset.js). On WebAssembly it trains in a Worker (fit_worker.js); on WebGPU on the page's thread,
// one step at a time between predictions. Live: loss and accuracy per batch, held-out accuracy, speed, time left and
// the digits it gets wrong; after: the whole test set's report, "Use this model" (drawing, the inside view and teaching
// then run on it), a .safetensors download that tinygrad can LOAD=, and a copy kept in this browser. What the panel
// shows is trainer_view.js's.

import { loadDataset } from "./dataset.js";
import { fit, predict } from "./fit.js";
import { reportFrom } from "./report.js";
import { openModel, writeSafetensors, sha256Hex } from "./runtime/index.js";
import { folderOf } from "./early.js";
import { TrainerView, readSettings, fmtTime } from "./trainer_view.js";
import { formatCount } from "./dom.js";

const HELD_OUT = 1000, EVAL_EVERY = 250;

export class Trainer {
  /** `panel`: the (empty) #trainer-panel; `models`: the manifest's trainable models ({ name, label, meta }); `device()`:
   *  the page's GPUDevice or null; `predictsOn()`: the backend the page predicts on (the default for training); `wasm`:
   *  the page's WebAssembly settings (threads, relaxed SIMD; models.wasmSettings);
   *  `onUse({ entry, custom })`: "Use this model", a model for the page's runtime; `storage()`: the storage module, as
   *  a promise; `drawDigit(pixels)`: a misread test digit picked in the report, onto the canvas. */
  constructor(panel, { models, device, predictsOn, wasm, onUse, storage, drawDigit }) {
    this.view = new TrainerView(panel, drawDigit);
    const ui = this.view.ui;
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
  }

  setState(state, text) {
    this.state = state;
    this.view.setState(state, text);
  }

  /** For tests and tools (main.js's surface): the digits in, whether a Worker trains, and the last result. */
  snapshot() {
    const r = this.result;
    return { digits: this.data && { train: this.data.train.count, test: this.data.test.count }, worker: Boolean(this.worker), state: this.state,
             result: r && { summary: r.summary, curves: r.curves, weights: r.weights } };
  }

  fail(e) { this.setState("error", `Training failed: ${e?.message ?? e}`); }

  /** The panel opened: the trainable models' metadata, then MNIST's files in the background. */
  async open() {
    if (this.opened) return this.opened;
    this.opened = (async () => {
      for (const { name, label, meta } of this.entries) if (meta.fit) this.models.set(name, { meta, label, base: folderOf(name) });
      if (!this.models.size) throw new Error("this site has no model to train (models.json lists none)");
      this.view.showModels(this.models);
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
    this.data = loadDataset(({ file, split, loaded, total }) => {
      this.view.showData({ loaded, total }, this.data);
      if (file) {
        this.worker?.postMessage({ kind: "data", split, ...this.lastFile(split) });
        if (split === "train" && this.data.train.labels.length === 1) this.view.drawSamples(this.data.train);
        this.dataArrived?.();
      }
    });
    this.data.done.then(() => this.view.dataDone(), (e) => {
      this.data = null;
      this.view.dataFailed(e, () => this.startData());
      if (this.state === "training" || this.state === "loading") this.fail(e);
    });
  }

  lastFile(split) {
    const d = this.data[split];
    return { labels: d.labels.at(-1), images: d.images.at(-1) };
  }

  showDefaults() { this.view.showDefaults(this.models.get(this.ui.model.value).meta); }

  backendFor() {
    const choice = this.ui.backend.value;
    if (choice !== "auto") return choice;
    return this.device() && this.predictsOn() === "webgpu" ? "webgpu" : "wasm";
  }

  async start() {
    await this.open();
    const { error, settings } = readSettings(this.view.fields());
    if (error) { this.setState("error", error); return; }
    const name = this.ui.model.value, { meta, base } = this.models.get(name), backend = this.backendFor();
    if (backend === "webgpu" && !this.device()) { this.setState("error", "WebGPU is not available here: choose WebAssembly."); return; }
    this.startData();
    this.view.hideResult();
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
    this.view.ui.status.dataset.threads = String(threads);   // tests read what the Worker trains on
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
    this.frame ||= requestAnimationFrame(() => { this.frame = 0; this.view.draw(job, this.data.test); });
  }

  togglePause() {
    const job = this.job;
    if (!job) return;
    const pausing = this.state === "training";
    if (job.backend === "wasm") this.worker?.postMessage({ kind: pausing ? "pause" : "resume" });
    else if (pausing) { job.pause = {}; job.pause.promise = new Promise((resolve) => { job.pause.resolve = resolve; }); }
    else { const p = job.pause; job.pause = null; p?.resolve(); }
    this.progress(job, { kind: "time", total: job.total });
    this.setState(pausing ? "paused" : "training", pausing ? `Paused at step ${formatCount(job.step)}: Resume goes on exactly where it stopped.`
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
      `(${formatCount(outcome.steps)} steps${outcome.stopped ? ", stopped early" : ""}) on ${job.backend === "wasm" ? "WebAssembly" : "WebGPU"}` +
      (kept ? "; kept in this browser." : "; kept for this visit only: this browser's storage is full or disabled."));
  }

  async showResult(result) { this.view.showResult(result, this.models.get(result.name).meta); }

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
