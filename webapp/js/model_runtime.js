// The runtime of every model module that export_utils.py generates: the exporter embeds this file verbatim after the
// model's plan (kernels, buffers, dispatches) and its WGSL, then adds `export default createModel(PLAN, WGSL, import.meta.url)`.
// It knows no model: everything specific comes from the plan. node --test runs it directly (tests/js/).
//
// Contract of a model: load(backend, weights, options) -> run(Float32Array(inputLength)) -> Promise<Float32Array(outputLength)>
//   backend: a GPUDevice (WebGPU) or "wasm" (WebAssembly SIMD on the CPU)
//   weights: the safetensors file as a URL, or its bytes (a Uint8Array or a promise of one). The same bytes given to both
//            backends are checked against the plan's SHA-256 and decoded once.
//   options.wasm: the WebAssembly module as a URL or bytes (default: <name>.wasm next to the module)
//   options.verify: check SHA-256 hashes (default true)
// run(input, { taps: true }) -> Promise<{ logits, taps: { layer name: Float32Array } }>: what each layer the model
// names (PLAN.taps, with their shapes) computed for this input, from the "taps" program.
// run.train(images, labels, lr) -> Promise<loss>: one step of the "train" program (PLAN.train: forward, loss, backward,
// optimizer update) on a batch of PLAN.train.batch normalised images (Float32Array) and labels (Int32Array); it updates
// the weights that run() reads, in place. run.readWeights(names = the trained ones) / run.writeWeights({ name: Float32Array }) read and replace
// them (to keep or restore a fine-tuned model); run.resetOptimizer() puts the optimizer's state back to its start.
//
// A backend runs programs (PLAN.*.programs): "forward", "taps", and any the exporter adds. Their kernels and buffers are
// one set per backend: the weights are shared by name, so every program sees what another wrote into them. Programs
// whose kernels are not in this file (PLAN.webgpu.extras, PLAN.wasm.extras) are loaded when first run.

/** A model file that is missing, truncated, corrupt or not the one the model was exported with: no backend can run it.
 *  (By name, not class: every generated module embeds its own copy of this file.) */
export class ModelFileError extends Error {
  constructor(message) { super(message); this.name = "ModelFileError"; }
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

export function createModel(PLAN, WGSL, moduleUrl) {
  const INPUT_LENGTH = PLAN.inputShape.reduce((a, b) => a * b, 1);
  const fail = (message) => new ModelFileError(`${PLAN.name}: ${message}`);
  const checked = new WeakMap();   // bytes -> promise of their check, so a file given to both backends is hashed once
  const fileUrl = (suffix, sha256) => new URL(`${PLAN.name}.${suffix}?v=${sha256}`, moduleUrl);

  async function bytesOf(source, sha256, verify, what) {
    let bytes = await source;
    if (typeof bytes === "string" || bytes instanceof URL) {
      let response;
      try { response = await fetch(bytes); bytes = response.ok ? new Uint8Array(await response.arrayBuffer()) : null; }
      catch (e) { throw fail(`could not download the ${what} (${e.message})`); }
      if (!response.ok) throw fail(`could not download the ${what} (HTTP ${response.status})`);
    }
    if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`${PLAN.name}: the ${what} must be a URL or a Uint8Array`);
    if (!verify) return bytes;
    if (!checked.has(bytes)) {
      checked.set(bytes, sha256Hex(bytes).then((hash) => {
        if (hash !== sha256) throw fail(`the ${what} is not the one this model was exported with (sha256 mismatch)`);
      }));
    }
    await checked.get(bytes);
    return bytes;
  }

  const readers = new WeakMap();   // bytes -> decoded tensors, shared by both backends
  function weightsOf(bytes) {
    if (!readers.has(bytes)) {
      const tensor = readSafetensors(bytes, `${PLAN.name}: weights file ${PLAN.name}.safetensors`), cache = new Map();
      const cached = (name, n) => { if (!cache.has(name)) cache.set(name, tensor(name, n)); return cache.get(name); };
      cached.shape = tensor.shape;
      readers.set(bytes, cached);
    }
    return readers.get(bytes);
  }

