// The model runtime: every exported model on two backends, WebGPU (one GPUDevice for the page) and WebAssembly SIMD
// (on the CPU, in every browser). The WebAssembly backend loads first so the page can predict at once; once both are
// warm, each model's runs are timed and the faster backend is used, unless the visitor picked one. A lost GPU device
// falls back to WebAssembly while a fresh device is brought up.

export const MODEL_NAMES = ["mnist_mlp", "mnist_convnet"];
export const BACKEND_NAMES = { webgpu: "WebGPU", wasm: "WebAssembly" };
const WARMUP_RUNS = 3, TIMED_RUNS = 7;

export class NoWebGPUError extends Error {}

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

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b), mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** One exported model: its metadata (the input contract), its generated module and a run() per loaded backend. */
export class Model {
  constructor(name) {
    this.name = name;
    this.base = new URL(`../${name}/`, import.meta.url);
    this.meta = null;
    this.module = null;
    this.loadError = null;              // the metadata or module could not load: no backend can run this model
    this.backends = new Map();          // "webgpu" | "wasm" -> { run, ms: warm median of one run }
    this.backendErrors = new Map();     // "webgpu" | "wasm" -> why it is not available
    this.backend = null;                // the one in use
  }

  get run() { return this.backends.get(this.backend)?.run ?? null; }

  /** An empty canvas, normalised: what warm-up and timing runs feed the model. */
  get blank() { return new Float32Array(784).fill(-this.meta.mean / this.meta.std); }

  /** Unusable: nothing loaded, and every backend that was tried failed. */
  get error() {
    if (this.loadError) return this.loadError;
    if (this.backends.size || !this.backendErrors.has("wasm")) return null;
    return [...this.backendErrors.values()].join("; ");
  }

  // files are asked for by content hash (written by the exporter), so neither the HTTP cache nor the offline cache
  // can hand out an old copy; the metadata itself is always revalidated
  versioned(file, hash) { return new URL(hash ? `${file}?v=${hash}` : file, this.base); }

  async prepare() {
    if (this.module) return;
    try {
      const response = await fetch(new URL(`${this.name}.json`, this.base), { cache: "no-cache" });
      if (!response.ok) throw new Error(`${this.name}.json: HTTP ${response.status}`);
      this.meta = await response.json();
      if (!(this.meta.std > 0) || typeof this.meta.mean !== "number") throw new Error(`${this.name}.json has no input normalisation`);
      this.module = (await import(this.versioned(`${this.name}.js`, this.meta.files?.module))).default;
    } catch (e) {
      this.loadError = message(e);
    }
  }

  async loadBackend(kind, target) {
    if (!this.module) return;
    try {
      const run = await this.module.load(target, this.versioned(`${this.name}.safetensors`, this.meta.files?.weights));
      for (let i = 0; i < WARMUP_RUNS; i++) await run(this.blank);   // pipelines compile and code tiers up on first use
      this.backends.set(kind, { run, ms: Infinity });
      this.backendErrors.delete(kind);
    } catch (e) {
      this.backends.delete(kind);
      this.backendErrors.set(kind, message(e));
    }
  }

  async time(kind) {
    const backend = this.backends.get(kind), input = this.blank, times = [];
    try {
      for (let i = 0; i < TIMED_RUNS; i++) {
        const start = performance.now();
        await backend.run(input);
        times.push(performance.now() - start);
      }
      backend.ms = median(times);
    } catch (e) {   // e.g. the GPU device was lost mid-way
      this.backends.delete(kind);
      this.backendErrors.set(kind, message(e));
    }
  }

  /** The visitor's choice where it can run, otherwise the faster backend (WebAssembly until WebGPU has been timed). */
  choose(preference) {
    if (this.backends.has(preference)) this.backend = preference;
    else this.backend = [...this.backends.entries()].sort((a, b) => a[1].ms - b[1].ms || (a[0] === "wasm" ? -1 : 1))[0]?.[0] ?? null;
  }
}

/** Loads every model on both backends; `onChange` hears about loading, readiness, the choice, errors and device loss. */
export class ModelRuntime {
  constructor(onChange, preference = "auto") {
    this.models = new Map(MODEL_NAMES.map((n) => [n, new Model(n)]));
    this.onChange = onChange;
    this.preference = preference;       // "auto" | "webgpu" | "wasm"
    this.device = null;
    this.adapterName = "";
    this.gpuError = null;
    this.generation = 0;
    this.settled = false;               // every backend tried, timed and chosen
  }

  setPreference(preference) {
    this.preference = preference;
    for (const m of this.models.values()) m.choose(preference);
    this.onChange({ kind: "choice" });
  }

  async start() {
    const models = [...this.models.values()];
    this.onChange({ kind: "loading" });
    await Promise.all(models.map((m) => m.prepare()));
    await Promise.all(models.map((m) => m.loadBackend("wasm", "wasm")));
    for (const m of models) { m.choose(this.preference); this.onChange({ kind: "model", model: m }); }
    await this.startGPU();
  }

  async startGPU() {
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
        this.onChange({ kind: "lost", message: info.message });
        this.startGPU().catch((e) => this.onChange({ kind: "fatal", error: e }));
      });
      await Promise.all(models.map((m) => m.loadBackend("webgpu", device)));
    } catch (e) {
      this.gpuError = message(e);
      for (const m of models) if (!m.loadError) m.backendErrors.set("webgpu", this.gpuError);
      if (!(e instanceof NoWebGPUError)) console.warn("WebGPU:", e);
    }
    if (generation !== this.generation) return;
    // timed one model and one backend at a time, so no measurement shares the CPU or GPU with another
    for (const m of models) for (const kind of m.backends.keys()) await m.time(kind);
    for (const m of models) m.choose(this.preference);
    this.settled = true;
    this.onChange({ kind: "ready" });
  }
}
