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
// openModel(metadata or its URL) -> model (its files, plan, weights' names, load(backend, options)); model.load(backend)
// -> run: run(input) -> logits, run(input, { taps: true }) -> every layer, run.train / run.fit / run.evaluate (the training
// programs), run.readWeights / writeWeights / resetOptimizer / init. Each module says the rest: fetch.js, sha256.js,
// safetensors.js, features.js, plan.js, model.js, programs.js, webgpu.js, wasm.js, threads.js, thread.js
// (docs/runtime.md has the map).

export { openModel, loadModel } from "./model.js";
export { ModelFileError, DownloadError, fetchBytes, fetchJson, verified, message } from "./fetch.js";
export { sha256Hex, sha256 } from "./sha256.js";
export { readSafetensors, parseSafetensors, writeSafetensors, halfToFloat32 } from "./safetensors.js";
export { capabilities, hasSimd, hasRelaxedSimd, canShareMemory } from "./features.js";
export { wasmModule, checkArena, PLAN_FORMAT } from "./plan.js";
export { serialised, randomBits, initialWeights } from "./programs.js";
