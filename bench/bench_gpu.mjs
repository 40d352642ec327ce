// The exported modules on whatever GPU this machine has, in Node: WebGPU through Dawn (the npm `webgpu` package, a dev
// dependency) and WebAssembly, against TensorFlow.js 4.22 `webgpu` and `wasm` on the same weights and inputs (compare.js,
// the code bench_vs_tfjs.py runs in Chromium). Same output as bench_vs_tfjs.py.
//
//   node bench/bench_gpu.mjs [--quick] [--json FILE] [--images FILE]
//
// --images: MNIST test images as raw 784-byte rows (the first 16 are used); default: read them from $MNIST_DIR.
// Writes bench/gpu.json (not with --quick). On a machine without a GPU, Dawn may find a CPU Vulkan driver (lavapipe).
import { readFileSync, writeFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { cpus, arch } from "node:os";
import { parseArgs } from "node:util";
import { create, globals } from "webgpu";

const { values: args } = parseArgs({ options: { quick: { type: "boolean" }, json: { type: "string" }, images: { type: "string" } } });
const n = args.quick ? 10 : 500, NAMES = ["mnist_mlp", "mnist_convnet"];
const OURS = ["ours-webgpu", "ours-wasm"], TFJS = ["tfjs-webgpu", "tfjs-wasm"];

// what a browser gives a page: the WebGPU globals, and navigator.gpu before TF.js looks for it
Object.assign(globalThis, globals);
Object.defineProperty(globalThis, "navigator", { value: { ...(globalThis.navigator ?? {}), gpu: create([]) }, configurable: true });
const { compare, device } = await import("./compare.js");
const tf = await import("@tensorflow/tfjs-core");
await import("@tensorflow/tfjs-backend-webgpu");
const tfWasm = await import("@tensorflow/tfjs-backend-wasm");
tfWasm.setWasmPaths(fileURLToPath(new URL("../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url)));

function testImages() {
  if (args.images) return new Uint8Array(readFileSync(args.images));
  if (!process.env.MNIST_DIR) throw new Error("set MNIST_DIR (the folder with t10k-images-idx3-ubyte.gz) or pass --images");
  return gunzipSync(readFileSync(`${process.env.MNIST_DIR}/t10k-images-idx3-ubyte.gz`)).subarray(16);
}
const pixels = testImages(), images = Array.from({ length: 16 }, (_, i) => Array.from(pixels.subarray(i * 784, (i + 1) * 784)));

const gpu = await device(navigator.gpu);
const adapter = gpu ? [gpu.info.vendor, gpu.info.architecture, gpu.info.device, gpu.info.description].filter(Boolean).join(" ") : "none";
const raw = await compare({ names: NAMES, n, images, tf, gpu: gpu?.device ?? null, bytes: async (url) => new Uint8Array(readFileSync(url)),
                            tfBackends: ["webgpu", "wasm"] });

const quantile = (values, q) => { const s = [...values].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const report = { machine: `${arch()}, ${cpus()[0]?.model ?? "cpu"} (${cpus().length} threads)`, runtime: `Node ${process.version}, Dawn (npm webgpu)`,
                 adapter, quick: Boolean(args.quick), runs: n, models: {} };
for (const [name, results] of Object.entries(raw)) {
  const ours = results["ours-wasm"].logits ?? results["ours-webgpu"].logits, rows = {};
  for (const [backend, r] of Object.entries(results)) {
    rows[backend] = r.error ? { error: r.error } : { p50: quantile(r.times, 0.5), p95: quantile(r.times, 0.95),
                                                     max_abs_diff_vs_ours: Math.max(...r.logits.map((v, i) => Math.abs(v - ours[i]))) };
  }
  const fastest = (keys) => keys.filter((k) => rows[k].p50 !== undefined).sort((a, b) => rows[a].p50 - rows[b].p50)[0] ?? null;
  const pick = fastest(OURS), other = fastest(TFJS);
  report.models[name] = { backends: rows, ours_chosen: pick, fastest_tfjs: other, ratio_p50: pick && other ? rows[pick].p50 / rows[other].p50 : null };
}

console.log(`${report.runtime} on ${report.machine}; GPU adapter: ${adapter}; ${n} warm runs each, one forward pass with readback\n`);
console.log("| model | backend | p50 | p95 | max abs diff vs ours |\n|---|---|---|---|---|");
for (const [name, m] of Object.entries(report.models)) {
  for (const [backend, r] of Object.entries(m.backends)) {
    console.log(r.error ? `| ${name} | ${backend} | failed: ${r.error} | | |`
      : `| ${name} | ${backend}${backend === m.ours_chosen ? " (fastest of ours)" : ""} | ${r.p50.toFixed(3)} ms | ${r.p95.toFixed(3)} ms | ${r.max_abs_diff_vs_ours.toExponential(1)} |`);
  }
}
console.log("\n| model | ours (fastest) | fastest TF.js | ratio p50 |\n|---|---|---|---|");
for (const [name, m] of Object.entries(report.models)) console.log(`| ${name} | ${m.ours_chosen} | ${m.fastest_tfjs ?? "none ran"} | ${m.ratio_p50?.toFixed(2) ?? ""} |`);
const bad = Object.entries(report.models).flatMap(([name, m]) => Object.entries(m.backends).filter(([, r]) => r.max_abs_diff_vs_ours > 1e-2).map(([b]) => `${name}/${b}`));
if (bad.length) { console.error(`error: results disagree with ours (not the same model?): ${bad.join(", ")}`); process.exit(1); }
if (!Object.values(report.models).every((m) => m.ours_chosen)) { console.error("error: neither of our backends ran"); process.exit(1); }
if (!args.quick) writeFileSync(args.json ?? fileURLToPath(new URL("gpu.json", import.meta.url)), JSON.stringify(report, null, 1) + "\n");
process.exit(0);   // Dawn keeps the event loop alive
