// What this engine's WebAssembly can do: SIMD (every module needs it), relaxed SIMD's fused multiply-add (the .fma
// builds), and memory shared between Workers (the threaded builds).

// the smallest module that uses a SIMD instruction (v128.const, i32x4.extract_lane): a browser that compiles it has SIMD,
// so a module of ours it refuses is corrupt, not too new for it
const SIMD_PROBE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 10, 25, 1, 23, 0, 253, 12,
                                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 253, 27, 0, 11);
export const hasSimd = () => { try { return WebAssembly.validate(SIMD_PROBE); } catch { return false; } };

// the smallest module that uses relaxed SIMD's fused multiply-add (three v128.const, f32x4.relaxed_madd): a browser that
// validates it runs the models' .fma.wasm builds (Chromium today; Firefox and Safari do not have relaxed SIMD)
const RELAXED_PROBE = (() => {
  const zero = [0xfd, 0x0c, ...new Array(16).fill(0)], body = [0x00, ...zero, ...zero, ...zero, 0xfd, 0x85, 0x02, 0x0b];
  return Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1, 0x7b, 3, 2, 1, 0, 10, body.length + 2, 1, body.length, ...body);
})();
export const hasRelaxedSimd = () => { try { return WebAssembly.validate(RELAXED_PROBE); } catch { return false; } };

/** Whether Workers can share a WebAssembly memory here: a browser page only when cross-origin isolated (COOP and COEP,
 *  which the site's service worker adds where the host cannot), Node always. */
export const canShareMemory = () => typeof SharedArrayBuffer === "function" && typeof Atomics === "object" &&
  (globalThis.crossOriginIsolated ?? Boolean(globalThis.process?.versions?.node));

/** What WebAssembly can do here: { simd, fma (relaxed SIMD), threads (most threads worth asking for: the cores; 1 where
 *  memory cannot be shared; a model's threaded module says how many it serves at most) }. */
export function capabilities() {
  const cores = globalThis.navigator?.hardwareConcurrency ?? globalThis.process?.availableParallelism?.() ?? 1;
  return { simd: hasSimd(), fma: hasRelaxedSimd(), threads: canShareMemory() ? Math.max(1, cores) : 1 };
}
