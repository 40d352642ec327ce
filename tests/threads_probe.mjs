// For test_threads.py: the committed models through the one runtime on WebAssembly in Node, on 1, 2 and 4 threads and
// with relaxed SIMD or not; prints one JSON object. node --experimental-wasm-relaxed-simd tests/threads_probe.mjs <what> ...
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { openModel } from "../webapp/js/runtime/index.js";

globalThis.fetch = async (url) => new Response(readFileSync(fileURLToPath(new URL(url))));
const [what, name, count = "16"] = process.argv.slice(2);
const model = await openModel(new URL(`../webapp/${name}/${name}.json`, import.meta.url));
const b64 = (f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("base64");
const input = readFileSync(0);   // float32 images, normalised, one after another (forward), or none
let alone = null;                // the split programs the timed placement runs on the calling thread

async function forward(options) {
  const run = await model.load("wasm", options), out = [];
  if (options.placement !== "workers") alone = run.wasm.alone;
  for (let i = 0; i < Number(count); i++) {
    const x = new Float32Array(input.buffer, input.byteOffset + i * 784 * 4, 784).slice();
    const { logits, taps } = await run(x, { taps: true });
    out.push(b64(logits), ...Object.values(taps).map(b64));
  }
  run.close();
  return out;
}

/** `steps` steps of training from scratch (seed 1, fixed batches): the loss at each and the weights after them. */
async function fit(options, steps = 20) {
  const run = await model.load("wasm", { weights: null, ...options }), { batch } = model.fit, losses = [];
  await run.init(1);
  for (let step = 0; step < steps; step++) {
    const images = Float32Array.from({ length: batch * 784 }, (_, i) => Math.sin(i * 0.37 + step)), labels = Int32Array.from({ length: batch }, (_, i) => (i + step) % 10);
    losses.push((await run.fit(images, labels, model.fit.lr)).loss);
  }
  const weights = await run.readWeights(model.weights.map((w) => w.name));
  run.close();
  return { losses, weights: Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, b64(v)])) };
}

/** A thread stopped in use: the next runs still answer, on one thread, and the page hears why. */
async function stopped() {
  let lost = null;
  const run = await model.load("wasm", { threads: 2, fma: false, placement: "workers", onThreadsLost: (why) => { lost = why; } });
  const x = new Float32Array(784).fill(0.5), before = await run(x), threadsBefore = run.wasm.threads;
  run.wasm.stopThread(1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const after = [];
  for (let i = 0; i < 3; i++) after.push(b64(await run(x)));
  run.close();
  return { threadsBefore, threadsAfter: run.wasm.threads, lost, same: after.every((a) => a === b64(before)) };
}

const runs = {
  async forward() {
    const out = {};
    for (const [threads, fma] of [[1, false], [2, false], [4, false], [1, true], [2, true]]) out[`${threads}${fma ? "-fma" : ""}`] = await forward({ threads, fma, placement: "workers" });
    out.timed = await forward({ threads: 2, fma: false });   // each split program where it was timed faster: the same bits
    return { ...out, alone };
  },
  fit: async () => ({ one: await fit({ threads: 1, fma: false }), two: await fit({ threads: 2, fma: false }), four: await fit({ threads: 4, fma: false }),
                      twoFma: await fit({ threads: 2, fma: true }, 3) }),
  stopped,
};
// exit only once the pipe has taken all of it (an early exit cuts the output at 64 KiB)
process.stdout.write(JSON.stringify(await runs[what]()), () => process.exit(0));
