// The trainer's WebAssembly training, in a Worker so that the page keeps drawing and predicting at full speed: it opens
// the trainer model with the one runtime, from the metadata and the plan the page checked, receives MNIST's files as they
// arrive (from dataset.js, on the page's thread), runs fit.js and posts what happens. Messages in: start, data, pause,
// resume, stop; out: step, held-out, done, error.

import { fit, predict, Digits } from "./fit.js";
import { openModel } from "./runtime/index.js";

const data = { train: new Digits(), test: new Digits() };
let paused = null, resume = () => {}, stopped = false, testArrived = () => {};

const control = {
  report: (event) => postMessage(event),
  waitIfPaused: () => paused ?? Promise.resolve(),
  stopped: () => stopped,
};

onmessage = ({ data: message }) => {
  if (message.kind === "data") {
    data[message.split].add(message.labels, message.images);
    if (message.split === "test") testArrived();
  } else if (message.kind === "pause") paused ??= new Promise((resolve) => { resume = resolve; });
  else if (message.kind === "resume" || message.kind === "stop") {
    stopped ||= message.kind === "stop";
    paused = null;
    resume();
  } else if (message.kind === "start") start(message).catch((e) => postMessage({ kind: "error", message: e?.message ?? String(e) }));
};

// the WebAssembly module it downloads is checked against the metadata, as on the page
async function start({ meta, base, plan, contract, settings, testCount, wasm }) {
  const model = await openModel(meta, { base, plan });
  // no weights (run.init draws them); the page's threads and relaxed SIMD, or one thread, with a word why
  const run = await model.load("wasm", { weights: null, ...wasm, onThreadsLost: (why) => postMessage({ kind: "threads-lost", why }) });
  postMessage({ kind: "wasm", threads: run.wasm.threads, fma: run.wasm.fma });
  const result = await fit(run, contract, model.fit, data, settings, control);
  // the whole test set, once it has all arrived
  while (data.test.count < testCount) await new Promise((resolve) => { testArrived = resolve; });
  const { predictions, confidences } = await predict(run, contract, data.test, 0, data.test.count);
  const weights = await run.readWeights(model.weights.map((w) => w.name));
  postMessage({ kind: "done", ...result, predictions, confidences, weights },
              [predictions.buffer, confidences.buffer, ...Object.values(weights).map((w) => w.buffer)]);
}
