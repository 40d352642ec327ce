// Training from scratch, loaded with the trainer: batches drawn from the MNIST digits that have arrived so far, the
// scripts' learning-rate schedule, the exporter's "fit" step (tinygrad's forward in training mode, cross-entropy,
// backward and optimizer, as WGSL or WebAssembly), and what the panel shows live: loss and accuracy per batch, the
// accuracy on held-out test digits every few hundred steps, and the digits it currently gets wrong. No DOM: the same
// loop runs in a Worker (WebAssembly, fit_worker.js) and on the page's thread between predictions (WebGPU).

import { randomBits } from "./runtime/programs.js";

export const SIZE = 784;

/** The scripts' schedule (training.py lr_factor): the multiplier of the peak learning rate at `step` of `total`. */
export function lrFactor(step, total, { kind, warmup }) {
  total = Math.max(total, 1);
  const warm = Math.max(Math.floor(warmup * total), 1);
  if (kind === "constant") return 1;
  const ramp = Math.min((step + 1) / warm, 1), progress = Math.min(Math.max((step - warm) / Math.max(total - warm, 1), 0), 1);
  const cosine = 0.5 * (1 + Math.cos(progress * Math.PI));
  if (kind === "cosine") return ramp * cosine;
  return step < warm ? 0.04 + 0.96 * ramp : cosine + 1e-4;   // one-cycle: warm up from 4 % of the peak, then anneal
}

/** A set of digits that grows as its files arrive: labels (u8) and 28x28 images (u8). */
export class Digits {
  constructor() { this.labels = []; this.images = []; this.count = 0; }
  add(labels, images) { this.labels.push(labels); this.images.push(images); this.count += labels.length; }
  #at(i) {
    for (let k = 0; k < this.labels.length; k++) {
      if (i < this.labels[k].length) return [k, i];
      i -= this.labels[k].length;
    }
    throw new RangeError(`no digit ${i}`);
  }
  label(i) { const [k, j] = this.#at(i); return this.labels[k][j]; }
  image(i) { const [k, j] = this.#at(i); return this.images[k].subarray(j * SIZE, (j + 1) * SIZE); }
}

// One macrotask between steps: a worker hears "pause" and "stop", the page draws and predicts. (A message on a channel,
// not setTimeout, which browsers hold back by 4 ms once timeouts nest.)
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()?.();
channel.port1.unref?.();   // (Node: the channel alone does not keep a process alive)
export const nextTask = () => new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(0); });

/** The normalised value of each of the 256 pixel values, with the model's mean and std: a batch is then one lookup
 *  per pixel (a division per pixel cost a tenth of the MLP's training step). */
export function normaliser({ mean, std }) {
  const table = Float32Array.from({ length: 256 }, (_, p) => (p / 255 - mean) / std);
  return (pixels, out, offset) => { for (let j = 0; j < SIZE; j++) out[offset + j] = table[pixels[j]]; };
}

/** What `run` (its "evaluate" program: `batch` digits at once) reads for digits first..first+count of `digits`:
 *  { predictions: Uint8Array, confidences: Float32Array (the softmax of the prediction) }. */
export async function predict(run, contract, digits, first, count) {
  const { batch } = run.evaluateSpec, images = new Float32Array(batch * SIZE), normalise = normaliser(contract);
  const predictions = new Uint8Array(count), confidences = new Float32Array(count);
  for (let at = 0; at < count; at += batch) {
    const n = Math.min(batch, count - at);
    images.fill(0);
    for (let k = 0; k < n; k++) normalise(digits.image(first + at + k), images, k * SIZE);
    const logits = await run.evaluate(images);
    for (let k = 0; k < n; k++) {
      const row = logits.subarray(k * 10, k * 10 + 10);
      let best = 0, sum = 0;
      for (let d = 1; d < 10; d++) if (row[d] > row[best]) best = d;
      for (let d = 0; d < 10; d++) sum += Math.exp(row[d] - row[best]);
      predictions[at + k] = best;
      confidences[at + k] = 1 / sum;
    }
  }
  return { predictions, confidences };
}

/**
 * Train `run` (a model with a "fit" program) from a fresh start. `data`: { train: Digits, test: Digits } (either may
 * still be growing); `settings`: { samples, epochs, lr, seed, schedule: { kind, warmup }, heldOut, evalEvery,
 * readEvery }; `control`: { report(event), waitIfPaused() -> promise, stopped() -> bool }. Events: "steps" (the loss
 * and accuracy of every readEvery-th batch since the last such event, [step, value] pairs; sent about five times a
 * second, not once a step, which cost the worker as much as a small step), "held-out" (every evalEvery steps: accuracy
 * on the first `heldOut` test digits and up to 24 it gets wrong). Returns { steps, stopped }.
 */
export async function fit(run, contract, spec, data, settings, control) {
  const { batch } = spec, total = Math.ceil((settings.epochs * settings.samples) / batch);
  await run.init(settings.seed);
  control.report({ kind: "started", total });   // the clock starts here: loading the module is not training
  const images = new Float32Array(batch * SIZE), labels = new Int32Array(batch), pick = randomBits(settings.seed ^ 0x5bd1e995);
  const normalise = normaliser(contract);
  let step = 0, pending = { loss: [], accuracy: [] }, sent = performance.now(), lr = 0, available = 0;
  const flush = (done) => {
    if (pending.loss.length) control.report({ kind: "steps", step: done, total, ...pending, lr, available });
    pending = { loss: [], accuracy: [] };
    sent = performance.now();
  };
  const drawBatch = () => {
    available = Math.min(settings.samples, data.train.count);
    for (let k = 0; k < batch; k++) {
      const i = pick() % available;
      normalise(data.train.image(i), images, k * SIZE);
      labels[k] = data.train.label(i);
    }
  };
  // Each step's batch is drawn while the step before it runs (run.fit copies its batch at once, and a threaded backend
  // computes on its Workers meanwhile): the same picks, in the same order, as drawing each just before its step.
  if (total) drawBatch();
  for (; step < total; step++) {
    lr = settings.lr * lrFactor(step, total, settings.schedule);
    const read = step % settings.readEvery === 0 || step === total - 1, running = run.fit(images, labels, lr, { read });
    running.catch(() => {});   // (its failure is thrown below, once awaited)
    await nextTask();
    if (step + 1 < total) drawBatch();
    const out = await running;
    if (performance.now() - sent > 200) flush(step);
    if (read) {
      if (!Number.isFinite(out.loss)) throw new Error(`training diverged at step ${step + 1} (loss ${out.loss}): lower the learning rate`);
      pending.loss.push([step + 1, out.loss]);
      pending.accuracy.push([step + 1, (100 * out.correct) / batch]);
    }
    if ((step + 1) % settings.evalEvery === 0 && data.test.count >= settings.heldOut) {
      flush(step + 1);
      await heldOut(step + 1);
    }
    await control.waitIfPaused();
    if (control.stopped()) { step++; break; }
  }
  flush(step);
  async function heldOut(at) {
    const { predictions } = await predict(run, contract, data.test, 0, settings.heldOut), wrong = [];
    let right = 0;
    predictions.forEach((p, i) => { if (p === data.test.label(i)) right++; else if (wrong.length < 24) wrong.push({ index: i, label: data.test.label(i), pred: p }); });
    control.report({ kind: "held-out", step: at, total, accuracy: (100 * right) / settings.heldOut, wrong });
  }
  return { steps: step, stopped: step < total };
}
