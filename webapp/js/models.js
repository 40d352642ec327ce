// The page's models on two backends, WebGPU (one GPUDevice for the page) and WebAssembly SIMD (on the CPU, in every
// browser), over the one model runtime (model_runtime.js). Which models exist comes from the site's manifest
// (models.json, written by the exporter): the models it serves for drawing, with their metadata.
//
// Load order, so that a first visit predicts as soon as possible: the selected model's files (plan, weights and
// WebAssembly together, with progress) and its first backend; the page predicts from there. Only then the other models,
// WebGPU, and the timing that picks the faster backend per model, each step waiting until no prediction is running.
// Each file is downloaded once and its hash checked once: both backends of a model get the same bytes.
// A lost GPU device falls back to WebAssembly while a fresh device is brought up.

import { openModel, fetchBytes, fetchJson, wasmFile, capabilities, DownloadError, ModelFileError } from "./model_runtime.js";
import { siteName } from "./settings.js";

export const BACKEND_NAMES = { webgpu: "WebGPU", wasm: "WebAssembly" };
export const OFFLINE_CACHE = siteName("mnist-app-v2");   // the service worker's cache (sw.js): verified downloads go straight in
export const MANIFEST = new URL("../models.json", import.meta.url);
const WARMUP_RUNS = 3, TIMED_RUNS = 7;
const LOAD_EVENTS = 100, MAX_EVENTS = 1000;   // runtime.events: the first ones (the load), then the newest
// In use, the backend in use is re-checked when its recent runs are this much slower than when it was timed (another tab
// took the GPU, the CPU was throttled): both are timed again and the other is taken only if it is clearly faster, so two
// close backends never flap.
const IN_USE_RUNS = 20, SLOWER_IN_USE = 1.5, CLEARLY_FASTER = 0.8;

export class NoWebGPUError extends Error {}

/** The site's models: { predict: [{ name, label, meta }], train: [...] }, from models.json (fetched fresh: it is where
 *  every file's hash comes from). */
export async function readManifest() {
  const manifest = await fetchJson(MANIFEST, "models.json");
  const models = Array.isArray(manifest?.models) ? manifest.models.filter((m) => typeof m?.name === "string" && m.meta?.name === m.name) : [];
  const predict = models.filter((m) => m.role === "predict"), train = models.filter((m) => m.role === "train");
  if (!predict.length) throw new ModelFileError("models.json lists no model to draw with");
  return { predict, train };
}

/** The folder of a model of the manifest. */
export const folderOf = (name) => new URL(`../${name}/`, import.meta.url);

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

const message = (e) => (e instanceof Error ? e.message : String(e));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b), mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// Verified files go into the offline cache at once, so that the service worker, when it installs, finds them there
// instead of downloading them a second time.
export async function stash(url, bytes, type = "application/octet-stream") {
  try {
    const cache = await caches.open(OFFLINE_CACHE);
    await cache.put(url, new Response(bytes, { headers: { "Content-Type": type, "Content-Length": String(bytes.byteLength) } }));
  } catch { /* no Cache Storage (an insecure context, private mode): the service worker fetches what it needs */ }
}

/** How the page runs WebAssembly: { threads (Workers: the cores, up to 16, where the page is cross-origin isolated; 1
 *  elsewhere), fma (relaxed SIMD), why (why one thread, if so) }. `?threads=N` in the page's address asks for N (benchmarks). */
export function wasmSettings() {
  const can = capabilities(), asked = Number(new URLSearchParams(globalThis.location?.search).get("threads"));
  const threads = Number.isInteger(asked) && asked >= 1 ? Math.min(asked, can.threads) : can.threads;
  const why = can.threads > 1 || asked === 1 ? null
    : !globalThis.crossOriginIsolated ? "the page is not cross-origin isolated"
    : typeof SharedArrayBuffer !== "function" ? "this browser cannot share memory between Workers" : "this device has one core";
  return { threads, fma: can.fma, why };
}

/** One model of the page: its metadata (from the manifest), its files (through the runtime, with progress) and a run()
 *  per backend. `custom`, for a model trained in this page: { base (its trainer's folder), plan, bytes (its weights as
 *  safetensors, made here), report }: no weights to download, only the trainer's WebAssembly. `wasm`: wasmSettings(). */
