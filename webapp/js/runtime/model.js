// A model, opened from its metadata: its files (each fetched once and checked against the metadata's SHA-256 before it
// is parsed, compiled or handed out), its plan, its weights decoded once, and load(backend) -> run.

import { fetchBytes, fetchJson, parseJson, verified, fileName, fileUrl, ModelFileError } from "./fetch.js";
import { readSafetensors } from "./safetensors.js";
import { checkedPlan, wasmModule } from "./plan.js";
import { programsOf } from "./programs.js";
import { wasmBackend } from "./wasm.js";

/** The model whose metadata is at `source` (a URL, fetched fresh) or is `source` (an object, with `base`: the URL of its
 *  folder). `plan`: its plan, already checked (a Worker is handed the page's); `fetchFile(url, entry)`: how to download
 *  a file (default fetchBytes; the page's reports progress); `prefetch`: file keys to start downloading beside the plan. */
export async function openModel(source, { base, plan, fetchFile, prefetch = [] } = {}) {
  const meta = typeof source === "object" && !(source instanceof URL) ? source : await fetchJson(source);
  const folder = new URL(base ?? source, globalThis.location?.href);
  if (typeof meta?.name !== "string" || typeof meta.files !== "object" || !(meta.std > 0)) {
    throw new ModelFileError(`${fileName(folder)} is not a model's metadata (no name, files or input normalisation)`);
  }
  const model = modelFiles(meta, folder, fetchFile ?? ((url, entry) => fetchBytes(url, { what: entry.name, expectedBytes: entry.bytes })));
  for (const key of prefetch) model.file(key).catch(() => {});   // beside the plan: reported by whoever needs them
  model.plan = checkedPlan(plan ?? await model.json("plan"), meta);
  return describeModel(model);
}

/** Open the model whose metadata is at `metaUrl` and load it on `backend` (a GPUDevice or "wasm"). */
export async function loadModel(metaUrl, backend, options) {
  return (await openModel(metaUrl)).load(backend, options);
}

/** A model's files by their key in the metadata ("plan", "weights", ...): url(key), file(key) (its bytes, checked against
 *  the metadata's SHA-256, downloaded once; a failed download is tried again when next asked for) and json(key). */
function modelFiles(meta, folder, fetchFile) {
  const files = new Map(), parsed = new Map();
  const entry = (key) => {
    const e = meta.files[key];
    if (!e?.name) throw new ModelFileError(`${meta.name}: its metadata names no ${key} file`);
    return e;
  };
  const url = (key) => fileUrl(entry(key), folder);
  const remember = (map, key, make) => {
    if (!map.has(key)) {
      const promise = make();
      map.set(key, promise);
      promise.catch(() => map.delete(key));
    }
    return map.get(key);
  };
  const file = (key) => remember(files, key, async () => verified(await fetchFile(url(key), entry(key)), entry(key).sha256, entry(key).name));
  const json = (key) => remember(parsed, key, async () => parseJson(await file(key), entry(key).name));
  return { name: meta.name, meta, folder, url, file, json };
}

function describeModel(model) {
  const { plan } = model, weightBuffers = plan.buffers.filter((b) => b.kind === "weight");
  return Object.assign(model, {
    inputShape: plan.inputShape, outputLength: plan.outputLength, taps: plan.taps, train: plan.train ?? null, fit: plan.fit ?? null,
    evaluate: plan.evaluate ?? null, weights: weightBuffers.map(({ name, shape }) => ({ name, shape })), backends: ["webgpu", "wasm"],
    weightSizes: Object.fromEntries(weightBuffers.map((b) => [b.name, b.bytes / 4])),
    load: (backend, options) => load(model, backend, options),
    tensors: (options) => tensors(model, options),
  });
}

/** The weights as the backends read them: tensor(name, float32Bytes), decoded once per file. */
const decoded = new WeakMap();
async function weightsOf(model, { weights, verify = true } = {}) {
  if (weights === null) return null;
  const what = `${model.name}: weights file ${model.meta.files.weights?.name ?? `${model.name}.safetensors`}`;
  let bytes = weights === undefined ? await model.file("weights") : await weights;
  if (typeof bytes === "string" || bytes instanceof URL) bytes = await fetchBytes(bytes);
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${model.name}: weights must be a URL or a Uint8Array`);
  if (weights !== undefined && verify) await verified(bytes, model.meta.files.weights?.sha256, what);
  if (!decoded.has(bytes)) {
    const tensor = readSafetensors(bytes, what), cache = new Map();
    const cached = (name, n) => { if (!cache.has(name)) cache.set(name, tensor(name, n)); return cache.get(name); };
    cached.shape = tensor.shape;
    decoded.set(bytes, cached);
  }
  return decoded.get(bytes);
}

/** The weights file's tensors as float32, with their shapes: for showing what the model learned, or restoring it. */
async function tensors(model, options) {
  const tensor = await weightsOf(model, options);
  return (name) => {
    const shape = tensor.shape(name);
    if (!shape) throw new ModelFileError(`${model.name}: the weights file has no tensor "${name}"`);
    return { shape, data: new Float32Array(tensor(name, 4 * shape.reduce((a, b) => a * b, 1)).slice().buffer) };
  };
}

/** `backend`: a GPUDevice or "wasm". Options: weights (see weightsOf), and for WebAssembly threads, fma, placement
 *  and onThreadsLost(why) (see wasm.js). */
async function load(model, backend, options = {}) {
  if (backend === "wasm" && typeof WebAssembly !== "object") throw new Error(`${model.name}: this browser has no WebAssembly`);
  const module = backend === "wasm" ? wasmModule(model.meta, options) : null;
  const first = module && model.file(module.file);   // downloads beside the weights
  first?.catch(() => {});   // reported below, after the weights' own errors
  const tensor = await weightsOf(model, options);
  // WebGPU's code loads only where a page uses it (never before a first prediction on WebAssembly, never in a Worker)
  const memory = module ? await wasmBackend(model, module, await first, tensor, options)
    : await (await import("./webgpu.js")).webgpuBackend(model, backend, tensor);
  const run = programsOf(model, memory);
  // what it runs on, for the page to say (threads: now, after any fallback to one thread)
  run.wasm = module && { get threads() { return memory.threads; }, get alone() { return memory.alone; }, fma: Boolean(module.fma),
                         stopThread: (tid) => memory.stopThread(tid) };
  run.close = () => memory.close?.();
  return run;
}
