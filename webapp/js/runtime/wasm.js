// The WebAssembly backend, for any thread count: tinygrad's C kernels in a module whose arena holds every buffer at a
// fixed offset (plan.wasm[file].offsets), entered through run(program, tid, n). A plain module runs a program on this
// thread; a threaded one (on a shared memory) runs the programs with split kernels on Workers (threads.js) and the rest
// here. The weights are copied in once; a run writes its inputs, runs, and copies its outputs out.
//
// The module in use can change under a run, carrying the weights and optimizer state across as they are: to the module
// of its build that holds a program first asked for (the first module holds only what a first prediction needs), and,
// if a thread stops or cannot start, to a plain module with every program, saying why through onThreadsLost(why).

import { ModelFileError } from "./fetch.js";
import { hasSimd } from "./features.js";
import { checkArena, initialState, moduleWith, outputsOf, writable } from "./plan.js";

/** The module `entry` (an entry of meta.wasm_modules) from its checked `bytes`, instantiated: has(i), get(i) (a view of
 *  buffer i in its arena), set(i, bytes), exports, and its compiled module and memory (for threads). */
async function instantiate(model, entry, bytes) {
  const layout = model.plan.wasm[entry.file], what = `WebAssembly module ${model.meta.files[entry.file]?.name}`;
  let compiled, instance, memory = null;
  try {
    compiled = await WebAssembly.compile(bytes);
    if (layout.memory) memory = new WebAssembly.Memory({ initial: layout.memory / 65536, maximum: layout.memory / 65536, shared: true });
    instance = await WebAssembly.instantiate(compiled, memory ? { env: { memory } } : {});
  } catch (e) {
    if (!hasSimd()) throw new Error(`${model.name}: this browser cannot run the ${what} (it needs WebAssembly SIMD)`);
    throw new ModelFileError(`${model.name}: the ${what} is not a valid WebAssembly module (${e.message})`);
  }
  memory ??= instance.exports.memory;
  const base = instance.exports.arena(), { buffers } = model.plan, offsets = layout.offsets;
  checkArena(buffers.map((b, i) => ({ ...b, offset: offsets[i] })).filter((b) => b.offset !== null), memory.buffer.byteLength - base);
  return {
    entry, layout, compiled, memory, exports: instance.exports,
    has: (i) => offsets[i] !== null,
    get: (i) => new Uint8Array(memory.buffer, base + offsets[i], buffers[i].bytes),
    set: (i, data) => new Uint8Array(memory.buffer).set(data, base + offsets[i]),
  };
}

const TIMED_RUNS = 5;

/** Whether `here()` takes less than `workers()`: the median of TIMED_RUNS each, after one of each to warm up. */
async function fasterAlone(here, workers) {
  const median = async (run) => {
    const times = [];
    for (let i = 0; i <= TIMED_RUNS; i++) { const t = performance.now(); await run(); if (i) times.push(performance.now() - t); }
    return times.sort((a, b) => a - b)[TIMED_RUNS >> 1];
  };
  return (await median(here)) < (await median(workers));
}

const asBytes = (data) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/** The backend's memory ({ execute, read, write, threads, alone, close, stopThread }) starting on module `entry` with
 *  `bytes`, the weights from `tensor` (or none). `threads`: Workers for a threaded module (at most what it serves);
 *  `placement`: "timed" (each split program that changes no weight runs where it was faster, here or on the Workers) or
 *  "workers" (every split program on the Workers). */
export async function wasmBackend(model, entry, bytes, tensor, { threads = 1, onThreadsLost = () => {}, placement = "timed" } = {}) {
  const { plan, meta } = model;
  let current = await instantiate(model, entry, bytes), pool = null, moving = null;
  plan.buffers.forEach((b, i) => {
    if (!current.has(i)) return;
    if (b.kind === "weight" && tensor) current.set(i, tensor(b.name, b.bytes));
    else if (b.kind === "state") current.set(i, initialState(b));
  });

  /** To another module, the weights and optimizer state carried across (a buffer the old one lacks starts afresh). */
  const moveTo = (next) => {
    moving ??= (async () => {
      const after = await instantiate(model, next, await model.file(next.file));
      plan.buffers.forEach((b, i) => {
        if ((b.kind === "weight" || b.kind === "state") && after.has(i)) after.set(i, current.has(i) ? current.get(i) : initialState(b));
      });
      current = after;
    })().finally(() => { moving = null; });   // a download that failed is tried again next time
    return moving;
  };
  const loseThreads = async (why) => {
    pool?.close();
    pool = null;
    onThreadsLost(why);
    await moveTo(moduleWith(meta, { threads: 1, fma: current.entry.fma }, current.entry.programs));
  };
  if (entry.threads > 1) {   // the Workers' code loads only for a threaded module
    pool = await import("./threads.js").then(({ startThreads }) => startThreads(current, Math.min(threads, entry.threads), plan.threads))
      .catch((e) => loseThreads(e.message).then(() => null));
  }

  const floats = (i) => new Float32Array(current.get(i).slice().buffer);
  const onWorkers = (program) => pool && current.layout.split.includes(program) && !alone.has(program);
  const runHere = (index) => (pool ? pool.alone(index) : current.exports.run(index, 0, 1));
  async function runOnce(program, values) {
    for (const [name, data] of Object.entries(values)) current.set(plan.inputs[program][name], asBytes(data));
    const index = plan.programs.indexOf(program);
    if (onWorkers(program)) await pool.job(index);
    else runHere(index);
    return Object.fromEntries(outputsOf(plan, program).map((i) => [plan.buffers[i].name, floats(i)]));
  }
  // Which split programs run on this thread alone: a prediction of a small model finishes before the Workers would have
  // woken (and, on a machine whose cores already train, they only take turns with the training's threads), so each
  // program that changes no weight is timed both ways now, on whatever its inputs hold, and runs where it was faster.
  // The training steps (they write the weights) run on the Workers: their kernels are what the threads are for.
  const alone = new Set();
  if (pool && placement === "timed") {
    try {
      for (const program of current.layout.split.filter((p) => !plan[p]?.trains)) {
        const index = plan.programs.indexOf(program);
        if (await fasterAlone(() => runHere(index), () => pool.job(index))) alone.add(program);
      }
    } catch (e) { if (!pool?.failure) throw e; await loseThreads(e.message); }
  }
  return {
    get threads() { return pool?.threads ?? 1; },
    get alone() { return pool ? [...alone] : []; },   // the split programs that run on this thread alone (timed faster)
    async execute(program, values) {
      if (!plan.programs.includes(program)) throw new Error(`${model.name} has no program "${program}"`);
      if (!current.entry.programs.includes(program)) await moveTo(moduleWith(meta, current.entry, [program]));
      // a thread that stopped: on one thread from here, the run made again there
      try { return await runOnce(program, values); }
      catch (e) { if (!pool?.failure) throw e; await loseThreads(e.message); return runOnce(program, values); }
    },
    async read(names) {
      if (names.some((name) => !current.has(writable(plan, name)))) await moveTo(moduleWith(meta, current.entry, plan.programs));
      return Object.fromEntries(names.map((name) => [name, floats(writable(plan, name))]));
    },
    async write(values) {
      for (const [name, data] of Object.entries(values)) {
        const i = writable(plan, name);
        if (current.has(i)) current.set(i, asBytes(data));
      }
    },
    close: () => pool?.close(),
    stopThread: (tid) => pool?.stop(tid),   // what a thread that crashes does (tests)
  };
}
