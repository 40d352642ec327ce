// The model runtime: one GPUDevice for the page, each exported model loaded once onto it and warmed up, and a fresh
// device (with every model reloaded) if the GPU device is lost.

export const MODEL_NAMES = ["mnist_mlp", "mnist_convnet"];
const WARMUP_RUNS = 3;

export class NoWebGPUError extends Error {}

async function requestDevice() {
  if (!navigator.gpu) throw new NoWebGPUError("this browser has no WebGPU (navigator.gpu is missing)");
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new NoWebGPUError("WebGPU found no usable GPU adapter");
  const info = adapter.info ?? {};
  const adapterName = [info.vendor, info.architecture || info.description].filter(Boolean).join(" ") || "GPU";
  return { device: await adapter.requestDevice(), adapterName };
}

/** One exported model: its metadata (the input contract) and, once loaded, its run(). */
export class Model {
  constructor(name) {
    this.name = name;
    this.base = new URL(`../${name}/`, import.meta.url);
    this.meta = null;
    this.run = null;
    this.error = null;
  }

  async load(device) {
    this.run = null;
    this.error = null;
    try {
      if (!this.meta) {
        const response = await fetch(new URL(`${this.name}.json`, this.base));
        if (!response.ok) throw new Error(`${this.name}.json: HTTP ${response.status}`);
        this.meta = await response.json();
        if (!(this.meta.std > 0) || typeof this.meta.mean !== "number") throw new Error(`${this.name}.json has no input normalisation`);
      }
      const module = (await import(new URL(`${this.name}.js`, this.base))).default;
      const run = await module.load(device, new URL(`${this.name}.safetensors`, this.base));
      const zeros = new Float32Array(784).fill(-this.meta.mean / this.meta.std);
      for (let i = 0; i < WARMUP_RUNS; i++) await run(zeros);   // pipelines compile on first use
      this.run = run;
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    }
    return this;
  }
}

/** Loads every model onto one device; `onChange` hears about loading, readiness, errors and device loss. */
export class ModelRuntime {
  constructor(onChange) {
    this.models = new Map(MODEL_NAMES.map((n) => [n, new Model(n)]));
    this.onChange = onChange;
    this.device = null;
    this.adapterName = "";
    this.generation = 0;
  }

  async start() {
    const generation = ++this.generation;
    this.onChange({ kind: "loading" });
    const { device, adapterName } = await requestDevice();
    this.device = device;
    this.adapterName = adapterName;
    device.lost.then((info) => {
      // the page never destroys its device, so any loss (a driver reset, a GPU process crash) means: start again
      if (generation !== this.generation) return;
      this.onChange({ kind: "lost", message: info.message });
      this.start().catch((e) => this.onChange({ kind: "fatal", error: e }));
    });
    await Promise.all([...this.models.values()].map(async (m) => {
      await m.load(device);
      if (generation === this.generation) this.onChange({ kind: "model", model: m });
    }));
    if (generation === this.generation) this.onChange({ kind: "ready" });
  }
}
