// One thread of a threaded module (threads.js starts it as a Worker, in a page or in Node): the module and the shared
// memory arrive once; it takes its own C stack, says it is ready, and serves jobs until it is terminated.

const node = globalThis.process?.versions?.node ? await import("node:worker_threads") : null;
const port = node ? node.parentPort : globalThis;

async function serve({ module, memory, tid, jobWord }) {
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  instance.exports.__stack_pointer.value = instance.exports.stack_top(tid);
  // the job number before it says it is ready: serve() waits for the next one
  const job = Atomics.load(new Int32Array(memory.buffer, instance.exports.control(), jobWord + 1), jobWord);
  port.postMessage({ ready: tid });
  instance.exports.serve(tid, job);   // never returns
}

if (node) port.once("message", (m) => serve(m).catch((e) => { throw e; }));
else port.onmessage = ({ data }) => { port.onmessage = null; serve(data).catch((e) => { throw e; }); };