export class Model {
  constructor({ name, label, meta }, prepare = async () => {}, custom = null, wasm = wasmSettings()) {
    Object.assign(this, { name, label, meta, prepare, custom, wasm });
    this.base = custom?.base ?? folderOf(name);
    this.reset();
  }

  reset() {
    for (const b of this.backends?.values() ?? []) b.run.close?.();
    this.source = null;                 // the runtime's model: its plan and its files
    this.progress = { loaded: 0, total: 0, active: false };
    this.loadError = null;              // the plan or a file could not load: no backend can run it
    this.retryable = false;             // a download broke off or a file was bad: trying again may work
    this.backends = new Map();          // "webgpu" | "wasm" -> { run, ms: warm median of one run }
    this.backendErrors = new Map();     // "webgpu" | "wasm" -> why it is not available
    this.backend = null;                // the one in use
    this.threadsLost = null;            // why WebAssembly went back to one thread in use, if it did
    this.inUse = [];                    // the last IN_USE_RUNS times of a plain run on it (ms)
    this.rechecking = false;
    this.bringingUp = null;
    this.stashed = null;
    this.urgent = false;                // the visitor is waiting for it: its loading does not wait for idle moments
  }

  get run() { return this.backends.get(this.backend)?.run ?? null; }

  /** An empty canvas, normalised: what warm-up and timing runs feed the model. */
  get blank() { return new Float32Array(784).fill(-this.meta.mean / this.meta.std); }

  /** Unusable: nothing loaded, and every backend that was tried failed. */
  get error() {
    if (this.loadError) return this.loadError;
    if (this.backends.size || !this.backendErrors.has("wasm") || !this.backendErrors.has("webgpu")) return null;
    return [...this.backendErrors.values()].join("; ");
  }

  /** The files a first prediction needs (plan, weights, the first WebAssembly module), downloading at once with their
   *  progress reported to `onProgress`; resolves once the plan is in and checked. */
  async open(onProgress) {
    const { files } = this.meta, first = [this.firstWasm, ...(this.custom ? [] : ["weights"])];
    this.progress = { loaded: 0, total: ["plan", ...first].reduce((n, key) => n + (files[key]?.bytes ?? 0), 0), active: true };
    const fetchFile = (url, entry) => fetchBytesWithProgress(url, entry, (n) => { this.progress.loaded += n; onProgress(this); });
    const opening = openModel(this.meta, { base: this.base, plan: this.custom?.plan, fetchFile, prefetch: first });
    this.source = await opening.catch((e) => { this.progress.active = false; onProgress(this); throw e; });
    const loading = first.map((key) => this.source.file(key));
    for (const p of loading) p.catch(() => {});   // reported by the backend that needs the file
    Promise.allSettled(loading).then(() => { this.progress.active = false; onProgress(this); });
  }

  /** Its weights' tensors, for the inside view and for resetting fine-tuned weights. */
  tensors() { return this.source.tensors(this.weightsOption); }

  get weightsOption() { return this.custom ? { weights: this.custom.bytes, verify: false } : {}; }

  /** The file key of the WebAssembly module this page runs first: threaded or not, relaxed SIMD or not. */
  get firstWasm() { return wasmFile(this.meta, this.wasm); }

  async loadBackend(kind, target) {
    try {
      const options = { ...this.weightsOption, ...this.wasm, onThreadsLost: (why) => { this.threadsLost = why; this.onThreadsLost?.(this); } };
      const run = await this.source.load(target, options);
      await this.prepare(this, run);
      for (let i = 0; i < WARMUP_RUNS; i++) await run(this.blank);   // pipelines compile and code tiers up on first use
      this.backends.set(kind, { run, ms: Infinity });
      this.backendErrors.delete(kind);
      return true;
    } catch (e) {
      this.backends.delete(kind);
      this.backendErrors.set(kind, message(e));
      // a broken download or a bad file fails every backend alike: the model is unusable until it is fetched again
      // (retryable either way: a bad file may be a proxy's error page, and no cache keeps bytes that failed their check)
      if (e instanceof DownloadError || e instanceof ModelFileError) { this.loadError = message(e); this.retryable = true; }
      return false;
    }
  }

  /** Every file the first prediction used, into the offline cache (their bytes are checked). */
  async stashFiles() {
    const keys = ["plan", this.firstWasm, ...(this.custom ? [] : ["weights"])];
    await Promise.all(keys.map(async (key) => stash(this.source.url(key), await this.source.file(key))));
  }

