// The page's models (model.js) on two backends, WebGPU (one GPUDevice for the page) and WebAssembly SIMD (on the CPU, in
// every browser). Which models exist comes from the site's manifest (models.json, written by the exporter).
//
// Load order, so that a first visit predicts as soon as possible: the selected model's files (plan, weights and
// WebAssembly together, with progress) and its first backend; the page predicts from there. Only then the other models,
// WebGPU, and the timing that picks the faster backend per model, each step waiting until no prediction is running.
// Each file is downloaded once and its hash checked once: both backends of a model get the same bytes.
// A lost GPU device falls back to WebAssembly while a fresh device is brought up.

import { message, ModelFileError } from "./runtime/index.js";
import { Model, median } from "./model.js";
import { fetchManifest, listed } from "./early.js";

const LOAD_EVENTS = 100, MAX_EVENTS = 1000;   // events: the first ones (the load), then the newest
// In use, the backend in use is re-checked when its recent runs are this much slower than when it was timed (another tab
// took the GPU, the CPU was throttled): both are timed again and the other is taken only if it is clearly faster, so two
// close backends never flap.
const IN_USE_RUNS = 20, SLOWER_IN_USE = 1.5, CLEARLY_FASTER = 0.8;

export class NoWebGPUError extends Error {}

/** The site's models: { predict: [{ name, label, meta }], train: [...] }, from models.json (fetched fresh: it is where
 *  every file's hash comes from). */
export async function readManifest() {
  const { predict, train } = listed(await fetchManifest());
  if (!predict.length) throw new ModelFileError("models.json lists no model to draw with");
  return { predict, train };
}

// a blocklisted or wedged GPU process can leave these promises pending forever; the page must still settle
function answerWithin(promise, what, ms = 10_000) {
  const late = new Promise((_, reject) => setTimeout(() => reject(new NoWebGPUError(`${what} did not answer in ${ms / 1000} s`)), ms));
  return Promise.race([promise, late]);
}

