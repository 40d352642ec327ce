// Training from scratch on whatever GPU this machine has, in Node: the trainer networks' exported "fit" step on WebGPU
// through Dawn (the npm `webgpu` package), driven by the page's own loop (webapp/js/fit.js: batches, the scripts'
// schedule, held-out accuracy) on the page's own MNIST files (webapp/samples/mnist), to its accuracy on all 10 000 test
// digits; then the step's speed against TF.js training the same network on its webgpu and wasm backends
// (train_compare.js, as bench_train_page.py runs it in Chromium).
//
//   node bench/bench_gpu_train.mjs [--quick] [--only NAME] [--backend webgpu|wasm] [--threads N] [--epochs N] [--lr X] [--seed N] [--models DIR] [--json FILE]
//
// --epochs, --lr: instead of the trainer's defaults (its metadata); --models: a folder of exports other than webapp/;
// --threads: WebAssembly's (default 1; `--backend wasm --threads 2 --models DIR` is how the trainers were chosen).
// Writes bench/gpu_train.json (not with --quick). Without a GPU adapter Dawn can use, it trains on WebAssembly.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cpus, arch } from "node:os";
import { parseArgs } from "node:util";
import { create, globals } from "webgpu";
import { WEBAPP, read, loadMnist, trainToAccuracy } from "./node_training.mjs";

const { values: args } = parseArgs({ options: { quick: { type: "boolean" }, only: { type: "string" }, backend: { type: "string", default: "webgpu" },
                                                threads: { type: "string", default: "1" }, epochs: { type: "string" }, lr: { type: "string" }, seed: { type: "string", default: "1" },
                                                models: { type: "string" }, json: { type: "string" } } });
if (!/^([1-9]|1[0-6])$/.test(args.threads)) { console.error(`error: --threads takes 1 to 16, not ${args.threads}`); process.exit(2); }
const MODELS = args.models ? new URL(`file://${args.models.replace(/\/?$/, "/")}`) : WEBAPP;
const NAMES = args.only ? [args.only] : ["mnist_mlp_trainer", "mnist_convnet_trainer"];

// what a browser gives a page: the WebGPU globals, navigator.gpu, and fetch for the model files (here on disk)
Object.assign(globalThis, globals);
Object.defineProperty(globalThis, "navigator", { value: { ...(globalThis.navigator ?? {}), gpu: create([]) }, configurable: true });
const webFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const u = new URL(url);
  if (u.protocol !== "file:") return webFetch(url, init);
  const bytes = read(new URL(u.pathname, u));
  return { ok: true, status: 200, arrayBuffer: async () => bytes.slice().buffer, json: async () => JSON.parse(new TextDecoder().decode(bytes)) };
};
const { device } = await import("./compare.js");
const data = loadMnist();

const gpu = args.backend === "webgpu" ? await device(navigator.gpu) : null;
if (args.backend === "webgpu" && !gpu) {
  console.log("no WebGPU adapter that Dawn can use here: training on WebAssembly instead");
  args.backend = "wasm";
}
const adapter = gpu ? [gpu.info.vendor, gpu.info.architecture, gpu.info.device, gpu.info.description].filter(Boolean).join(" ") : "none";
const report = { machine: `${arch()}, ${cpus()[0]?.model ?? "cpu"} (${cpus().length} threads)`, runtime: `Node ${process.version}, Dawn (npm webgpu)`,
                 adapter, backend: args.backend, quick: Boolean(args.quick), trained: {} };

for (const name of NAMES) {
  const meta = JSON.parse(new TextDecoder().decode(read(new URL(`${name}/${name}.json`, MODELS))));
  const { openModel } = await import("../webapp/js/runtime/index.js");
  const model = await openModel(meta, { base: new URL(`${name}/`, MODELS), fetchFile: async (url) => read(url) });
  const run = await model.load(gpu ? gpu.device : "wasm", { weights: null, threads: Number(args.threads) });
  const settings = { samples: args.quick ? 3000 : 60000, epochs: args.quick ? 1 : Number(args.epochs ?? meta.fit.epochs), lr: Number(args.lr ?? meta.fit.lr),
                     seed: Number(args.seed), readEvery: gpu ? 8 : 1 };
  const result = report.trained[name] = await trainToAccuracy(run, meta, data, settings);
  const { steps, seconds, accuracy } = result;
  console.log(`${name} on ${args.backend}: ${accuracy.toFixed(2)}% of the 10 000 test digits after ${steps} steps of ${meta.fit.batch} ` +
              `(${settings.epochs} epochs, learning rate ${Number(settings.lr.toPrecision(6))}, seed ${settings.seed}) in ${seconds.toFixed(1)} s of training, ${Math.round((steps * meta.fit.batch) / seconds)} digits/s`);
}

let tf = null;
if (gpu) {
  try { tf = await import("@tensorflow/tfjs"); }   // the union package: it registers the gradients training needs
  catch { console.log("\n(TF.js is not installed here: npm ci; the comparison is left out)"); }
}
if (tf) {
  const { trainCompare } = await import("./train_compare.js");
  await import("@tensorflow/tfjs-backend-webgpu");
  const tfWasm = await import("@tensorflow/tfjs-backend-wasm");
  tfWasm.setWasmPaths(fileURLToPath(new URL("../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url)));
  const images = data.train.images[0].subarray(0, 512 * 784), labels = data.train.labels[0].subarray(0, 512);
  report.steps = await trainCompare({ names: NAMES, steps: args.quick ? 3 : 40, images, labels, tf, gpu: gpu.device, tfBackends: ["webgpu", "wasm"],
                                      bytes: async (url) => read(url) });
  console.log("\n| network | backend | ms per step | digits/s |\n|---|---|---|---|");
  for (const [name, rows] of Object.entries(report.steps)) {
    for (const [backend, r] of Object.entries(rows)) {
      console.log(r.error ? `| ${name} | ${backend} | cannot train it here: ${r.error.slice(0, 90)} | |` : `| ${name} | ${backend} | ${r.msPerStep.toFixed(2)} | ${Math.round(r.samplesPerSecond)} |`);
    }
  }
}
console.log(`\n${report.runtime} on ${report.machine}; GPU adapter: ${adapter}`);
if (!args.quick) writeFileSync(args.json ?? fileURLToPath(new URL("gpu_train.json", import.meta.url)), JSON.stringify(report, null, 1) + "\n");
process.exit(0);   // Dawn keeps the event loop alive
