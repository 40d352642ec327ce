// One forward pass with readback, timed warm, for the same weights and the same inputs: the exported modules on their
// two backends (WebGPU, WebAssembly) against TensorFlow.js on each of its backends (webgpu, webgl, cpu, wasm) and
// ONNX Runtime Web on its wasm and webgpu execution providers (the same weights as ONNX graphs, bench/onnx_models.py).
// TF.js runs the model as the usual hand-written graph of its ops (functional ops: tf-core alone has no chained ones),
// with the weights read from the exporter's safetensors file. Used by compare.html in Chromium (bench_vs_tfjs.py) and
// by bench_gpu.mjs in Node.
import { parseSafetensors, readSafetensors, openModel, capabilities } from "../webapp/js/runtime/index.js";

const MODELS = new URL("../webapp/", import.meta.url);

/** Every tensor of an exported weights file as float32 (the exporter stores F16, widened as the page does, or F32). */
function weightsOf(bytes) {
  const { tensors } = parseSafetensors(bytes), tensor = readSafetensors(bytes), out = {};
  for (const [name, { shape }] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    out[name] = { shape, data: new Float32Array(tensor(name, 4 * n).slice().buffer) };
  }
  return out;
}

// the two architectures of mnist_mlp.py and mnist_convnet.py (ReLU), layer by layer from the state dict's names
function tfForward(tf, meta, weights) {
  if (meta.config.model.act !== "relu") throw new Error("the TF.js graph here is written for ReLU models");
  const index = [...new Set(Object.keys(weights).map((k) => Number(k.split(".")[1])))].sort((a, b) => a - b);
  const w = (i, part) => weights[`layers.${i}.${part}`];
  const layers = index.map((i) => {
    if (w(i, "running_mean")) {   // batch norm at inference, as a per-channel scale and shift
      const scale = w(i, "weight").data.map((g, c) => g / Math.sqrt(w(i, "running_var").data[c] + 1e-5));
      const shift = w(i, "bias").data.map((b, c) => b - w(i, "running_mean").data[c] * scale[c]);
      return { kind: "bn", scale: tf.tensor1d(scale), shift: tf.tensor1d(shift) };
    }
    const { shape, data } = w(i, "weight");
    if (shape.length === 4) return { kind: "conv", w: tf.transpose(tf.tensor4d(data, shape), [2, 3, 1, 0]), b: tf.tensor1d(w(i, "bias").data) };
    return { kind: "linear", w: tf.transpose(tf.tensor2d(data, shape)), b: tf.tensor1d(w(i, "bias").data) };
  });
  const hasBN = layers.some((l) => l.kind === "bn");
  return (input) => tf.tidy(() => {
    let x = tf.tensor4d(input, [1, 1, 28, 28]), convs = 0;
    x = layers[0].kind === "conv" ? tf.transpose(x, [0, 2, 3, 1]) : tf.reshape(x, [1, 784]);
    layers.forEach((l, j) => {
      if (l.kind === "conv") x = tf.relu(tf.add(tf.conv2d(x, l.w, 1, "valid"), l.b));
      else if (l.kind === "bn") x = tf.add(tf.mul(x, l.scale), l.shift);
      else {
        if (x.rank === 4) x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [1, -1]);   // flatten in tinygrad's NCHW order
        x = tf.add(tf.matMul(x, l.w), l.b);
        if (j < layers.length - 1) x = tf.relu(x);
      }
      if (l.kind === "conv") convs++;
      const blockEnd = convs % 2 === 0 && convs > 0 && (hasBN ? l.kind === "bn" : l.kind === "conv");
      if (blockEnd) x = tf.maxPool(x, 2, 2, "valid");
    });
    return x;
  });
}

// Chromium's clock ticks in 0.1 ms, the length of a whole run here: a sample is the mean of as many back-to-back runs
// as last about 5 ms (one run for anything slower), the same rule for every backend
export async function time(run, inputs, n) {
  for (let i = 0; i < 5; i++) await run(inputs[i % inputs.length]);   // warm: compile, upload, tier up
  let t = performance.now();
  for (let i = 0; i < 10; i++) await run(inputs[i % inputs.length]);
  const group = Math.min(50, Math.max(1, Math.round(5 / Math.max((performance.now() - t) / 10, 0.1))));
  const times = [];
  for (let i = 0; i < n; i++) {
    t = performance.now();
    for (let k = 0; k < group; k++) await run(inputs[(i * group + k) % inputs.length]);
    times.push((performance.now() - t) / group);
  }
  return times;
}

