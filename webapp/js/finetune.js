// Teach the model your handwriting, loaded on demand: fine-tunes a model in the page with the training step that
// tinygrad generated (its "train" program: forward, cross-entropy, backward and Adam, as WGSL and as WebAssembly). Every
// knob comes with the model (its plan's "train", set by the exporter: batch, learning rate, steps, the visitor's share of
// each batch). Every batch mixes the visitor's examples with MNIST training digits shipped with the page (replay, so that
// the model does not forget MNIST). Before and after, it measures accuracy on 1 000 held-out MNIST test digits and on
// the visitor's examples.

import { fromMnist } from "./preprocess.js";

const SIZE = 784;

/** The page's MNIST digits for fine-tuning (samples/finetune.bin, written by mnist_data.py), from `bytes` it checked. */
export function loadSamples(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nReplay = bytes.length >= 8 ? view.getUint32(0, true) : 0, nHeldOut = bytes.length >= 8 ? view.getUint32(4, true) : 0;
  if (!nReplay || bytes.length !== 8 + (nReplay + nHeldOut) * (SIZE + 1)) throw new Error("finetune.bin is truncated or damaged");
  let at = 8;
  const take = (n) => { const part = bytes.subarray(at, at + n); at += n; return part; };
  const set = (n) => {
    const labels = take(n), images = take(n * SIZE);
    return { n, label: (i) => labels[i], image: (i) => images.subarray(i * SIZE, (i + 1) * SIZE) };
  };
  return { replay: set(nReplay), heldOut: set(nHeldOut) };
}

/** Accuracy (percent) of `run` on `count` images given by image(i) (u8 pixels) and label(i); null for none. */
export async function accuracy(run, meta, count, image, label) {
  if (!count) return null;
  let right = 0;
  for (let i = 0; i < count; i++) {
    const logits = await run(fromMnist(image(i), meta).input);
    let best = 0;
    for (let k = 1; k < logits.length; k++) if (logits[k] > logits[best]) best = k;
    if (best === label(i)) right++;
  }
  return (100 * right) / count;
}

/** Fine-tune `model` on the backend it runs on. `onStep(step, loss)` hears every step, `onPhase(text)` each phase, and
 *  `cancelled()` is asked before each step. Returns { summary, weights } (the trained tensors), or null if cancelled:
 *  the weights are then put back as they were. */
export async function fineTune(model, examples, samples, { onStep, onPhase, cancelled }) {
  const run = model.run, meta = model.meta, train = model.source.train;
  if (!train) throw new Error(`${model.name} was exported without a training step`);
  if (!examples.length) throw new Error("no examples yet: draw a digit and say which it is");
  const before = await run.readWeights();
  const scores = async () => ({
    mnist: await accuracy(run, meta, samples.heldOut.n, samples.heldOut.image, samples.heldOut.label),
    yours: await accuracy(run, meta, examples.length, (i) => examples[i].image, (i) => examples[i].label),
  });
  onPhase("measuring before");
  const start = await scores();
  onPhase("training");
  const batch = train.batch, yours = Math.max(1, Math.round(batch * train.yours));
  const images = new Float32Array(batch * SIZE), labels = new Int32Array(batch), losses = [];
  let seed = 1;
  const random = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };   // repeatable batches
  await run.resetOptimizer();
  for (let step = 0; step < train.steps; step++) {
    if (cancelled()) { await run.writeWeights(before); return null; }
    for (let j = 0; j < batch; j++) {
      const mine = j < yours, k = random(mine ? examples.length : samples.replay.n);
      images.set(fromMnist(mine ? examples[k].image : samples.replay.image(k), meta).input, j * SIZE);
      labels[j] = mine ? examples[k].label : samples.replay.label(k);
    }
    const loss = await run.train(images, labels, train.lr);
    if (!Number.isFinite(loss)) { await run.writeWeights(before); throw new Error(`training diverged at step ${step + 1} (loss ${loss})`); }
    losses.push(loss);
    onStep(step + 1, loss);
    await new Promise((resolve) => setTimeout(resolve, 0));   // the page draws and predicts between steps
  }
  if (cancelled()) { await run.writeWeights(before); return null; }
  onPhase("measuring after");
  const end = await scores();
  return { summary: { examples: examples.length, steps: train.steps, backend: model.backend, before: start, after: end, losses }, weights: await run.readWeights() };
}

/** The loss curve, on a small canvas. */
export function drawLoss(canvas, losses, total) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (!losses.length) return;
  const top = Math.max(...losses, 1e-3);
  ctx.strokeStyle = "#6366f1";
  ctx.lineWidth = 2;
  ctx.beginPath();
  losses.forEach((v, i) => {
    const x = 2 + (i / Math.max(total - 1, 1)) * (w - 4), y = h - 2 - (v / top) * (h - 4);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}
