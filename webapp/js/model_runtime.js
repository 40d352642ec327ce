// The one runtime of every exported model. A model is data, written by the exporter (no code is generated for it):
// <name>.json, its metadata (the input contract, its accuracy, each file's name, SHA-256 and size); <name>.plan.json
// (buffers, programs, dispatches, taps, training specs); <name>.safetensors (the weights, read by both backends); the
// WebAssembly modules and the WGSL kernels (JSON). This file loads and runs any of them, on WebGPU or on WebAssembly
// SIMD; the page, its Worker, the tests and the benchmarks (Node) import it. It knows no model.
//
//   import { loadModel } from "./model_runtime.js";
//   const run = await loadModel("mnist_convnet/mnist_convnet.json", "wasm");     // or a GPUDevice instead of "wasm"
//   const logits = await run(input);   // Float32Array(784): 28x28, white on black, (pixel / 255 - mean) / std
//
// Verify, then use: every file is checked against the SHA-256 its metadata gives before it is parsed, compiled or handed
// out; the metadata itself is the root of trust (fetched fresh, never from a cache).
//
// openModel(metadata or its URL, { base, plan, fetchFile }) -> model: { name, meta, plan, taps, train, fit, evaluate,
//   weights: [{ name, shape }], url(key), file(key) (a file's verified bytes, fetched once), load(backend, options),
//   tensors(options) }
// model.load(backend, { weights }) -> run: run(Float32Array(784)) -> Promise<Float32Array(10)>, the logits. `weights`:
//   by default the model's own file; bytes or a URL (checked against the metadata's SHA-256 unless `verify: false`,
//   for bytes made in this page); null for none (a training from scratch: run.init draws them).
// run(input, { taps: true }) -> Promise<{ logits, taps: { layer name: Float32Array } }>: every layer the model names
//   (plan.taps, with their shapes), from the "taps" program.
// run.train(images, labels, lr) -> Promise<loss>: one fine-tuning step (plan.train: a batch of plan.train.batch normalised
//   images, Float32Array, and Int32Array labels); it updates the weights run() reads, in place. run.fit(images, labels,
//   lr, { read }) -> { loss, correct }: one step of training from scratch (plan.fit). run.evaluate(images) -> logits of
//   plan.evaluate.batch images. run.readWeights(names) / run.writeWeights({ name: Float32Array }) read and replace
//   weights; run.resetOptimizer() puts the optimizer's state back to its start; run.init(seed) draws fresh weights as
//   tinygrad does.
//
// A backend runs programs (plan.*.programs): "forward", "taps", and any the exporter adds. Their kernels and buffers are
// one set per backend: the weights are shared by name, so every program sees what another wrote into them. Code a first
// prediction does not need (the training steps') sits in files of its own, loaded when a program first needs it.

/** A model file that is truncated, corrupt or not the one the model was exported with: no backend can run it. */
export class ModelFileError extends Error {
  constructor(message) { super(message); this.name = "ModelFileError"; }
}

/** A file that could not be downloaded (no network, an HTTP error, a body that broke off): trying again may work. */
export class DownloadError extends Error {
  constructor(message) { super(message); this.name = "DownloadError"; }
}

const message = (e) => (e instanceof Error ? e.message : String(e));
const fileName = (url) => decodeURIComponent(new URL(url, globalThis.location?.href).pathname.split("/").pop());

/** The bytes at `url`, every chunk reported to `onBytes(n)` as it arrives; any failure is a DownloadError naming the
 *  file (`what`), and so is a body shorter or longer than `expectedBytes`. `cache`: fetch's cache mode. */
export async function fetchBytes(url, { what = fileName(url), expectedBytes, onBytes, cache } = {}) {
  let response;
  try { response = await fetch(url, cache ? { cache } : undefined); }
  catch (e) { throw new DownloadError(`could not download ${what} (${message(e)})`); }
  if (!response.ok) throw new DownloadError(`could not download ${what} (HTTP ${response.status})`);
  const chunks = [];
  let received = 0;
  try {
    const reader = response.body.getReader();
    for (let chunk; !(chunk = await reader.read()).done;) {
      chunks.push(chunk.value);
      received += chunk.value.byteLength;
      onBytes?.(chunk.value.byteLength);
    }
  } catch (e) { throw new DownloadError(`the download of ${what} broke off after ${received} bytes (${message(e)})`); }
  if (expectedBytes !== undefined && received !== expectedBytes) {
    throw new DownloadError(`the download of ${what} is incomplete (${received} of ${expectedBytes} bytes)`);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength; }
  return bytes;
}

/** JSON at `url`, always fetched fresh (an index of files or a model's metadata: where hashes come from). */
export async function fetchJson(url, what = fileName(url)) {
  const bytes = await fetchBytes(url, { what, cache: "no-cache" });
  try { return JSON.parse(new TextDecoder().decode(bytes)); }
  catch { throw new ModelFileError(`${what} is not JSON (a broken download, or not this app's file)`); }
}

const checks = new WeakMap();   // bytes -> { sha256, promise of its check }: bytes given to both backends are hashed once

/** `bytes` once they hash to `sha256` (hex), which `source` gives; else a ModelFileError naming `what`. A check that
 *  cannot run refuses. */
export async function verified(bytes, sha256, what, source = "its metadata") {
  if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) throw new ModelFileError(`${what}: no SHA-256 to check it against`);
  let check = checks.get(bytes);
  if (check?.sha256 !== sha256) {
    check = { sha256, promise: sha256Hex(bytes).then((hash) => hash === sha256) };
    checks.set(bytes, check);
  }
  if (!(await check.promise)) throw new ModelFileError(`${what} is not the file ${source} names (sha256 mismatch)`);
  return bytes;
}