export async function device(gpu) {
  const adapter = await gpu?.requestAdapter({ powerPreference: "high-performance" });
  return adapter ? { device: await adapter.requestDevice(), info: adapter.info ?? {} } : null;
}

/** {model: {backend: {times, logits (first input), error}}} for our two backends, each TF.js backend named, and, given
 *  `ort` (ONNX Runtime Web) and `onnx` ({model: URL of its ONNX graph}), each ORT execution provider in `ortBackends`.
 *  `bytes(url)` reads a file (fetch in a page, the file system in Node); `gpu` is a GPUDevice or null. */
export async function compare({ names, n, images, tf, gpu, bytes, tfBackends, ort = null, onnx = {}, ortBackends = [], wasm = { threads: 1, fma: false } }) {
  const results = {};
  for (const name of names) {
    const meta = JSON.parse(new TextDecoder().decode(await bytes(new URL(`${name}/${name}.json`, MODELS))));
    const model = await openModel(meta, { base: new URL(`${name}/`, MODELS), fetchFile: (url) => bytes(url) });
    const weightBytes = await model.file("weights");
    const inputs = images.map((img) => Float32Array.from(img, (p) => (p / 255 - meta.mean) / meta.std));
    const result = results[name] = {};
    for (const backend of ["webgpu", "wasm"]) {
      try {
        if (backend === "webgpu" && !gpu) throw new Error("no WebGPU adapter");
        const run = await model.load(backend === "wasm" ? "wasm" : gpu, wasm);
        result[`ours-${backend}`] = { logits: Array.from(await run(inputs[0])), times: await time(run, inputs, n) };
      } catch (e) { result[`ours-${backend}`] = { error: e.message }; }
    }
    const weights = weightsOf(weightBytes);
    for (const backend of tfBackends) {
      try {
        if (!(await tf.setBackend(backend))) throw new Error("backend failed to initialise");
        await tf.ready();
        const forward = tfForward(tf, meta, weights);
        const run = async (x) => { const y = forward(x), logits = await y.data(); y.dispose(); return logits; };
        result[`tfjs-${backend}`] = { logits: Array.from(await run(inputs[0])), times: await time(run, inputs, n) };
      } catch (e) { result[`tfjs-${backend}`] = { error: e.message }; }
    }
    for (const provider of ort ? ortBackends : []) {
      try {
        const session = await ort.InferenceSession.create(onnx[name], { executionProviders: [provider], graphOptimizationLevel: "all" });
        const run = async (x) => (await session.run({ input: new ort.Tensor("float32", x, [1, 1, 28, 28]) })).logits.data;
        result[`ort-${provider}`] = { logits: Array.from(await run(inputs[0])), times: await time(run, inputs, n) };
        await session.release();
      } catch (e) { result[`ort-${provider}`] = { error: e.message ?? String(e) }; }
    }
  }
  return results;
}

/** Every side's WebAssembly on `threads` threads (where the page is cross-origin isolated; else one): ours with FMA
 *  where the browser has it, as the page runs; TF.js's threaded SIMD build; ORT's threads. What each got. */
export function wasmThreads(tf, ort, threads) {
  const n = globalThis.crossOriginIsolated ? threads : 1;
  tf?.wasm.setThreadsCount(n);
  if (ort) ort.env.wasm.numThreads = n;
  return { threads: n, fma: capabilities().fma };
}

// in the comparison page: TF.js from its script tags, files over HTTP
if (globalThis.document) {
  globalThis.compare = async ({ names, n, images, onnx, threads = 1 }) => {
    const tf = globalThis.tf, ort = globalThis.ort;
    tf.wasm.setWasmPaths(new URL("../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url).href);
    ort.env.wasm.wasmPaths = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url).href;
    const wasm = wasmThreads(tf, ort, threads);
    const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
    return { wasm, results: await compare({ names, n, images, tf, gpu: (await device(navigator.gpu))?.device ?? null, bytes, tfBackends: ["webgpu", "webgl", "cpu", "wasm"],
                                            ort, onnx, ortBackends: ["wasm", "webgpu"], wasm }) };
  };
  globalThis.compareReady = true;
}