  /** The warm median of TIMED_RUNS runs on `kind`. `quiet()` is awaited before each and gives a check of whether
   *  nothing else ran since: a run that shared its moment with a prediction is timed again (it would count that in). */
  async time(kind, quiet = async () => () => true) {
    const backend = this.backends.get(kind), input = this.blank, times = [];
    try {
      for (let tries = 0; times.length < TIMED_RUNS && tries < 4 * TIMED_RUNS; tries++) {
        const stillQuiet = await quiet(), start = performance.now();
        await backend.run(input);
        if (stillQuiet()) times.push(performance.now() - start);
      }
      backend.ms = median(times);
    } catch (e) {   // e.g. the GPU device was lost mid-way
      this.backends.delete(kind);
      this.backendErrors.set(kind, message(e));
    }
  }

  /** The visitor's choice where it can run, otherwise the faster backend (WebAssembly until WebGPU has been timed).
   *  `margin` < 1: keep the backend in use unless another takes less than `margin` times its time. */
  choose(preference, margin = 1) {
    const before = this.backend;
    if (this.backends.has(preference)) this.backend = preference;
    else {
      const [fastest] = [...this.backends.entries()].sort((a, b) => a[1].ms - b[1].ms || (a[0] === "wasm" ? -1 : 1))[0] ?? [null];
      const current = this.backends.get(before);
      this.backend = current && fastest !== before && !(this.backends.get(fastest).ms < margin * current.ms) ? before : fastest;
    }
    if (this.backend !== before) this.inUse = [];
  }
}

function fetchBytesWithProgress(url, entry, onBytes) {
  let received = 0;
  return fetchBytes(url, { what: entry.name, expectedBytes: entry.bytes, onBytes: (n) => { received += n; onBytes(n); } })
    .catch((e) => { onBytes(-received); throw e; });   // its bytes will come again
}

/** Loads the models and backends in the order above. `onChange` hears about progress, readiness, the choice, errors
 *  and device loss; `isIdle()` says when background work may take the CPU without delaying a prediction; `prepare(model,
 *  run)` runs on every backend once loaded, before it predicts. */
export class ModelRuntime {
  constructor(onChange, { preference = "auto", isIdle = () => true, prepare = async () => {} } = {}) {
    this.models = new Map();            // name -> Model, in the manifest's order (start)
    this.prepare = prepare;
    this.onChange = onChange;
    this.preference = preference;       // "auto" | "webgpu" | "wasm"
    this.isIdle = isIdle;
    this.device = null;
    this.adapterName = "";
    this.gpuError = null;
    this.gpu = null;                    // the promise of the current attempt to bring WebGPU up
    this.generation = 0;
    this.settled = false;               // every model downloaded, every backend tried, timed and chosen
    this.events = [];                   // what happened when (ms since navigation): the load order, for tests and benchmarks
    this.activity = 0;                  // predictions started: timings taken meanwhile are not trusted
  }

  /** Kept for tests and benchmarks: the load's events, then the newest of the rest (a long visit logs a prediction for every
   *  drawing, and must not keep them all). */
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

  /** A model of this runtime: it hears when its WebAssembly goes back to one thread. */
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

  /** A model trained in this page (Model's `custom`), replacing an earlier one of its name: brought up on WebAssembly,
   *  then on WebGPU where there is a device, both timed and the faster chosen, as the shipped models are. */
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
      device.lost.then((info) => {
        // the page never destroys its device, so any loss (a driver reset, a GPU process crash) means: start again
        if (generation !== this.generation) return;
        for (const m of models) { m.backends.delete("webgpu"); m.choose(this.preference); }
        this.settled = false;
        this.device = null;
        this.onChange({ kind: "lost", message: info.message });
        this.gpu = null;
        this.startGPU().catch((e) => this.onChange({ kind: "fatal", error: e }));
      });
      this.log("webgpu-device");
    } catch (e) {
      this.gpuError = message(e);
      for (const m of models) if (!m.loadError) m.backendErrors.set("webgpu", this.gpuError);
      if (!(e instanceof NoWebGPUError)) console.warn("WebGPU:", e);
    }
    // the rest runs after this promise resolves, so that a model waiting for the device is not also waiting for this
    this.finishGPU(generation);
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