/** The hex SHA-256 of `bytes`: the browser's own (crypto.subtle) where the page has it, else sha256 below, so that a
 *  check never falls away (crypto.subtle exists only in secure contexts: a page served over plain http from a LAN
 *  address has WebAssembly but not it). */
export async function sha256Hex(bytes) {
  const digest = globalThis.crypto?.subtle ? new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)) : sha256(bytes);
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const K256 = Uint32Array.from(("428a2f98 71374491 b5c0fbcf e9b5dba5 3956c25b 59f111f1 923f82a4 ab1c5ed5 d807aa98 12835b01 243185be 550c7dc3 " +
  "72be5d74 80deb1fe 9bdc06a7 c19bf174 e49b69c1 efbe4786 0fc19dc6 240ca1cc 2de92c6f 4a7484aa 5cb0a9dc 76f988da 983e5152 a831c66d b00327c8 " +
  "bf597fc7 c6e00bf3 d5a79147 06ca6351 14292967 27b70a85 2e1b2138 4d2c6dfc 53380d13 650a7354 766a0abb 81c2c92e 92722c85 a2bfe8a1 a81a664b " +
  "c24b8b70 c76c51a3 d192e819 d6990624 f40e3585 106aa070 19a4c116 1e376c08 2748774c 34b0bcb5 391c0cb3 4ed8aa4a 5b9cca4f 682e6ff3 748f82ee " +
  "78a5636f 84c87814 8cc70208 90befffa a4506ceb bef9a3f7 c67178f2").split(" "), (h) => parseInt(h, 16));

/** SHA-256 (FIPS 180-4) in JavaScript: the digest of `bytes` as 32 bytes. */
export function sha256(bytes) {
  const h = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
  const padded = new Uint8Array(Math.ceil((bytes.length + 9) / 64) * 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const tail = new DataView(padded.buffer, padded.length - 8);
  tail.setUint32(0, Math.floor(bytes.length / 2 ** 29));   // the length in bits, big-endian
  tail.setUint32(4, (bytes.length * 8) >>> 0);
  const words = new DataView(padded.buffer), w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = words.getUint32(block + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3), s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  }
  const out = new Uint8Array(32), view = new DataView(out.buffer);
  h.forEach((v, i) => view.setUint32(4 * i, v));
  return out;
}

// float16 -> float32 through a table of all 65 536 halves: the weights are stored as float16 (half the download), the
// kernels compute in float32, so the GPU needs no half-precision feature
let halfTable = null;
function halfToFloatTable() {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
    halfTable[h] = sign * (exponent === 0 ? fraction * 2 ** -24
      : exponent === 31 ? (fraction ? NaN : Infinity) : (1 + fraction / 1024) * 2 ** (exponent - 15));
  }
  return halfTable;
}

export function halfToFloat32(halves) {
  const table = halfToFloatTable(), out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
  return out;
}

// safetensors as its reference reader (the Rust crate behind Python's safetensors) decides it, so that the page accepts
// exactly the files tinygrad and Python would: a header of at most 100 MB, valid UTF-8 JSON (serde_json's grammar: no
// byte-order mark, integers for sizes, a nesting depth of at most 128), {name: {dtype, shape, data_offsets}} with an
// optional "__metadata__" of strings, and tensors that tile the data exactly: sorted by offset, each starting where the
// last one ended, each as long as its shape and dtype say, the last ending at the end of the file.
const MAX_HEADER = 100_000_000, MAX_DEPTH = 128;
const DTYPE_BITS = { BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
                     I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64 };
const U64_MAX = (1n << 64n) - 1n;

/** JSON as serde_json reads it into safetensors' types: whole numbers that fit a u64 become BigInts, any other number
 *  (a sign, a fraction, an exponent, or too big) becomes NaN, which no size or offset accepts. */
function parseHeaderJson(text) {
  let i = 0;
  const fail = () => { throw new SyntaxError(`invalid JSON at ${i}`); };
  const space = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
  const value = (depth) => {
    space();
    const c = text[i];
    if (c === "{" || c === "[") {
      if (depth >= MAX_DEPTH) fail();
      const object = c === "{", out = object ? new Map() : [];
      i++;
      space();
      if (text[i] === (object ? "}" : "]")) { i++; return out; }
      for (;;) {
        if (object) {
          space();
          if (text[i] !== '"') fail();
          const key = string();
          space();
          if (text[i++] !== ":") fail();
          out.set(key, value(depth + 1));   // a repeated key: the last one counts, as in serde_json's maps
        } else out.push(value(depth + 1));
        space();
        if (text[i] === ",") { i++; continue; }
        if (text[i++] === (object ? "}" : "]")) return out;
        fail();
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) if (text.startsWith(word, i)) { i += word.length; return v; }
    const number = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!number) fail();
    i += number[0].length;
    if (number[0][0] === "-" || number[2] || number[3]) return NaN;
    const n = BigInt(number[0]);
    return n > U64_MAX ? NaN : n;
  };
  const string = () => {
    let out = "";
    for (i++; ; ) {
      const c = text[i++];
      if (c === undefined) fail();
      if (c === '"') return out;
      if (c < " ") fail();   // control characters must be escaped
      if (c !== "\\") { out += c; continue; }
      const e = text[i++];
      if (e === "u") {
        const unit = () => { const h = text.slice(i, i + 4); if (!/^[0-9a-fA-F]{4}$/.test(h)) fail(); i += 4; return parseInt(h, 16); };
        let u = unit();
        if (u >= 0xdc00 && u <= 0xdfff) fail();   // a lone trailing surrogate
        if (u >= 0xd800 && u <= 0xdbff) {         // a leading one needs its trailing half
          if (text.slice(i, i + 2) !== "\\u") fail();
          i += 2;
          const low = unit();
          if (low < 0xdc00 || low > 0xdfff) fail();
          out += String.fromCharCode(u, low);
          continue;
        }
        out += String.fromCharCode(u);
      } else if (e in JSON_ESCAPES) out += JSON_ESCAPES[e];
      else fail();
    }
  };
  const result = value(1);
  space();
  if (i !== text.length) fail();   // trailing characters
  return result;
}
const JSON_ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/** The header of a safetensors file, checked as the reference reader checks it: { tensors: Map(name -> { dtype, shape,
 *  begin, end }), metadata, dataStart }; a file it would refuse throws ModelFileError, naming `what`. */
