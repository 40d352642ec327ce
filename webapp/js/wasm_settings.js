// How the page runs WebAssembly, in one place: the page's models (model.js), the trainer (panels.js) and the first
// visit's head start (early.js) choose the same build from it.

import { capabilities } from "./runtime/features.js";

/** How the page runs WebAssembly: { threads (Workers: the cores where the page is cross-origin isolated, else 1), fma
 *  (relaxed SIMD), why (why one thread, if so) }. `?threads=N` in the page's address asks for N (benchmarks, tests). */
export function wasmSettings() {
  const can = capabilities(), asked = Number(new URLSearchParams(globalThis.location?.search).get("threads"));
  const threads = Number.isInteger(asked) && asked >= 1 ? Math.min(asked, can.threads) : can.threads;
  const why = can.threads > 1 || asked === 1 ? null
    : !globalThis.crossOriginIsolated ? "the page is not cross-origin isolated"
    : typeof SharedArrayBuffer !== "function" ? "this browser cannot share memory between Workers" : "this device has one core";
  return { threads, fma: can.fma, why };
}
