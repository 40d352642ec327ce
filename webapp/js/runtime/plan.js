// The plan and the metadata as the runtime reads them: the exporter states every contract there once (exporter/plan.py,
// exporter/contract.py) and nothing here restates it. Buffers are plan.buffers (once, for every backend); programs are
// named in plan.programs, whose order numbers them in every WebAssembly module; which WebAssembly modules exist and what
// each holds is the metadata's wasm_modules, so that the page picks one before the plan is in.

import { ModelFileError } from "./fetch.js";
import { canShareMemory, hasRelaxedSimd } from "./features.js";

export const PLAN_FORMAT = 3;

/** The plan, if this runtime can run it (else a ModelFileError naming the model). */
export function checkedPlan(plan, meta) {
  if (plan?.format !== PLAN_FORMAT || !Array.isArray(plan.buffers) || !Array.isArray(plan.programs) || !plan.webgpu || !plan.wasm || !plan.threads) {
    throw new ModelFileError(`${meta.name}: its plan is not one this runtime can run (format ${plan?.format}, this runtime reads ${PLAN_FORMAT})`);
  }
  return plan;
}

/** A weight or optimizer-state buffer's index, by name: what writeWeights and resetOptimizer may replace. */
export function writable(plan, name) {
  const i = plan.buffers.findIndex((b) => b.name === name && (b.kind === "weight" || b.kind === "state"));
  if (i < 0) throw new TypeError(`no weight or optimizer state named "${name}"`);
  return i;
}

/** The indices of the buffers `program` returns. */
export const outputsOf = (plan, program) => plan.buffers.flatMap((b, i) => (b.kind === "output" && b.program === program ? [i] : []));

/** The start value of an optimizer-state buffer (Adam's running products of beta start at 1), as bytes. */
export function initialState(b) {
  const values = new Float32Array(b.bytes / 4);
  if (b.init !== undefined) values.fill(b.init);
  return new Uint8Array(values.buffer);
}

/** Byte offsets of the buffers in one WebAssembly arena must not overlap and must stay inside it. */
export function checkArena(buffers, arenaBytes, align = 16) {
  const spans = buffers.map((b) => [b.offset, b.offset + b.bytes, b.name]).sort((a, b) => a[0] - b[0]);
  spans.forEach(([begin, end, name], i) => {
    if (begin % align || begin < 0 || end > arenaBytes) throw new ModelFileError(`buffer ${name} lies outside the arena or is misaligned`);
    if (i && begin < spans[i - 1][1]) throw new ModelFileError(`buffers ${spans[i - 1][2]} and ${name} overlap`);
  });
}

const threaded = (m) => m.threads > 1;

/** The one rule for which WebAssembly module to start with, from the metadata alone: the first of its modules of the
 *  build asked for. Threaded where more than one thread is asked for and memory can be shared (`shared`: as it will be
 *  on a visit the service worker isolates); relaxed SIMD's FMA where asked for (default: where the engine validates it)
 *  and the model has it. */
export function wasmModule(meta, { threads = 1, fma = hasRelaxedSimd(), shared = canShareMemory() } = {}) {
  const modules = meta.wasm_modules ?? [], many = threads > 1 && shared;
  const found = [[many, fma], [many, false], [false, fma], [false, false]]
    .map(([t, f]) => modules.find((m) => threaded(m) === t && Boolean(m.fma) === f)).find(Boolean);
  if (!found) throw new ModelFileError(`${meta.name}: its metadata lists no WebAssembly module`);
  return found;
}

/** The first module of `build`'s kind (threaded or not, FMA or not) that holds every one of `programs`. */
export function moduleWith(meta, build, programs) {
  const found = meta.wasm_modules.find((m) => threaded(m) === threaded(build) && Boolean(m.fma) === Boolean(build.fma) &&
                                              programs.every((p) => m.programs.includes(p)));
  if (!found) throw new Error(`${meta.name} has no WebAssembly module with ${programs.join(", ")}`);
  return found;
}