async function requestDevice() {
  if (!navigator.gpu) throw new NoWebGPUError("this browser has no WebGPU (navigator.gpu is missing)");
  const adapter = await answerWithin(navigator.gpu.requestAdapter({ powerPreference: "high-performance" }), "requestAdapter()");
  if (!adapter) throw new NoWebGPUError("WebGPU found no usable GPU adapter");
  const info = adapter.info ?? {};
  const adapterName = [info.vendor, info.architecture || info.description].filter(Boolean).join(" ") || "GPU";
  return { device: await answerWithin(adapter.requestDevice(), "requestDevice()"), adapterName };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Loads the models and backends in the order above. `onChange` hears about progress, readiness, the choice, errors
 *  and device loss; `isIdle()` says when background work may take the CPU without delaying a prediction; `prepare(model,
 *  run)` runs on every backend once loaded, before it predicts. */
export class Models {
  constructor(onChange, { preference = "auto", isIdle = () => true, prepare = async () => {} } = {}) {
    this.models = new Map();            // name -> Model, in the manifest's order (start)
    Object.assign(this, { onChange, preference, isIdle, prepare });   // preference: "auto" | "webgpu" | "wasm"
    this.device = null;
    this.adapterName = "";
    this.gpuError = null;
    this.gpu = null;                    // the promise of the current attempt to bring WebGPU up
    this.generation = 0;
    this.settled = false;               // every model downloaded, every backend tried, timed and chosen
    this.events = [];                   // what happened when (ms since navigation): the load order, for tests and benchmarks
    this.activity = 0;                  // predictions started: timings taken meanwhile are not trusted
  }

  /** The load's events, then the newest of the rest (a long visit logs a prediction for every drawing). */
  log(event, model) {
    this.events.push({ t: performance.now(), event, model: model?.name });
    if (this.events.length > MAX_EVENTS) this.events.splice(LOAD_EVENTS, this.events.length - MAX_EVENTS);
  }

  async whenIdle(model) { while (!model?.urgent && !this.isIdle()) await sleep(50); }

  /** An idle moment, and a check of whether it lasted: no prediction started since (the page counts them in `activity`). */
  async quietMoment() {
    await this.whenIdle();
    const mark = this.activity;
    return () => this.activity === mark;
  }

  /** A plain run of `model` on `kind` took `ms`: when the backend in use turns out much slower than when it was timed,
   *  time every backend again (when idle) and switch only to one that is clearly faster. */
  observe(model, kind, ms) {
    if (kind !== model.backend || !this.settled || this.preference !== "auto" || model.backends.size < 2 || model.rechecking) return;
    model.inUse.push(ms);
    if (model.inUse.length > IN_USE_RUNS) model.inUse.shift();
    if (model.inUse.length < IN_USE_RUNS || !(median(model.inUse) > SLOWER_IN_USE * model.backends.get(kind).ms)) return;
    model.rechecking = true;
    (async () => {
      for (const k of model.backends.keys()) await model.time(k, () => this.quietMoment());
      model.choose(this.preference, CLEARLY_FASTER);
      model.inUse = [];
      this.log("rechecked", model);
      this.onChange({ kind: "choice" });
    })().finally(() => { model.rechecking = false; });
  }

  setPreference(preference) {
    this.preference = preference;
    for (const m of this.models.values()) m.choose(preference);
    this.onChange({ kind: "choice" });
  }

  /** A model of this page: it hears when its WebAssembly goes back to one thread. */
  made(model) {
    model.onThreadsLost = () => { this.log("threads-lost", model); this.onChange({ kind: "choice" }); };
    return model;
  }

  /** The manifest's models (`entries`: { name, label, meta }), the one named `first` first; everything else after it is ready. */
  async start(entries, first) {
    for (const entry of entries) this.models.set(entry.name, this.made(new Model(entry, this.prepare)));
    this.onChange({ kind: "loading" });
    await this.bringUp(this.models.get(first), { urgent: true });
    const rest = [...this.models.values()].filter((m) => m.name !== first);
    await Promise.all([...rest.map((m) => this.bringUp(m)), this.startGPU()]);
    await Promise.all([...this.models.values()].map((m) => m.stashed));
    this.log("downloaded");
    this.onChange({ kind: "downloaded" });
  }

  /** A model the visitor asks for jumps the queue (it may not have started downloading yet). */
  select(name) { return this.models.has(name) ? this.bringUp(this.models.get(name), { urgent: true }) : Promise.resolve(); }

  /** A model trained in this page (Model's `custom`), replacing an earlier one of its name, brought up as the visitor
   *  waits for it. */
  async addTrained(entry, custom) {
    const model = this.made(new Model(entry, this.prepare, custom));
    this.models.set(entry.name, model);
    await this.bringUpEverywhere(model);
    return model;
  }

  /** A model the visitor is waiting for: its files and first backend at once, then WebGPU, both timed, the faster chosen. */
  async bringUpEverywhere(model) {
    await this.bringUp(model, { urgent: true });
    if (this.device && model.source && !model.loadError) {
      await model.loadBackend("webgpu", this.device);
      for (const kind of model.backends.keys()) await model.time(kind);
      model.choose(this.preference);
    }
    this.onChange({ kind: "ready" });
  }

  /** Its plan and files, then the first backend that runs: WebAssembly, or WebGPU where that fails. */
  bringUp(model, { urgent = false } = {}) {
    model.urgent ||= urgent;
    model.bringingUp ??= (async () => {
      this.log("start", model);
      try {
        await model.open((m) => this.onChange({ kind: "progress", model: m }));
        model.source.file("weights").then(() => this.log("weights-downloaded", model), () => {});
        this.log("plan", model);
      } catch (e) {
        model.loadError = message(e);
        model.retryable = true;   // the plan: fetched again, it may well load
        this.onChange({ kind: "model", model });
        return;
      }
      await this.whenIdle(model);
      if (!(await model.loadBackend("wasm", "wasm")) && !model.loadError) {
        const device = await this.startGPU().then(() => this.device);
        if (device && !model.backends.has("webgpu")) await model.loadBackend("webgpu", device);
      }
      model.choose(this.preference);
      if (model.run) { this.log("ready", model); model.stashed = model.stashFiles(); }
      this.onChange({ kind: "model", model });
    })();
    return model.bringingUp;
  }

  /** After a file failed: the model's files again, then its backends. */
  async retry(name) {
    const model = this.models.get(name);
    model.reset();
    this.onChange({ kind: "model", model });
    await this.bringUpEverywhere(model);
  }

  startGPU() {
    this.gpu ??= this.bringUpGPU();
    return this.gpu;
  }

  async bringUpGPU() {
    const generation = ++this.generation, models = [...this.models.values()];
    this.settled = false;
    try {
      const { device, adapterName } = await requestDevice();
      Object.assign(this, { device, adapterName, gpuError: null });
      device.lost.then((info) => this.lost(generation, models, info));
      this.log("webgpu-device");
    } catch (e) {
      this.gpuError = message(e);
      for (const m of models) if (!m.loadError) m.backendErrors.set("webgpu", this.gpuError);
      if (!(e instanceof NoWebGPUError)) console.warn("WebGPU:", e);
    }
    // the rest runs after this promise resolves, so that a model waiting for the device is not also waiting for this
    this.finishGPU(generation);
  }

  /** The page never destroys its device, so any loss (a driver reset, a GPU process crash) means: start again. */
  lost(generation, models, info) {
    if (generation !== this.generation) return;
    for (const m of models) { m.backends.delete("webgpu"); m.choose(this.preference); }
    this.settled = false;
    this.device = null;
    this.onChange({ kind: "lost", message: info.message });
    this.gpu = null;
    this.startGPU().catch((e) => this.onChange({ kind: "fatal", error: e }));
  }

  async finishGPU(generation) {
    const models = [...this.models.values()];
    for (const m of models) {
      await m.bringingUp;
      if (!this.device || generation !== this.generation) break;
      if (m.loadError || m.backends.has("webgpu")) continue;
      await this.whenIdle();
      await m.loadBackend("webgpu", this.device);
      if (m.backends.has("webgpu")) this.log("webgpu-ready", m);
      this.onChange({ kind: "model", model: m });
    }
    if (generation !== this.generation) return;
    // timed one model and one backend at a time, so no measurement shares the CPU or GPU with another
    for (const m of models) for (const kind of m.backends.keys()) await m.time(kind, () => this.quietMoment());
    if (generation !== this.generation) return;
    for (const m of models) m.choose(this.preference);
    this.settled = true;
    this.log("settled");
    this.onChange({ kind: "ready" });
  }
}
