// The one runtime of every exported model: a model is data (metadata, plan, weights, WebAssembly modules, WGSL kernels),
// written by the exporter; this folder loads and runs any of them on WebGPU or on WebAssembly SIMD (on one thread or on
// Workers). The page, its Workers, Node, the tests and the benchmarks import it from here. It knows no model.
//
//   import { loadModel } from "<this folder>/index.js";
//   const run = await loadModel("mnist_convnet/mnist_convnet.json", "wasm");     // or a GPUDevice instead of "wasm"
//   const logits = await run(input);   // Float32Array(784): 28x28, white on black, (pixel / 255 - mean) / std
//
// Verify, then use: every file is checked against the SHA-256 its metadata gives before it is parsed, compiled or handed
// out; the metadata itself is the root of trust (fetched fresh, never from a cache).
//
// openModel(metadata or its URL, { base, plan, fetchFile, prefetch }) -> model: { name, meta, plan, taps, train, fit,
//   evaluate, weights: [{ name, shape }], url(key), file(key) (a file's verified bytes, fetched once), load(backend,
//   options), tensors(options) }
// model.load(backend, { weights, threads, fma, onThreadsLost }) -> run: run(Float32Array(784)) -> Promise<Float32Array(10)>.
//   `weights`: by default the model's own file; bytes or a URL (checked against the metadata's SHA-256 unless `verify:
//   false`, for bytes made in this page); null for none (a training from scratch: run.init draws them). WebAssembly:
//   `threads` Workers where memory can be shared (default 1), relaxed SIMD's FMA where the engine has it (`fma: false`
//   turns it off); run.wasm says what it runs on.
// run(input, { taps: true }) -> { logits, taps: { layer name: Float32Array } }: every layer the model names (plan.taps).
// run.train(images, labels, lr) -> loss: one fine-tuning step (plan.train); run.fit(images, labels, lr, { read }) ->
//   { loss, correct }: one step of training from scratch (plan.fit); run.evaluate(images) -> logits of plan.evaluate.batch
//   images; run.readWeights(names) / run.writeWeights({ name: Float32Array }); run.resetOptimizer(); run.init(seed)
//   draws fresh weights as tinygrad does.
//
// One idea per module: fetch.js (downloads, errors, the hash check), sha256.js, safetensors.js (read and write),
// features.js (what this engine's WebAssembly can do), plan.js (the plan and the metadata as the exporter states them),
// model.js (files, weights, load), programs.js (run and the training steps), webgpu.js, wasm.js (any thread count),
// threads.js (the Workers and their jobs) and thread.js (one Worker).

export { openModel, loadModel } from "./model.js";
export { ModelFileError, DownloadError, fetchBytes, fetchJson, verified } from "./fetch.js";
export { sha256Hex, sha256 } from "./sha256.js";
export { readSafetensors, parseSafetensors, writeSafetensors, halfToFloat32 } from "./safetensors.js";
export { capabilities, hasSimd, hasRelaxedSimd, canShareMemory } from "./features.js";
export { wasmModule, checkArena, PLAN_FORMAT } from "./plan.js";
export { serialised, randomBits, initialWeights } from "./programs.js";