export function parseSafetensors(bytes, what = "weights file") {
  const fail = (m) => new ModelFileError(`${what} ${m}`);
  if (bytes.byteLength < 8) throw fail("is truncated (not safetensors)");
  const size = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (size > BigInt(MAX_HEADER)) throw fail("has a header over 100 MB (not safetensors)");
  if (8n + size > BigInt(bytes.byteLength)) throw fail("is truncated or not safetensors");
  let header;
  try { header = parseHeaderJson(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + Number(size)))); }
  catch { throw fail("has a header that is not valid safetensors JSON"); }
  if (!(header instanceof Map)) throw fail("has a header that is not a JSON object");
  const tensors = new Map(), isSize = (v) => typeof v === "bigint";
  let metadata = null;
  for (const [name, entry] of header) {
    if (name === "__metadata__") {
      if (entry !== null && !(entry instanceof Map && [...entry.values()].every((v) => typeof v === "string"))) throw fail("has metadata that is not text");
      metadata = entry && Object.fromEntries(entry);
      continue;
    }
    const [dtype, shape, offsets] = entry instanceof Map ? ["dtype", "shape", "data_offsets"].map((k) => entry.get(k)) : [];
    if (!(dtype in DTYPE_BITS) || !Object.hasOwn(DTYPE_BITS, dtype) || !Array.isArray(shape) || !shape.every(isSize) ||
        !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) throw fail(`has a malformed entry for "${name}"`);
    tensors.set(name, { dtype, shape, begin: offsets[0], end: offsets[1] });
  }
  const sorted = [...tensors].sort(([, a], [, b]) => (a.begin !== b.begin ? (a.begin < b.begin ? -1 : 1) : a.end < b.end ? -1 : a.end > b.end ? 1 : 0));
  let at = 0n;
  for (const [name, t] of sorted) {
    if (t.begin !== at || t.end < t.begin) throw fail(`has tensors that overlap or leave gaps ("${name}")`);
    const elements = t.shape.reduce((a, b) => a * b, 1n), bits = elements * BigInt(DTYPE_BITS[t.dtype]);
    if (elements > U64_MAX || bits > U64_MAX) throw fail(`has a tensor too large to exist ("${name}")`);
    if (bits % 8n || bits / 8n !== t.end - t.begin) throw fail(`has a tensor whose size does not match its shape ("${name}")`);
    at = t.end;
  }
  if (8n + size + at !== BigInt(bytes.byteLength)) throw fail("is truncated or has data past its last tensor");
  for (const t of tensors.values()) Object.assign(t, { shape: t.shape.map(Number), begin: Number(t.begin), end: Number(t.end) });
  return { tensors, metadata, dataStart: 8 + Number(size) };
}

/** The weights in a safetensors file (parseSafetensors). Returns tensor(name, float32Bytes) -> the tensor as float32
 *  bytes (F32 as stored, F16 widened), checked to hold `float32Bytes`; tensor.shape(name) -> its shape or null. */
export function readSafetensors(bytes, what = "weights file") {
  const { tensors, dataStart } = parseSafetensors(bytes, what), fail = (m) => new ModelFileError(`${what} ${m}`);
  tensor.shape = (name) => tensors.get(name)?.shape ?? null;
  return tensor;
  function tensor(name, float32Bytes) {
    const entry = tensors.get(name);
    if (!entry) throw fail(`has no tensor "${name}"`);
    const itemSize = { F32: 4, F16: 2 }[entry.dtype];
    if (!itemSize || (entry.end - entry.begin) * (4 / itemSize) !== float32Bytes) throw fail(`has a corrupt tensor "${name}"`);
    const raw = bytes.subarray(dataStart + entry.begin, dataStart + entry.end);
    if (itemSize === 4) return raw;
    const halves = new Uint16Array(raw.slice().buffer);   // a copy: the data may not be 2-byte aligned
    return new Uint8Array(halfToFloat32(halves).buffer);
  }
}

/** A safetensors file of float32 tensors ([{ name, shape, data: Float32Array }]) with string metadata: what the page
 *  writes for a model it trained, readable by readSafetensors and by Python's safetensors (so tinygrad can LOAD= it). */
export function writeSafetensors(tensors, metadata = {}) {
  const header = Object.keys(metadata).length ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const { name, shape, data } of tensors) {
    if (!(data instanceof Float32Array) || data.length !== shape.reduce((a, b) => a * b, 1)) throw new TypeError(`tensor ${name} does not match its shape`);
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;   // the data starts 8-byte aligned, padded with spaces as the format allows
  const bytes = new Uint8Array(8 + padded + offset).fill(0x20, 8 + json.length, 8 + padded);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  offset = 8 + padded;
  for (const { data } of tensors) { bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset); offset += data.byteLength; }
  return bytes;
}

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

/** What WebAssembly can do here: { simd, fma (relaxed SIMD), threads (most threads worth asking for: the cores, up to
 *  16; 1 where memory cannot be shared) }. */
export function capabilities() {
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  return { simd: hasSimd(), fma: hasRelaxedSimd(), threads: canShareMemory() ? Math.max(1, Math.min(MAX_THREADS, cores)) : 1 };
}

