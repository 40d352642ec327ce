// Workers running a threaded module's jobs on one shared memory: each instantiates the module on it and waits in its
// serve() (thread.js); this thread (the leader: the page, or the trainer's Worker) posts a job in the module's control
// block, wakes them and waits, without blocking a page, until they have all counted themselves done. The control block's
// layout is the plan's (plan.threads.control: the exporter renders the module's C from the same statement). The kernels
// are the same whatever the thread count (tinygrad split each into fixed parts, taken in turn), so 1, 2 or 16 threads
// give the same bits.

const THREAD_START_MS = 10_000, NAME = "model-runtime-thread";
const node = globalThis.process?.versions?.node ? await import("node:worker_threads") : null;
const SCRIPT = new URL("./thread.js", import.meta.url);

const spawn = () => (node ? new node.Worker(SCRIPT) : new Worker(SCRIPT, { type: "module", name: NAME }));

function on(worker, kind, handler) {
  if (node) worker.on(kind === "message" ? "message" : "error", handler);
  else worker.addEventListener(kind, (e) => { if (kind === "error") e.preventDefault?.(); handler(kind === "message" ? e.data : e); });
}

/** Resolves once Worker `tid` says it serves, else rejects within THREAD_START_MS. */
function started(worker, tid) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`thread ${tid} did not start in ${THREAD_START_MS / 1000} s`)), THREAD_START_MS);
    on(worker, "message", (m) => { if (m?.ready === tid) { clearTimeout(timer); resolve(); } });
    on(worker, "error", (e) => { clearTimeout(timer); reject(new Error(`thread ${tid} could not start (${e?.message ?? e})`)); });
  });
}

/** `n` Workers serving the instantiated threaded `module` (wasm.js), once every one has started (else they are ended
 *  and it throws). Returns { threads, job(program index), alone(program index), failure, close(), stop(tid) }. */
export async function startThreads(module, n, { control: words }) {
  const control = new Int32Array(module.memory.buffer, module.exports.control(), words.parts + module.layout.counters);
  const workers = Array.from({ length: n }, spawn);
  const pool = { threads: n, failure: null };
  try {
    await Promise.all(workers.map((w, tid) => {
      const ready = started(w, tid);
      w.postMessage({ module: module.compiled, memory: module.memory, tid, jobWord: words.job });
      return ready;
    }));
  } catch (e) { for (const w of workers) w.terminate(); throw e; }
  workers.forEach((w, tid) => {
    const died = (e) => { pool.failure ??= new Error(`thread ${tid} stopped (${e?.message ?? e ?? "it exited"})`); };
    on(w, "error", died);
    if (node) w.on("exit", died);
  });
  pool.close = () => { for (const w of workers) w.terminate(); };
  pool.stop = (tid) => workers[tid]?.terminate();
  /** One program on the Workers: the job posted in the control block, then their done count awaited. */
  const firstParts = () => control.fill(0, words.parts);   // a program's split kernels start again at their part 0
  pool.job = async (program) => {
    if (pool.failure) throw pool.failure;
    firstParts();
    Atomics.store(control, words.done, 0);
    Atomics.store(control, words.program, program);
    Atomics.store(control, words.threads, n);
    Atomics.add(control, words.job, 1);
    Atomics.notify(control, words.job);
    await jobDone(control, words.done, n, pool);
  };
  /** One program on this thread alone, its split kernels' parts all taken here; the Workers sleep on. */
  pool.alone = (program) => {
    firstParts();
    module.exports.run(program, 0, 1);
  };
  return pool;
}

/** Until the threads of a job have counted themselves done (control[done] === n), waiting without blocking a page. */
async function jobDone(control, done, n, pool) {
  for (let seen; (seen = Atomics.load(control, done)) < n;) {
    if (pool.failure) throw pool.failure;
    if (Atomics.waitAsync) { const w = Atomics.waitAsync(control, done, seen, 1000); if (w.async) await w.value; }
    else if (!globalThis.document) Atomics.wait(control, done, seen, 1000);      // a Worker may block
    else await new Promise((resolve) => setTimeout(resolve, 0));                // a page of a browser without waitAsync
  }
}
