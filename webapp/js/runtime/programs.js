// What a loaded model offers, over a backend's memory ({ execute(program, values, read), read(names), write(values) }):
// run(input) and run(input, { taps: true }), the training steps (train: fine-tuning; fit: from scratch; evaluate), the
// weights read and written by name, and tinygrad's initialisation, drawn here from a seed. Runs share the backend's
// memory, so each waits for the one before it.

import { initialState } from "./plan.js";

/** Runs share their input and output memory, so each waits for the one before it; the input is checked and copied.
 *  run.queue(task) puts any other work on the backend's memory (a training step, reading the weights) in the same line. */
export function serialised(infer, inputLength, name) {
  let previous = Promise.resolve();
  const queue = (task) => {
    const result = previous.then(task);
    previous = result.catch(() => {});
    return result;
  };
  function run(input, options = {}) {
    if (!(input instanceof Float32Array) || input.length !== inputLength) {
      return Promise.reject(new TypeError(`${name}: run() takes a Float32Array(${inputLength})`));
    }
    const snapshot = input.slice();   // the caller may reuse its array while this run waits its turn
    return queue(() => infer(snapshot, options));
  }
  run.queue = queue;
  return run;
}

/** A small, fast, seedable generator of 32-bit values (mulberry32): the page's fresh starts must repeat for a seed. */
export function randomBits(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Fresh weights, as tinygrad initialises them: `init` gives each tensor's {uniform: [low, high]} or {constant: value}
 *  (exporter/programs.py init_spec), `sizes` its number of values. Uniform values are 24-bit fractions of [low, high). */
export function initialWeights(init, sizes, seed) {
  const next = randomBits(seed), weights = {};
  for (const [name, spec] of Object.entries(init)) {
    const values = new Float32Array(sizes[name]);
    if (spec.uniform) {
      const [low, high] = spec.uniform;
      for (let i = 0; i < values.length; i++) values[i] = low + (high - low) * ((next() >>> 8) / 16777216);
    } else values.fill(spec.constant);
    weights[name] = values;
  }
  return weights;
}

/** A training step's inputs, checked against its spec (plan.train, plan.fit or plan.evaluate: its batch). */
function batchOf(plan, name, program, images, labels, lr) {
  const batch = plan[program]?.batch, inputLength = plan.inputShape.reduce((a, b) => a * b, 1);
  if (!batch) throw new Error(`${name} was exported without a "${program}" program`);
  const ok = images instanceof Float32Array && images.length === batch * inputLength &&
    (program === "evaluate" || (labels instanceof Int32Array && labels.length === batch && lr >= 0));
  if (!ok) throw new TypeError(`${name}: ${program}() takes Float32Array(${batch * inputLength}) images` + (program === "evaluate" ? "" : `, Int32Array(${batch}) labels and a learning rate`));
  return program === "evaluate" ? { images: images.slice() } : { images: images.slice(), labels: labels.slice(), lr: Float32Array.of(lr) };
}

/** run() and the training programs of `model` over a backend's `memory`. */
export function programsOf(model, memory) {
  const { plan, name } = model;
  const run = serialised(async (input, { taps = false } = {}) => {
    if (!taps) return (await memory.execute("forward", { input })).output;
    const out = await memory.execute("taps", { input });
    return { logits: out.output, taps: Object.fromEntries(plan.taps.map((t) => [t.name, out[t.buffer]])) };
  }, plan.inputShape.reduce((a, b) => a * b, 1), name);
  const step = (program, images, labels, lr, read = true) => {
    let values;
    try { values = batchOf(plan, name, program, images, labels, lr); } catch (e) { return Promise.reject(e); }
    return run.queue(() => memory.execute(program, values, read));
  };
  run.meta = model.meta;   // the input contract (mean, std) among it
  run.train = (images, labels, lr) => step("train", images, labels, lr).then((out) => out.loss[0]);
  // read: false (WebGPU) leaves this step's loss on the GPU: the next step that reads waits for both
  run.fit = (images, labels, lr, { read = true } = {}) => step("fit", images, labels, lr, read).then((out) => (out ? { loss: out.loss[0], correct: out.correct[0] } : null));
  run.evaluateSpec = plan.evaluate ?? null;
  run.evaluate = (images) => step("evaluate", images).then((out) => out.logits);
  run.readWeights = (names = plan.train?.trains ?? []) => run.queue(() => memory.read(names));
  run.writeWeights = (weights) => run.queue(() => memory.write(weights));
  run.resetOptimizer = () => run.queue(() => memory.write(Object.fromEntries(
    plan.buffers.filter((b) => b.kind === "state").map((b) => [b.name, initialState(b)]))));
  // a fresh start for "fit": every weight drawn as tinygrad draws it (plan.fit.init) from `seed`, the optimizer's state
  // back to its start; returns the weights
  run.init = async (seed) => {
    if (!plan.fit) throw new Error(`${name} was exported without a "fit" step`);
    const weights = initialWeights(plan.fit.init, model.weightSizes, seed);
    await run.writeWeights(weights);
    await run.resetOptimizer();
    return weights;
  };
  return run;
}