  // the WGSL of the programs beyond the forward (JSON: kernel index -> source), checked like every other file, then parsed
  let extraWGSL = null;
  function extrasWGSL(verify) {
    extraWGSL ??= (async () => {
      const { sha256 } = PLAN.webgpu.extras;
      const bytes = await bytesOf(fileUrl("extras.json", sha256), sha256, verify, `extras WGSL ${PLAN.name}.extras.json`);
      try { return JSON.parse(new TextDecoder().decode(bytes)); }
      catch { throw fail("the extras WGSL is not JSON"); }
    })();
    extraWGSL.catch(() => { extraWGSL = null; });   // a download that failed is tried again next time
    return extraWGSL;
  }

  // WebGPU: the buffers once, at load; each program's pipelines and bind groups when it first runs (the forward at
  // load). A run writes the input, encodes one pass, submits and reads the program's outputs back.
  async function loadWebGPU(device, tensor, verify) {
    const { kernels, buffers: plan, programs } = PLAN.webgpu;
    const { STORAGE, COPY_SRC, COPY_DST, UNIFORM, MAP_READ } = GPUBufferUsage;
    const usageOf = { input: STORAGE | COPY_DST, output: STORAGE | COPY_SRC, weight: STORAGE | COPY_SRC | COPY_DST,
                      state: STORAGE | COPY_SRC | COPY_DST, scratch: STORAGE };
    device.pushErrorScope("validation");
    const buffers = plan.map((b) => {
      const size = Math.max(4, Math.ceil(b.bytes / 4) * 4);
      const initial = b.kind === "weight" ? tensor?.(b.name, b.bytes) : b.init ? initialState(b) : null;
      const buffer = device.createBuffer({ label: `${PLAN.name}/${b.name}`, size, usage: usageOf[b.kind], mappedAtCreation: Boolean(initial) });
      if (initial) {
        new Uint8Array(buffer.getMappedRange()).set(initial);
        buffer.unmap();
      }
      return buffer;
    });
    // tinygrad's WGSL reads INFINITY from a uniform at binding 0 (WGSL has no infinity literal)
    const infinity = device.createBuffer({ size: 4, usage: UNIFORM, mappedAtCreation: true });
    new Float32Array(infinity.getMappedRange())[0] = Infinity;
    infinity.unmap();
    const inputs = PLAN.webgpu.inputs;   // each program's input buffers, by name
    const pipelines = new Map();   // kernel index -> { pipeline, layout }

    function pipelineOf(k, code) {
      if (!pipelines.has(k)) {
        const n = Object.values(programs).flat().find((d) => d.kernel === k).buffers.length;
        const layout = device.createBindGroupLayout({
          entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
            ...Array.from({ length: n }, (_, i) => ({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } }))],
        });
        pipelines.set(k, device.createComputePipelineAsync({
          label: `${PLAN.name}/${kernels[k].name}`,
          layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
          compute: { module: device.createShaderModule({ code }), entryPoint: kernels[k].name },
        }).then((pipeline) => ({ pipeline, layout })));
      }
      return pipelines.get(k);
    }

    async function build(program) {
      const dispatches = programs[program];
      if (!dispatches) throw new Error(`${PLAN.name} has no program "${program}"`);
      const used = [...new Set(dispatches.map((d) => d.kernel))];
      const extra = used.some((k) => kernels[k].extras) ? await extrasWGSL(verify) : {};
      device.pushErrorScope("validation");
      const built = new Map(await Promise.all(used.map(async (k) => [k, await pipelineOf(k, kernels[k].extras ? extra[k] : WGSL[k])])));
      const steps = dispatches.map((d) => ({
        pipeline: built.get(d.kernel).pipeline,
        workgroups: d.workgroups,
        bindGroup: device.createBindGroup({
          layout: built.get(d.kernel).layout,
          entries: [{ binding: 0, resource: { buffer: infinity } }, ...d.buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: buffers[b] } }))],
        }),
      }));
      const outputs = plan.map((b, i) => ({ ...b, index: i })).filter((b) => b.kind === "output" && b.program === program);
      let size = 0;
      for (const o of outputs) { o.at = size; size += Math.ceil(o.bytes / 4) * 4; }
      const readback = device.createBuffer({ label: `${PLAN.name}/${program}/readback`, size, usage: MAP_READ | COPY_DST });
      const error = await device.popErrorScope();
      if (error) throw new Error(`${PLAN.name}: WebGPU rejected the ${program} program: ${error.message}`);
      // read: false submits without waiting for the results (a training step whose loss nobody looks at)
      return async function execute(values, read) {
        for (const [name, data] of Object.entries(values)) device.queue.writeBuffer(buffers[inputs[program][name]], 0, data);
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        for (const step of steps) {
          pass.setPipeline(step.pipeline);
          pass.setBindGroup(0, step.bindGroup);
          pass.dispatchWorkgroups(...step.workgroups);
        }
        pass.end();
        if (read) for (const o of outputs) encoder.copyBufferToBuffer(buffers[o.index], 0, readback, o.at, Math.ceil(o.bytes / 4) * 4);
        device.queue.submit([encoder.finish()]);
        if (!read) return null;
        await readback.mapAsync(GPUMapMode.READ);
        const mapped = readback.getMappedRange(), result = {};
        for (const o of outputs) result[o.name] = new Float32Array(mapped.slice(o.at, o.at + o.bytes));
        readback.unmap();
        return result;
      };
    }

    const built = new Map([["forward", build("forward")]]);
    await built.get("forward");
    const error = await device.popErrorScope();
    if (error) throw new Error(`${PLAN.name}: WebGPU rejected the model: ${error.message}`);

    async function read(names) {
      const chosen = names.map((name) => ({ ...plan[writable(plan, name)], index: writable(plan, name) }));
      let size = 0;
      for (const b of chosen) { b.at = size; size += Math.ceil(b.bytes / 4) * 4; }
      const readback = device.createBuffer({ size: Math.max(size, 4), usage: MAP_READ | COPY_DST });
      const encoder = device.createCommandEncoder();
      for (const b of chosen) encoder.copyBufferToBuffer(buffers[b.index], 0, readback, b.at, Math.ceil(b.bytes / 4) * 4);
      device.queue.submit([encoder.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const mapped = readback.getMappedRange(), result = {};
      for (const b of chosen) result[b.name] = new Float32Array(mapped.slice(b.at, b.at + b.bytes));
      readback.destroy();
      return result;
    }
    return {
      execute(program, values, read = true) {
        if (!built.has(program)) built.set(program, build(program));
        return built.get(program).then((execute) => execute(values, read));
      },
      read,
      async write(values) {
        for (const [name, data] of Object.entries(values)) device.queue.writeBuffer(buffers[writable(plan, name)], 0, data);
        await device.queue.onSubmittedWorkDone();
      },
    };
  }

  // WebAssembly: tinygrad's C kernels compiled to a module whose static arena holds every buffer at a fixed offset, and
  // one exported function per program. The weights are copied in once; a run writes the input, calls the program's
  // function and copies its outputs out. A program that is not in the first module is in the extras module, which
  // then takes over every program, the weights copied across as they are at that moment.
  async function loadWasm(wasmBytes, tensor, verify) {
    const { buffers: plan, programs } = PLAN.wasm;
    async function instantiate(bytes, file, what) {
      let instance;
      try { ({ instance } = await WebAssembly.instantiate(bytes, {})); }
      catch (e) {
        if (!hasSimd()) throw new Error(`${PLAN.name}: this browser cannot run the ${what} (it needs WebAssembly SIMD)`);
        throw fail(`the ${what} is not a valid WebAssembly module (${e.message})`);
      }
      const { memory, arena } = instance.exports, base = arena();
      const at = (i) => base + file.offsets[i];
      checkArena(plan.map((b, i) => ({ ...b, offset: file.offsets[i] })).filter((b) => b.offset !== null), memory.buffer.byteLength - base);
      return { exports: instance.exports, heap: () => new Uint8Array(memory.buffer), at, file };
    }
    let current = await instantiate(wasmBytes, PLAN.wasm.base, `WebAssembly module ${PLAN.name}.wasm`);
    const present = (instance, i) => instance.file.offsets[i] !== null;
    plan.forEach((b, i) => {
      if (b.kind === "weight" && tensor) current.heap().set(tensor(b.name, b.bytes), current.at(i));
      else if (b.kind === "state" && b.init && present(current, i)) current.heap().set(initialState(b), current.at(i));
    });
    let upgrading = null;
    async function upgrade() {
      upgrading ??= (async () => {
        const { sha256 } = PLAN.wasm.extras;
        const next = await instantiate(await bytesOf(fileUrl("extras.wasm", sha256), sha256, verify, `WebAssembly module ${PLAN.name}.extras.wasm`), PLAN.wasm.extras,
                                       `WebAssembly module ${PLAN.name}.extras.wasm`);
        plan.forEach((b, i) => {
          if (!present(next, i) || (b.kind !== "weight" && b.kind !== "state")) return;
          if (present(current, i)) next.heap().set(current.heap().subarray(current.at(i), current.at(i) + b.bytes), next.at(i));
          else if (b.init) next.heap().set(initialState(b), next.at(i));
        });
        current = next;
      })();
      upgrading.catch(() => { upgrading = null; });   // a download that failed is tried again next time
      return upgrading;
    }
    const inputs = PLAN.wasm.inputs, raw = (data) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const floats = (i) => new Float32Array(current.heap().buffer, current.at(i), plan[i].bytes / 4).slice();
    return {
      async execute(program, values) {
        if (!programs[program]) throw new Error(`${PLAN.name} has no program "${program}"`);
        if (!current.file.programs.includes(program)) await upgrade();
        for (const [name, data] of Object.entries(values)) current.heap().set(raw(data), current.at(inputs[program][name]));
        current.exports[programs[program]]();
        const result = {};
        plan.forEach((b, i) => { if (b.kind === "output" && b.program === program) result[b.name] = floats(i); });
        return result;
      },
      async read(names) {
        if (names.some((name) => !present(current, writable(plan, name)))) await upgrade();
        return Object.fromEntries(names.map((name) => [name, floats(writable(plan, name))]));
      },
      async write(values) {
        for (const [name, data] of Object.entries(values)) {
          const i = writable(plan, name);
          if (present(current, i)) current.heap().set(raw(data), current.at(i));
        }
      },
    };
  }

  async function load(backend, weights, { verify = true, wasm, madeHere = false } = {}) {
    if (backend === "wasm" && typeof WebAssembly !== "object") throw new Error(`${PLAN.name}: this browser has no WebAssembly`);
    // the module's file is fetched (or awaited) while the weights are still arriving
    const base = PLAN.wasm.base;
    const wasmBytes = backend === "wasm" ? bytesOf(wasm ?? fileUrl("wasm", base.sha256), base.sha256, verify, `WebAssembly module ${PLAN.name}.wasm`) : null;
    wasmBytes?.catch(() => {});   // reported below, after the weights' own errors
    const tensor = weights === null ? null : weightsOf(await bytesOf(weights, PLAN.weightsSha256, verify && !madeHere, `weights file ${PLAN.name}.safetensors`));
    const memory = backend === "wasm" ? await loadWasm(await wasmBytes, tensor, verify) : await loadWebGPU(backend, tensor, verify);
    const run = serialised(async (input, { taps = false } = {}) => {
      if (!taps) return (await memory.execute("forward", { input })).output;
      const out = await memory.execute("taps", { input });
      return { logits: out.output, taps: Object.fromEntries(PLAN.taps.map((t) => [t.name, out[t.buffer]])) };
    }, INPUT_LENGTH, PLAN.name);
    // a training step: a batch of PLAN[program].batch normalised images and their labels, and the learning rate
    const step = (program, images, labels, lr, read = true) => {
      const batch = PLAN[program]?.batch;
      if (!batch) return Promise.reject(new Error(`${PLAN.name} was exported without a "${program}" step`));
      if (!(images instanceof Float32Array) || images.length !== batch * INPUT_LENGTH || !(labels instanceof Int32Array) ||
          labels.length !== batch || !(lr >= 0)) {
        return Promise.reject(new TypeError(`${PLAN.name}: ${program}() takes Float32Array(${batch * INPUT_LENGTH}) images, Int32Array(${batch}) labels and a learning rate`));
      }
      const values = { images: images.slice(), labels: labels.slice(), lr: Float32Array.of(lr) };
      return run.queue(() => memory.execute(program, values, read));
    };
    run.train = (images, labels, lr) => step("train", images, labels, lr).then((out) => out.loss[0]);
    // read: false (WebGPU) leaves this step's loss on the GPU: the next step that reads waits for both
    run.fit = (images, labels, lr, { read = true } = {}) => step("fit", images, labels, lr, read)
      .then((out) => (out ? { loss: out.loss[0], correct: out.correct[0] } : null));
    run.evaluateSpec = PLAN.evaluate ?? null;
    run.evaluate = (images) => {
      const batch = PLAN.evaluate?.batch;
      if (!batch) return Promise.reject(new Error(`${PLAN.name} was exported without an "evaluate" program`));
      if (!(images instanceof Float32Array) || images.length !== batch * INPUT_LENGTH) {
        return Promise.reject(new TypeError(`${PLAN.name}: evaluate() takes Float32Array(${batch * INPUT_LENGTH}) images`));
      }
      const values = { images: images.slice() };
      return run.queue(() => memory.execute("evaluate", values)).then((out) => out.logits);
    };
    run.readWeights = (names = PLAN.train?.trains ?? []) => run.queue(() => memory.read(names));
    run.writeWeights = (weights) => run.queue(() => memory.write(weights));
    run.resetOptimizer = () => run.queue(() => memory.write(Object.fromEntries(
      PLAN.webgpu.buffers.filter((b) => b.kind === "state").map((b) => [b.name, b.init ? initialState(b) : new Uint8Array(b.bytes)]))));
    // a fresh start for "fit": every weight drawn as tinygrad draws it (PLAN.fit.init), from `seed`, and the optimizer's
    // state back to its start; returns the weights
    run.init = async (seed) => {
      if (!PLAN.fit) throw new Error(`${PLAN.name} was exported without a "fit" step`);
      const weights = initialWeights(PLAN.fit.init, weightSizes, seed);
      await run.writeWeights(weights);
      await run.resetOptimizer();
      return weights;
    };
    return run;
  }

  const weightSizes = Object.fromEntries(PLAN.webgpu.buffers.filter((b) => b.kind === "weight").map((b) => [b.name, b.bytes / 4]));

  /** The weights file's tensors as float32, with their shapes: for showing what the model learned. */
  async function tensors(weights, { verify = true, madeHere = false } = {}) {
    const tensor = weightsOf(await bytesOf(weights, PLAN.weightsSha256, verify && !madeHere, `weights file ${PLAN.name}.safetensors`));
    return (name) => {
      const shape = tensor.shape(name);
      if (!shape) throw fail(`the weights file has no tensor "${name}"`);
      return { shape, data: new Float32Array(tensor(name, 4 * shape.reduce((a, b) => a * b, 1)).slice().buffer) };
    };
  }

  return { name: PLAN.name, inputShape: PLAN.inputShape, outputLength: PLAN.outputLength, taps: PLAN.taps, train: PLAN.train ?? null,
           fit: PLAN.fit ?? null, weights: PLAN.webgpu.buffers.filter((b) => b.kind === "weight").map(({ name, shape }) => ({ name, shape })),
           backends: ["webgpu", "wasm"], load, tensors };
}
