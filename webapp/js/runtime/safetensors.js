// The weights file: safetensors, read exactly as its reference reader decides it, float16 widened to the float32 the
// kernels compute in; and written, for a model trained in the page (readable by Python's safetensors, so tinygrad can
// LOAD= it).

import { ModelFileError } from "./fetch.js";

// float16 -> float32: the weights are stored as float16 (half the download), the kernels compute in float32, so the GPU
// needs no half-precision feature. A large tensor goes through a table of all 65 536 halves; a small one (an int8
// model's scales and biases) is widened one by one, since building the table would cost the first answer ~10 ms.
const half = (h) => {
  const sign = h & 0x8000 ? -1 : 1, exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
  return sign * (exponent === 0 ? fraction * 2 ** -24 : exponent === 31 ? (fraction ? NaN : Infinity) : (1 + fraction / 1024) * 2 ** (exponent - 15));
};
let halfTable = null;
const TABLE_FROM = 16384;   // halves: past this, the table is the cheaper way

export function halfToFloat32(halves) {
  const out = new Float32Array(halves.length);
  if (halves.length < TABLE_FROM) { for (let i = 0; i < halves.length; i++) out[i] = half(halves[i]); return out; }
  if (!halfTable) { halfTable = new Float32Array(65536); for (let h = 0; h < 65536; h++) halfTable[h] = half(h); }
  for (let i = 0; i < halves.length; i++) out[i] = halfTable[halves[i]];
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

/** int8 weights: the scales of tensor `name` (one per output channel, float32) are tensor `name + SCALE` of the same file
 *  (the exporter's evaluation.py SCALE). */
export const SCALE = ".scale";

/** The weights in a safetensors file (parseSafetensors). Returns tensor(name, float32Bytes) -> the tensor as float32
 *  bytes (F32 as stored, F16 widened, I8 times its per-channel scales), checked to hold `float32Bytes`;
 *  tensor.shape(name) -> its shape or null. */
export function readSafetensors(bytes, what = "weights file") {
  const { tensors, dataStart } = parseSafetensors(bytes, what), fail = (m) => new ModelFileError(`${what} ${m}`);
  const raw = (entry) => bytes.slice(dataStart + entry.begin, dataStart + entry.end);   // a copy: the data may not be aligned
  tensor.shape = (name) => tensors.get(name)?.shape ?? null;
  return tensor;
  function tensor(name, float32Bytes) {
    const entry = tensors.get(name);
    if (!entry) throw fail(`has no tensor "${name}"`);
    const itemSize = { F32: 4, F16: 2, I8: 1 }[entry.dtype];
    if (!itemSize || (entry.end - entry.begin) * (4 / itemSize) !== float32Bytes) throw fail(`has a corrupt tensor "${name}"`);
    if (itemSize === 4) return bytes.subarray(dataStart + entry.begin, dataStart + entry.end);
    if (itemSize === 2) return new Uint8Array(halfToFloat32(new Uint16Array(raw(entry).buffer)).buffer);
    return new Uint8Array(dequantized(name, new Int8Array(raw(entry).buffer), entry.shape).buffer);
  }
  /** q times its channel's scale, in float32 (each product rounded once, as the exporter's numpy does). */
  function dequantized(name, q, shape) {
    const scales = tensors.get(name + SCALE), channels = shape[0];
    if (scales?.dtype !== "F32" || scales.shape.length !== 1 || scales.shape[0] !== channels) throw fail(`has no per-channel scales for "${name}"`);
    const scale = new Float32Array(raw(scales).buffer), out = new Float32Array(q.length), per = q.length / channels;
    if (!scale.every((s) => Number.isFinite(s) && s > 0)) throw fail(`has scales for "${name}" that are not positive numbers`);
    for (let c = 0, i = 0; c < channels; c++) for (const s = scale[c], end = i + per; i < end; i++) out[i] = q[i] * s;
    return out;
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
