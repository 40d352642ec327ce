// One model of the page (an entry of the site's manifest) on its backends: its files through the runtime, with progress;
// a run() per backend, warmed up and timed; the backend in use, chosen by the visitor or by speed. models.js decides when
// each step happens.

import { openModel, fetchBytes, wasmModule, message, DownloadError, ModelFileError } from "./runtime/index.js";
import { stash } from "./settings.js";
import { wasmSettings } from "./wasm_settings.js";
import { folderOf } from "./early.js";

export const BACKEND_NAMES = { webgpu: "WebGPU", wasm: "WebAssembly" };
const WARMUP_RUNS = 3, TIMED_RUNS = 7;

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b), mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function fetchWithProgress(url, entry, onBytes) {
  let received = 0;
  return fetchBytes(url, { what: entry.name, expectedBytes: entry.bytes, onBytes: (n) => { received += n; onBytes(n); } })
    .catch((e) => { onBytes(-received); throw e; });   // its bytes will come again
}

/** `entry`: { name, label, meta } of the manifest; `prepare(model, run)` runs on every backend once loaded, before it
 *  predicts; `custom`, for a model trained in this page: { base (its trainer's folder), plan, bytes (its weights as
 *  safetensors, made here), report }: no weights to download, only the trainer's WebAssembly. */
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
    this.inUse = [];                    // the last few times of a plain run on it (ms)
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

  /** The file key of the WebAssembly module this page runs first (the runtime's one rule). */
  get firstWasm() { return wasmModule(this.meta, this.wasm).file; }

  /** ...and the one a visit after this runs: the service worker isolates it, so it shares memory between the cores. */
  get nextWasm() { return wasmModule(this.meta, { ...this.wasm, threads: navigator.hardwareConcurrency ?? 1, shared: true }).file; }

  /** The files a first prediction needs, downloading at once with their progress reported to `onProgress`; resolves
   *  once the plan is in and checked. */
  async open(onProgress) {
    const { files } = this.meta, first = [this.firstWasm, ...(this.custom ? [] : ["weights"])];
    this.progress = { loaded: 0, total: ["plan", ...first].reduce((n, key) => n + (files[key]?.bytes ?? 0), 0), active: true };
    const fetchFile = (url, entry) => fetchWithProgress(url, entry, (n) => { this.progress.loaded += n; onProgress(this); });
    const opening = openModel(this.meta, { base: this.base, plan: this.custom?.plan, fetchFile, prefetch: first });
    this.source = await opening.catch((e) => { this.progress.active = false; onProgress(this); throw e; });
    const loading = first.map((key) => this.source.file(key));
    for (const p of loading) p.catch(() => {});   // reported by the backend that needs the file
    Promise.allSettled(loading).then(() => { this.progress.active = false; onProgress(this); });
  }

  /** Its weights' tensors, for the inside view and for resetting fine-tuned weights. */
  tensors() { return this.source.tensors(this.weightsOption); }

  get weightsOption() { return this.custom ? { weights: this.custom.bytes, verify: false } : {}; }

  async loadBackend(kind, target) {
    try {
      const options = { ...this.weightsOption, ...this.wasm, onThreadsLost: (why) => { this.threadsLost = why; this.onThreadsLost?.(this); } };
      const run = await this.source.load(target, options);
      await this.prepare(this, run);
      if (kind === "webgpu") this.stashFiles(new Set(["wgsl"])).catch(() => {});   // the kernels this browser runs
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

  /** Into the offline cache, verified: the files the first prediction used and the WebAssembly module the next visit
   *  runs (only the builds this browser runs: the service worker keeps no model file of its own accord). */
  async stashFiles(keys = new Set(["plan", this.firstWasm, this.nextWasm, ...(this.custom ? [] : ["weights"])])) {
    await Promise.all([...keys].map(async (key) => stash(this.source.url(key), await this.source.file(key))));
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
