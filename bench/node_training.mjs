// For the Node benchmarks that train (bench_gpu_train.mjs, bench_threads.mjs): MNIST as the page gets it, and one
// training from scratch by the page's own loop (webapp/js/fit.js: batches, the scripts' schedule, held-out accuracy)
// to its accuracy on all 10 000 test digits.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fit, predict, Digits } from "../webapp/js/fit.js";

export const WEBAPP = new URL("../webapp/", import.meta.url);
export const read = (url) => { const b = readFileSync(url); return new Uint8Array(b.buffer, b.byteOffset, b.length); };

/** MNIST from the page's own files: gzip files of labels then 28x28 images, listed in samples/mnist/index.json. */
export function loadMnist() {
  const data = { train: new Digits(), test: new Digits() };
  const index = JSON.parse(new TextDecoder().decode(read(new URL("samples/mnist/index.json", WEBAPP))));
  for (const entry of index.files) {
    const raw = gunzipSync(read(new URL(`samples/mnist/${entry.file}`, WEBAPP)));
    data[entry.split].add(raw.subarray(0, entry.count), raw.subarray(entry.count));
  }
  return data;
}

/** Train `run` (a trainer loaded with { weights: null }) from scratch as the page does; `settings` as fit.js takes them
 *  (samples, epochs, lr, seed, ...). Returns what the benchmarks report: steps, seconds, accuracy, time to accuracy. */
export async function trainToAccuracy(run, meta, data, settings) {
  const keepAlive = setInterval(() => {}, 1 << 30);   // fit.js yields through a MessageChannel, which alone does not keep Node running
  const contract = { mean: meta.mean, std: meta.std }, heldOut = [];
  let start = performance.now();
  const control = { report: (e) => {
    if (e.kind === "started") start = performance.now();
    if (e.kind === "held-out") heldOut.push({ step: e.step, held_out_accuracy: e.accuracy, seconds: (performance.now() - start) / 1000 });
  }, waitIfPaused: async () => {}, stopped: () => false };
  const full = { schedule: meta.fit.schedule, heldOut: 1000, evalEvery: 250, readEvery: 1, ...settings };
  const { steps } = await fit(run, contract, meta.fit, data, full, control);
  const seconds = (performance.now() - start) / 1000;
  const { predictions } = await predict(run, contract, data.test, 0, data.test.count);
  clearInterval(keepAlive);
  let right = 0;
  predictions.forEach((p, i) => { right += p === data.test.label(i); });
  return { epochs: full.epochs, lr: full.lr, seed: full.seed, samples: full.samples, batch: meta.fit.batch, steps, seconds,
           accuracy: (100 * right) / data.test.count, samples_per_second: (steps * meta.fit.batch) / seconds, time_to_accuracy: heldOut };
}