/** Byte offsets of the buffers in one WebAssembly arena must not overlap and must stay inside it. */
export function checkArena(buffers, arenaBytes, align = 16) {
  const spans = buffers.map((b) => [b.offset, b.offset + b.bytes, b.name]).sort((a, b) => a[0] - b[0]);
  spans.forEach(([begin, end, name], i) => {
    if (begin % align || begin < 0 || end > arenaBytes) throw new ModelFileError(`buffer ${name} lies outside the arena or is misaligned`);
    if (i && begin < spans[i - 1][1]) throw new ModelFileError(`buffers ${spans[i - 1][2]} and ${name} overlap`);
  });
}

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

/** A weight or optimizer-state buffer, by name: what writeWeights and resetOptimizer may replace. */
function writable(plan, name) {
  const i = plan.findIndex((b) => b.name === name && (b.kind === "weight" || b.kind === "state"));
  if (i < 0) throw new TypeError(`no weight or optimizer state named "${name}"`);
  return i;
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
 *  (export_utils.init_spec), `sizes` its number of values. Uniform values are 24-bit fractions of [low, high). */
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

/** The start value of an optimizer-state buffer (Adam's running products of beta start at 1), as bytes. */
function initialState(b) {
  const values = new Float32Array(b.bytes / 4);
  if (b.init !== undefined) values.fill(b.init);
  return new Uint8Array(values.buffer);
}


/** The model whose metadata is at `source` (a URL, fetched fresh) or is `source` (an object, with `base`: the URL of its
 *  folder). `plan`: its plan, already checked (a Worker is handed the page's); `fetchFile(url, entry)`: how to download
 *  a file (default fetchBytes; the page's reports progress). */
export async function openModel(source, { base, plan, fetchFile, prefetch = [] } = {}) {
  const meta = typeof source === "object" && !(source instanceof URL) ? source : await fetchJson(source);
  const folder = new URL(base ?? source, globalThis.location?.href);
  if (typeof meta?.name !== "string" || typeof meta.files !== "object" || !(meta.std > 0)) {
    throw new ModelFileError(`${fileName(folder)} is not a model's metadata (no name, files or input normalisation)`);
  }
  const model = modelFiles(meta, folder, fetchFile ?? ((url, entry) => fetchBytes(url, { what: entry.name, expectedBytes: entry.bytes })));
  for (const key of prefetch) model.file(key).catch(() => {});   // beside the plan: reported by whoever needs them
  model.plan = plan ?? await model.json("plan");
  return describeModel(model);
}

/** Open the model whose metadata is at `metaUrl` and load it on `backend` (a GPUDevice or "wasm"). */
export async function loadModel(metaUrl, backend, options) {
  return (await openModel(metaUrl)).load(backend, options);
}

/** A model's files by their key in the metadata ("plan", "weights", "wasm", ...): url(key), file(key) (its bytes, checked
 *  against the metadata's SHA-256, downloaded once; a failed download is tried again when next asked for) and json(key). */
function modelFiles(meta, folder, fetchFile) {
  const files = new Map(), parsed = new Map();
  const entry = (key) => {
    const e = meta.files[key];
    if (!e?.name) throw new ModelFileError(`${meta.name}: its metadata names no ${key} file`);
    return e;
  };
  const url = (key) => new URL(`${encodeURIComponent(entry(key).name)}?v=${entry(key).sha256}`, folder);
  const remember = (map, key, make) => {
    if (!map.has(key)) {
      const promise = make();
      map.set(key, promise);
      promise.catch(() => map.delete(key));
    }
    return map.get(key);
  };
  const file = (key) => remember(files, key, async () => verified(await fetchFile(url(key), entry(key)), entry(key).sha256, entry(key).name));
  const json = (key) => remember(parsed, key, async () => {
    const bytes = await file(key);
    try { return JSON.parse(new TextDecoder().decode(bytes)); }
    catch { throw new ModelFileError(`${entry(key).name} is not JSON`); }
  });
  return { name: meta.name, meta, folder, url, file, json };
}

function describeModel(model) {
  const { plan, meta } = model;
  if (plan?.format !== 2 || !plan.webgpu || !plan.wasm || !plan.threads) throw new ModelFileError(`${meta.name}: its plan is not one this runtime can run`);
  const weightBuffers = plan.webgpu.buffers.filter((b) => b.kind === "weight");
  return Object.assign(model, {
    inputShape: plan.inputShape, outputLength: plan.outputLength, taps: plan.taps, train: plan.train ?? null, fit: plan.fit ?? null,
    evaluate: plan.evaluate ?? null, weights: weightBuffers.map(({ name, shape }) => ({ name, shape })), backends: ["webgpu", "wasm"],
    weightSizes: Object.fromEntries(weightBuffers.map((b) => [b.name, b.bytes / 4])),
    load: (backend, options) => load(model, backend, options),
    tensors: (options) => tensors(model, options),
  });
}

/** The weights as the backends read them: tensor(name, float32Bytes), decoded once per file. */
const decoded = new WeakMap();
async function weightsOf(model, { weights, verify = true } = {}) {
  if (weights === null) return null;
  const what = `${model.name}: weights file ${model.meta.files.weights?.name ?? `${model.name}.safetensors`}`;
  let bytes = weights === undefined ? await model.file("weights") : await weights;
  if (typeof bytes === "string" || bytes instanceof URL) bytes = await fetchBytes(bytes);
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${model.name}: weights must be a URL or a Uint8Array`);
  if (weights !== undefined && verify) await verified(bytes, model.meta.files.weights?.sha256, what);
  if (!decoded.has(bytes)) {
    const tensor = readSafetensors(bytes, what), cache = new Map();
    const cached = (name, n) => { if (!cache.has(name)) cache.set(name, tensor(name, n)); return cache.get(name); };
    cached.shape = tensor.shape;
    decoded.set(bytes, cached);
  }
  return decoded.get(bytes);
}

/** The weights file's tensors as float32, with their shapes: for showing what the model learned, or restoring it. */
async function tensors(model, options) {
  const tensor = await weightsOf(model, options);
  return (name) => {
    const shape = tensor.shape(name);
    if (!shape) throw new ModelFileError(`${model.name}: the weights file has no tensor "${name}"`);
    return { shape, data: new Float32Array(tensor(name, 4 * shape.reduce((a, b) => a * b, 1)).slice().buffer) };
  };
}

async function load(model, backend, options = {}) {
  if (backend === "wasm" && typeof WebAssembly !== "object") throw new Error(`${model.name}: this browser has no WebAssembly`);
  const wasm = backend === "wasm" ? wasmChoice(model, options) : null;
  const first = wasm ? model.file(wasm.module.file) : null;   // downloads beside the weights
  first?.catch(() => {});   // reported below, after the weights' own errors
  const tensor = await weightsOf(model, options);
  const memory = !wasm ? await webgpuBackend(model, backend, tensor)
    : wasm.threads > 1 ? await threadedBackend(model, await first, tensor, wasm, options.onThreadsLost)
    : await wasmBackend(model, await first, tensor, wasm.module);
  const run = programsOf(model, memory);
  // what it runs on, for the page to say (threads: now, after any fallback to one thread)
  run.wasm = wasm && { get threads() { return memory.threads ?? 1; }, fma: wasm.fma, stopThread: (tid) => memory.stopThread?.(tid) };
  run.close = () => memory.close?.();
  return run;
}

/** Which WebAssembly build to run: `threads` (default 1) Workers where memory can be shared, relaxed SIMD's fused
 *  multiply-add where the engine validates it (`fma: false` turns it off). */
function wasmChoice(model, { threads = 1, fma = hasRelaxedSimd() } = {}) {
  const file = wasmFile(model.meta, { threads, fma });   // one rule for which build, whether from the metadata or the plan
  const module = [...model.plan.wasm.modules, ...model.plan.threads.modules].find((m) => m.file === file);
  return { threads: file.startsWith("threads_") ? Math.max(1, Math.min(threads, MAX_THREADS)) : 1, fma: Boolean(module.fma), module };
}

/** The file key of the WebAssembly module load("wasm", options) starts with, from the metadata alone (so that it can
 *  download beside the plan). */
export function wasmFile(meta, { threads = 1, fma = hasRelaxedSimd() } = {}) {
  const key = (canShareMemory() && threads > 1 ? "threads_wasm" : "wasm") + (fma ? "_fma" : "");
  return meta.files[key] ? key : key.replace(/_fma$/, "");
}

/** run() and the training programs over a backend's memory ({ execute(program, values, read), read(names), write(values) }). */
function programsOf(model, memory) {
  const { plan, name } = model, inputLength = plan.inputShape.reduce((a, b) => a * b, 1);
  const run = serialised(async (input, { taps = false } = {}) => {
    if (!taps) return (await memory.execute("forward", { input })).output;
    const out = await memory.execute("taps", { input });
    return { logits: out.output, taps: Object.fromEntries(plan.taps.map((t) => [t.name, out[t.buffer]])) };
  }, inputLength, name);
  const batchOf = (program, images, labels, lr) => {
    const batch = plan[program === "fit" ? "fit" : program === "train" ? "train" : "evaluate"]?.batch;
    if (!batch) throw new Error(`${name} was exported without a "${program}" program`);
    const ok = images instanceof Float32Array && images.length === batch * inputLength &&
      (program === "evaluate" || (labels instanceof Int32Array && labels.length === batch && lr >= 0));
    if (!ok) throw new TypeError(`${name}: ${program}() takes Float32Array(${batch * inputLength}) images` + (program === "evaluate" ? "" : `, Int32Array(${batch}) labels and a learning rate`));
    return program === "evaluate" ? { images: images.slice() } : { images: images.slice(), labels: labels.slice(), lr: Float32Array.of(lr) };
  };
  const step = (program, images, labels, lr, read = true) => {
    let values;
    try { values = batchOf(program, images, labels, lr); } catch (e) { return Promise.reject(e); }
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
    plan.webgpu.buffers.filter((b) => b.kind === "state").map((b) => [b.name, initialState(b)]))));
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

// ---------------------------------------------------------------- WebGPU

// The buffers once, at load; each program's pipelines and bind groups when it first runs (the forward at load). A run
// writes the input, encodes one pass, submits and reads the program's outputs back.
async function webgpuBackend(model, device, tensor) {
  const { buffers: layout, programs } = model.plan.webgpu;
  device.pushErrorScope("validation");
  const buffers = layout.map((b) => createBuffer(device, `${model.name}/${b.name}`, b,
                                                  b.kind === "weight" ? tensor?.(b.name, b.bytes) : b.kind === "state" ? initialState(b) : null));
  // tinygrad's WGSL reads INFINITY from a uniform at binding 0 (WGSL has no infinity literal)
  const infinity = createBuffer(device, `${model.name}/infinity`, { kind: "uniform", bytes: 4 }, new Uint8Array(Float32Array.of(Infinity).buffer));
  const pipelines = new Map();   // kernel index -> promise of { pipeline, layout }
  const built = new Map();
  const build = (program) => {
    if (!programs[program]) return Promise.reject(new Error(`${model.name} has no program "${program}"`));
    if (!built.has(program)) {
      const promise = buildProgram(model, device, program, buffers, infinity, (k) => pipelineOf(model, device, pipelines, k));
      built.set(program, promise);
      promise.catch(() => built.delete(program));
    }
    return built.get(program);
  };
  await build("forward");
  const error = await device.popErrorScope();
  if (error) throw new Error(`${model.name}: WebGPU rejected the model: ${error.message}`);
  return {
    execute: (program, values, read = true) => build(program).then((execute) => execute(values, read)),
    read: (names) => readBuffers(device, names.map((name) => ({ ...layout[writable(layout, name)], buffer: buffers[writable(layout, name)] }))),
    async write(values) {
      for (const [name, data] of Object.entries(values)) device.queue.writeBuffer(buffers[writable(layout, name)], 0, data);
      await device.queue.onSubmittedWorkDone();
    },
  };
}

const USAGE = () => {
  const { STORAGE, COPY_SRC, COPY_DST, UNIFORM } = GPUBufferUsage;
  return { input: STORAGE | COPY_DST, output: STORAGE | COPY_SRC, weight: STORAGE | COPY_SRC | COPY_DST, state: STORAGE | COPY_SRC | COPY_DST,
           scratch: STORAGE, uniform: UNIFORM };
};

function createBuffer(device, label, b, initial) {
  const buffer = device.createBuffer({ label, size: Math.max(4, Math.ceil(b.bytes / 4) * 4), usage: USAGE()[b.kind], mappedAtCreation: Boolean(initial) });
  if (initial) {
    new Uint8Array(buffer.getMappedRange()).set(initial);
    buffer.unmap();
  }
  return buffer;
}

/** A kernel's compute pipeline, made once (asynchronously) from its WGSL, which comes from the file the plan names. */
function pipelineOf(model, device, pipelines, k) {
  if (!pipelines.has(k)) {
    const { name, file } = model.plan.webgpu.kernels[k];
    const n = Object.values(model.plan.webgpu.programs).flat().find((d) => d.kernel === k).buffers.length;
    const promise = model.json(file).then((sources) => {
      if (typeof sources?.[k] !== "string") throw new ModelFileError(`${model.meta.files[file].name} has no kernel ${k}`);
      const layout = device.createBindGroupLayout({
        entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
          ...Array.from({ length: n }, (_, i) => ({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } }))],
      });
      return device.createComputePipelineAsync({
        label: `${model.name}/${name}`, layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module: device.createShaderModule({ code: sources[k] }), entryPoint: name },
      }).then((pipeline) => ({ pipeline, layout }));
    });
    pipelines.set(k, promise);
    promise.catch(() => pipelines.delete(k));
  }
  return pipelines.get(k);
}

/** One program's bind groups and readback buffer, made once; returns execute(values, read). */
async function buildProgram(model, device, program, buffers, infinity, pipeline) {
  const { buffers: layout, programs, inputs } = model.plan.webgpu, dispatches = programs[program];
  const used = [...new Set(dispatches.map((d) => d.kernel))];
  const made = new Map(await Promise.all(used.map(async (k) => [k, await pipeline(k)])));
  device.pushErrorScope("validation");
  const steps = dispatches.map((d) => ({
    pipeline: made.get(d.kernel).pipeline, workgroups: d.workgroups,
    bindGroup: device.createBindGroup({ layout: made.get(d.kernel).layout, entries: [{ binding: 0, resource: { buffer: infinity } },
      ...d.buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: buffers[b] } }))] }),
  }));
  const outputs = layout.map((b, i) => ({ ...b, buffer: buffers[i] })).filter((b) => b.kind === "output" && b.program === program);
  const readback = device.createBuffer({ label: `${model.name}/${program}/readback`, size: Math.max(4, outputs.reduce((n, b) => n + Math.ceil(b.bytes / 4) * 4, 0)),
                                         usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const error = await device.popErrorScope();
  if (error) throw new Error(`${model.name}: WebGPU rejected the ${program} program: ${error.message}`);
  // read: false submits without waiting for the results (a training step whose loss nobody looks at)
  return async function execute(values, read) {
    for (const [name, data] of Object.entries(values)) device.queue.writeBuffer(buffers[inputs[program][name]], 0, data);
    const encoder = device.createCommandEncoder(), pass = encoder.beginComputePass();
    for (const step of steps) {
      pass.setPipeline(step.pipeline);
      pass.setBindGroup(0, step.bindGroup);
      pass.dispatchWorkgroups(...step.workgroups);
    }
    pass.end();
    if (read) return readBuffers(device, outputs, readback, encoder);
    device.queue.submit([encoder.finish()]);
    return null;
  };
}

/** The contents of GPU buffers ({ name, bytes, buffer }) as Float32Arrays by name, through `readback` (a MAP_READ buffer
 *  large enough; a run keeps one for its outputs) or, if none is given, one made for this call; the copies go at the
 *  end of `encoder` (a run's compute pass: one submit) or of an encoder of their own. */
async function readBuffers(device, chosen, readback = null, encoder = device.createCommandEncoder()) {
  let size = 0;
  const at = chosen.map((b) => { const start = size; size += Math.ceil(b.bytes / 4) * 4; return start; });
  const own = !readback;
  readback ??= device.createBuffer({ size: Math.max(size, 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  chosen.forEach((b, i) => encoder.copyBufferToBuffer(b.buffer, 0, readback, at[i], Math.ceil(b.bytes / 4) * 4));
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const mapped = readback.getMappedRange(), result = {};
  chosen.forEach((b, i) => { result[b.name] = new Float32Array(mapped.slice(at[i], at[i] + b.bytes)); });
  readback.unmap();
  if (own) readback.destroy();
  return result;
}

// ---------------------------------------------------------------- WebAssembly

// tinygrad's C kernels compiled to a module whose static arena holds every buffer at a fixed offset, and one exported
// function per program. The weights are copied in once; a run writes the input, calls the program's function and copies
// its outputs out. A program that is not in the first module is in the last (plan.wasm.modules), which then takes over
// every program, the weights and optimizer state copied across as they are at that moment.
async function wasmBackend(model, firstBytes, tensor, first = model.plan.wasm.modules[0]) {
  const { buffers: layout, programs, inputs } = model.plan.wasm;
  const modules = model.plan.wasm.modules.filter((m) => Boolean(m.fma) === Boolean(first.fma));   // the same build: plain or relaxed SIMD
  let current = await instantiate(model, first, firstBytes);
  layout.forEach((b, i) => {
    if (b.kind === "weight" && tensor) current.set(i, tensor(b.name, b.bytes));
    else if (b.kind === "state" && current.has(i)) current.set(i, initialState(b));
  });
  let upgrading = null;
  const upgrade = () => {
    upgrading ??= (async () => {
      const last = modules.at(-1), next = await instantiate(model, last, await model.file(last.file));
      layout.forEach((b, i) => {
        if (!next.has(i) || (b.kind !== "weight" && b.kind !== "state")) return;
        next.set(i, current.has(i) ? current.get(i) : initialState(b));
      });
      current = next;
    })();
    upgrading.catch(() => { upgrading = null; });   // a download that failed is tried again next time
    return upgrading;
  };
  const floats = (i) => new Float32Array(current.get(i).slice().buffer);
  return {
    async execute(program, values) {
      if (!programs[program]) throw new Error(`${model.name} has no program "${program}"`);
      if (!current.module.programs.includes(program)) await upgrade();
      for (const [name, data] of Object.entries(values)) current.set(inputs[program][name], new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      current.exports[programs[program]]();
      const result = {};
      layout.forEach((b, i) => { if (b.kind === "output" && b.program === program) result[b.name] = floats(i); });
      return result;
    },
    async read(names) {
      if (names.some((name) => !current.has(writable(layout, name)))) await upgrade();
      return Object.fromEntries(names.map((name) => [name, floats(writable(layout, name))]));
    },
    async write(values) {
      for (const [name, data] of Object.entries(values)) {
        const i = writable(layout, name);
        if (current.has(i)) current.set(i, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      }
    },
  };
}

/** A module of the plan, instantiated from its checked bytes: has(i), get(i) (a view of buffer i in its arena), set(i, bytes). */
async function instantiate(model, module, bytes, { layout = model.plan.wasm.buffers, memory: shared } = {}) {
  const what = `WebAssembly module ${model.meta.files[module.file]?.name}`;
  let instance;
  try {
    const made = await WebAssembly.instantiate(bytes, shared ? { env: { memory: shared } } : {});
    instance = made.instance ?? made;   // from bytes: { module, instance }; from a compiled module: the instance
  }
  catch (e) {
    if (!hasSimd()) throw new Error(`${model.name}: this browser cannot run the ${what} (it needs WebAssembly SIMD)`);
    throw new ModelFileError(`${model.name}: the ${what} is not a valid WebAssembly module (${e.message})`);
  }
  const memory = shared ?? instance.exports.memory, base = instance.exports.arena();
  checkArena(layout.map((b, i) => ({ ...b, offset: module.offsets[i] })).filter((b) => b.offset !== null), memory.buffer.byteLength - base);
  const has = (i) => module.offsets[i] !== null;
  const get = (i) => new Uint8Array(memory.buffer, base + module.offsets[i], layout[i].bytes);
  return { exports: instance.exports, module, has, get, set: (i, data) => new Uint8Array(memory.buffer).set(data, base + module.offsets[i]) };
}

// ---------------------------------------------------------------- WebAssembly on several threads

// The threaded module (plan.threads) runs every program on `threads` Workers sharing one WebAssembly.Memory: each
// Worker instantiates the module on it and waits in its serve(); this thread (the leader: the page, or the trainer's
// Worker) writes a job (program, thread count) into the module's control block, wakes them, and waits (without blocking
// a page) until they have all counted themselves done. The kernels are the same whatever the thread count (tinygrad split
// each into fixed parts, taken in turn), so 1, 2 or 16 threads give the same bits. The Workers run this very file.
const MAX_THREADS = 16, THREAD = "model-runtime-thread", THREAD_START_MS = 10_000;
const node = globalThis.process?.versions?.node ? await import("node:worker_threads") : null;

/** A Worker of this file, serving a threaded module's jobs (in a page asked for as model_runtime.js?thread: the same
 *  file, which a server, a cache or a test can tell apart). */
function spawnThread() {
  if (node) return new node.Worker(new URL(import.meta.url), { workerData: THREAD });
  return new Worker(new URL("?thread", import.meta.url), { type: "module", name: THREAD });
}

// in such a Worker: the module and the memory arrive once; its own C stack; then it serves jobs until terminated
if ((node && !node.isMainThread && node.workerData === THREAD) || (!node && globalThis.name === THREAD && typeof WorkerGlobalScope === "function")) {
  const port = node ? node.parentPort : globalThis;
  const start = async ({ module, memory, tid }) => {
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    instance.exports.__stack_pointer.value = instance.exports.stack_top(tid);
    const job = Atomics.load(new Int32Array(memory.buffer, instance.exports.control(), 1), 0);   // read before it says it is ready
    port.postMessage({ ready: tid });
    instance.exports.serve(tid, job);   // never returns
  };
  if (node) port.once("message", (m) => start(m).catch((e) => { throw e; }));
  else port.onmessage = ({ data }) => { port.onmessage = null; start(data).catch((e) => { throw e; }); };
}

/** `n` Workers serving `compiled` on `memory`, once every one has started (else they are ended and it throws). */
async function startThreads(compiled, memory, n) {
  const workers = Array.from({ length: n }, spawnThread), pool = { workers, failure: null, onFailure: () => {} };
  const fail = (why) => { if (!pool.failure) { pool.failure = new Error(why); pool.onFailure(pool.failure); } };
  try {
    await Promise.all(workers.map((w, tid) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`thread ${tid} did not start in ${THREAD_START_MS / 1000} s`)), THREAD_START_MS);
      const ready = (m) => { if (m?.ready === tid || m?.data?.ready === tid) { clearTimeout(timer); resolve(); } };
      const error = (e) => { clearTimeout(timer); reject(new Error(`thread ${tid} could not start (${e?.message ?? e})`)); };
      if (node) { w.once("message", ready); w.once("error", error); }
      else { w.addEventListener("message", ready, { once: true }); w.onerror = (e) => { e.preventDefault?.(); error(e); }; }
      w.postMessage({ module: compiled, memory, tid });
    })));
  } catch (e) { for (const w of workers) w.terminate(); throw e; }
  workers.forEach((w, tid) => {
    const died = (e) => fail(`thread ${tid} stopped (${e?.message ?? e ?? "it exited"})`);
    if (node) { w.on("error", died); w.on("exit", died); } else w.onerror = (e) => { e.preventDefault?.(); died(e); };
  });
  pool.close = () => { pool.closed = true; for (const w of workers) w.terminate(); };
  return pool;
}

/** Until the threads of a job have counted themselves done (control[3] === n), waiting without blocking a page. */
async function jobDone(control, n, pool) {
  for (let done; (done = Atomics.load(control, 3)) < n;) {
    if (pool.failure) throw pool.failure;
    if (Atomics.waitAsync) { const w = Atomics.waitAsync(control, 3, done, 1000); if (w.async) await w.value; }
    else if (!globalThis.document) Atomics.wait(control, 3, done, 1000);      // a Worker may block
    else await new Promise((resolve) => setTimeout(resolve, 0));             // a page of a browser without waitAsync
  }
}

/** The threaded backend: the weights copied into the shared memory once; a run writes the inputs, posts the job, awaits
 *  it and copies the outputs out. If a thread stops (or never starts) it falls back to one thread (the plain module, the
 *  weights and optimizer state copied across) and says so through `onThreadsLost(reason)`. */
async function threadedBackend(model, bytes, tensor, { threads, fma, module }, onThreadsLost = () => {}) {
  const { buffers: layout, programs, inputs } = model.plan.threads;
  const compiled = await WebAssembly.compile(bytes).catch((e) => { throw new ModelFileError(`${model.name}: the WebAssembly module ${model.meta.files[module.file].name} is not valid (${e.message})`); });
  const pages = module.memory / 65536, memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const leader = await instantiate(model, module, compiled, { layout, memory });
  const control = new Int32Array(memory.buffer, leader.exports.control(), 8 + module.counters);
  layout.forEach((b, i) => {
    if (b.kind === "weight" && tensor) leader.set(i, tensor(b.name, b.bytes));
    else if (b.kind === "state" && leader.has(i)) leader.set(i, initialState(b));
  });
  let pool = await startThreads(compiled, memory, threads).catch((e) => { onThreadsLost(e.message); return null; });
  let single = pool ? null : await singleFrom(model, leader, layout, fma);
  const floats = (i) => new Float32Array(leader.get(i).slice().buffer);
  const backend = {
    get threads() { return single ? 1 : threads; },
    async execute(program, values) {
      if (single) return single.execute(program, values);
      if (!programs.includes(program)) throw new Error(`${model.name} has no program "${program}"`);
      for (const [name, data] of Object.entries(values)) leader.set(inputs[program][name], new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (!model.plan.threads.split.includes(program)) leader.exports.run(programs.indexOf(program), 0, 1);   // nothing to share: here, at once
      else await job(programs.indexOf(program)).catch(async (e) => {   // a thread stopped: on one thread from here, the job run again there
        pool.close();
        onThreadsLost(e.message);
        single = await singleFrom(model, leader, layout, fma);
      });
      if (single) return single.execute(program, values);
      const result = {};
      layout.forEach((b, i) => { if (b.kind === "output" && b.program === program) result[b.name] = floats(i); });
      return result;
    },
    read: async (names) => single ? single.read(names) : Object.fromEntries(names.map((name) => [name, floats(writable(layout, name))])),
    async write(values) {
      if (single) return single.write(values);
      for (const [name, data] of Object.entries(values)) leader.set(writable(layout, name), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    },
    close: () => pool?.close(),
    stopThread: (tid) => pool?.workers[tid]?.terminate(),   // what a thread that crashes does (tests)
  };
  /** One program on the Workers: the job posted in the control block, then their done count awaited. */
  async function job(index) {
    control.fill(0, 8);
    Atomics.store(control, 3, 0);
    Atomics.store(control, 1, index);
    Atomics.store(control, 2, threads);
    Atomics.add(control, 0, 1);
    Atomics.notify(control, 0);
    await jobDone(control, threads, pool);
  }
  return backend;
}

/** The plain (one-thread) backend, with the weights and optimizer state as the threaded one holds them now: its module
 *  with every program (the last of its build), so that all of them find their place. */
async function singleFrom(model, leader, layout, fma) {
  const module = model.plan.wasm.modules.filter((m) => Boolean(m.fma) === fma).at(-1) ?? model.plan.wasm.modules.at(-1);
  const single = await wasmBackend(model, await model.file(module.file), null, module);
  const kept = {};
  layout.forEach((b, i) => { if (b.kind === "weight" || b.kind === "state") kept[b.name] = new Float32Array(leader.get(i).slice().buffer); });
  await single.write(kept);
  return single;
}
