// WebAssembly on several threads and with relaxed SIMD's FMA, in Node (worker_threads), through the page's runtime:
// for each thread count, the trainers' training step (batch 64 of real digits) and the shipped models' forward, plain
// SIMD and FMA, with the speed-up over one thread; then (--train) the CNN trainer trained from scratch on 60 000 digits by
// the page's own loop, on the most threads, to its accuracy on all 10 000 test digits.
//
//   node --experimental-wasm-relaxed-simd bench/bench_threads.mjs [--quick] [--threads 1,2,4,8,16] [--train] [--json FILE]
//
// Goal (the device machine's 16-core CPU): the CNN trainer to >= 99.0 % in <= 8 s. Writes bench/threads.json (not with
// --quick).
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cpus, arch } from "node:os";
import { parseArgs } from "node:util";
import { WEBAPP, read, loadMnist, trainToAccuracy } from "./node_training.mjs";
import { openModel, capabilities } from "../webapp/js/runtime/index.js";

const { values: args } = parseArgs({ options: { quick: { type: "boolean" }, threads: { type: "string" }, train: { type: "boolean" }, json: { type: "string" } } });
const cores = cpus().length;
const THREADS = (args.threads ?? [1, 2, 4, 8, 16].filter((n) => n <= cores).join(",")).split(",").map(Number);
if (THREADS.some((n) => !Number.isInteger(n) || n < 1 || n > 16)) { console.error("error: --threads takes counts from 1 to 16, e.g. 1,2,4"); process.exit(2); }
const fmaHere = capabilities().fma;
const BUILDS = [false, ...(fmaHere ? [true] : [])];
const open = (name) => openModel(JSON.parse(new TextDecoder().decode(read(new URL(`${name}/${name}.json`, WEBAPP)))),
                                 { base: new URL(`${name}/`, WEBAPP), fetchFile: async (url) => read(url) });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const data = loadMnist();

/** Median ms of `fn` over `n` runs after `warm` runs. */
async function time(fn, n, warm) {
  for (let i = 0; i < warm; i++) await fn(i);
  const ms = [];
  for (let i = 0; i < n; i++) { const t = performance.now(); await fn(i); ms.push(performance.now() - t); }
  return median(ms);
}

async function stepMs(model, threads, fma) {
  const run = await model.load("wasm", { weights: null, threads, fma }), { batch } = model.fit;
  await run.init(1);
  const images = new Float32Array(batch * 784), labels = new Int32Array(batch);
  const ms = await time(async (i) => {
    for (let j = 0; j < batch; j++) {
      const k = (i * batch + j) % 50000;
      const pixels = data.train.image(k);
      for (let p = 0; p < 784; p++) images[j * 784 + p] = (pixels[p] / 255 - model.meta.mean) / model.meta.std;
      labels[j] = data.train.label(k);
    }
    await run.fit(images, labels, model.fit.lr);
  }, args.quick ? 3 : 30, args.quick ? 1 : 5);
  const got = run.wasm.threads;
  run.close();
  return { ms, threads: got };
}

async function forwardMs(model, threads, fma) {
  const run = await model.load("wasm", { threads, fma }), x = new Float32Array(784).fill(0.3);
  const ms = await time(() => run(x), args.quick ? 5 : 200, args.quick ? 2 : 20);
  run.close();
  return { ms, threads: run.wasm.threads };
}

const report = { machine: `${arch()}, ${cpus()[0]?.model ?? "cpu"} (${cores} threads)`, runtime: `Node ${process.version}`, fma_here: fmaHere,
                 quick: Boolean(args.quick), step: {}, forward: {} };
for (const [kind, names, measure] of [["step", ["mnist_mlp_trainer", "mnist_convnet_trainer"], stepMs], ["forward", ["mnist_mlp", "mnist_convnet"], forwardMs]]) {
  console.log(`\n${kind === "step" ? "training step (each trainer's batch)" : "forward (one digit)"}, ms\n\n| model | build | ${THREADS.map((n) => `${n} thread${n > 1 ? "s" : ""}`).join(" | ")} |\n|---|---|${THREADS.map(() => "---|").join("")}`);
  for (const name of names) {
    const model = await open(name);
    report[kind][name] = {};
    for (const fma of BUILDS) {
      const rows = report[kind][name][fma ? "fma" : "simd"] = {};
      for (const n of THREADS) {
        const r = await measure(model, n, fma);
        if (r.threads !== n) { console.error(`error: ${name} asked for ${n} threads and ran on ${r.threads}`); process.exit(1); }
        rows[n] = r.ms;
      }
      const one = rows[THREADS[0]];
      console.log(`| ${name} | ${fma ? "relaxed SIMD (FMA)" : "SIMD"} | ${THREADS.map((n) => `${rows[n].toFixed(2)}${n === THREADS[0] ? "" : ` (${(one / rows[n]).toFixed(2)}x)`}`).join(" | ")} |`);
    }
  }
}

if (args.train) {
  const threads = Math.max(...THREADS), model = await open("mnist_convnet_trainer");
  const run = await model.load("wasm", { weights: null, threads, fma: fmaHere });
  const r = await trainToAccuracy(run, model.meta, data, { samples: args.quick ? 3000 : 60000, epochs: args.quick ? 1 : model.fit.epochs, lr: model.fit.lr, seed: 1 });
  run.close();
  report.trained = { name: "mnist_convnet_trainer", threads, fma: fmaHere, ...r };
  console.log(`\nmnist_convnet_trainer on ${threads} threads${fmaHere ? " with FMA" : ""}: ${r.accuracy.toFixed(2)}% of the 10 000 test digits after ${r.steps} steps ` +
              `in ${r.seconds.toFixed(1)} s (goal: >= 99.0 % in <= 8 s on 16 cores)`);
}
console.log(`\n${report.runtime} on ${report.machine}`);
if (!args.quick) writeFileSync(args.json ?? fileURLToPath(new URL("threads.json", import.meta.url)), JSON.stringify(report, null, 1) + "\n");
process.exit(0);
