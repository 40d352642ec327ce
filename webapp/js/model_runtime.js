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

/** A model file that is missing, truncated, corrupt or not the one the model was exported with: no backend can run it.
 *  (By name, not class: every generated module embeds its own copy of this file.) */
export class ModelFileError extends Error {
  constructor(message) { super(message); this.name = "ModelFileError"; }
}

export async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) return null;   // only in insecure contexts, where WebGPU is missing anyway
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
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

/** safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the data.
 *  Returns tensor(name, float32Bytes) -> the tensor as float32 bytes (F32 as stored, F16 widened). */
export function readSafetensors(bytes, what = "weights file") {
  const fail = (m) => new ModelFileError(`${what} ${m}`);
  if (bytes.byteLength < 8) throw fail("is truncated");
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.byteLength - 8)) throw fail("is truncated or not safetensors");
  let header;
  try { header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(headerLength)))); }
  catch { throw fail("has a header that is not valid safetensors JSON"); }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw fail("has a header that is not a JSON object");
  const data = bytes.subarray(8 + Number(headerLength));
  return function tensor(name, float32Bytes) {
    const entry = header[name];
    if (!entry || name === "__metadata__") throw fail(`has no tensor "${name}"`);
    const [begin, end] = Array.isArray(entry.data_offsets) ? entry.data_offsets : [];
    const itemSize = { F32: 4, F16: 2 }[entry.dtype];
    if (!itemSize || !Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end > data.byteLength ||
        (end - begin) * (4 / itemSize) !== float32Bytes) throw fail(`has a corrupt tensor "${name}"`);
    const raw = data.subarray(begin, end);
    if (itemSize === 4) return raw;
    const halves = new Uint16Array(raw.slice().buffer);   // a copy: the data may not be 2-byte aligned
    return new Uint8Array(halfToFloat32(halves).buffer);
  };
}

/** Byte offsets of the buffers in one WebAssembly arena must not overlap and must stay inside it. */
export function checkArena(buffers, arenaBytes, align = 16) {
  const spans = buffers.map((b) => [b.offset, b.offset + b.bytes, b.name]).sort((a, b) => a[0] - b[0]);
  spans.forEach(([begin, end, name], i) => {
    if (begin % align || begin < 0 || end > arenaBytes) throw new ModelFileError(`buffer ${name} lies outside the arena or is misaligned`);
    if (i && begin < spans[i - 1][1]) throw new ModelFileError(`buffers ${spans[i - 1][2]} and ${name} overlap`);
  });
}

/** Runs share their input and output memory, so each waits for the one before it; the input is checked and copied. */
export function serialised(infer, inputLength, name) {
  let previous = Promise.resolve();
  return function run(input) {
    if (!(input instanceof Float32Array) || input.length !== inputLength) {
      return Promise.reject(new TypeError(`${name}: run() takes a Float32Array(${inputLength})`));
    }
    const snapshot = input.slice();   // the caller may reuse its array while this run waits its turn
    const result = previous.then(() => infer(snapshot));
    previous = result.catch(() => {});
    return result;
  };
}

export function createModel(PLAN, WGSL, moduleUrl) {
  const INPUT = PLAN.buffers.findIndex((b) => b.kind === "input");
  const OUTPUT = PLAN.buffers.findIndex((b) => b.kind === "output");
  const INPUT_LENGTH = PLAN.buffers[INPUT].bytes / 4;
  const fail = (message) => new ModelFileError(`${PLAN.name}: ${message}`);
  const checked = new WeakMap();   // bytes -> promise of their check, so a file given to both backends is hashed once

  async function bytesOf(source, sha256, verify, what) {
    let bytes = await source;
    if (typeof bytes === "string" || bytes instanceof URL) {
      const response = await fetch(bytes);
      if (!response.ok) throw fail(`could not fetch ${bytes} (HTTP ${response.status})`);
      bytes = new Uint8Array(await response.arrayBuffer());
    }
    if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`${PLAN.name}: the ${what} must be a URL or a Uint8Array`);
    if (!verify) return bytes;
    if (!checked.has(bytes)) {
      checked.set(bytes, sha256Hex(bytes).then((hash) => {
        if (hash !== null && hash !== sha256) throw fail(`the ${what} is not the one this model was exported with (sha256 mismatch)`);
      }));
    }
    await checked.get(bytes);
    return bytes;
  }

  const readers = new WeakMap();   // bytes -> decoded tensors, shared by both backends
  function weightsOf(bytes) {
    if (!readers.has(bytes)) {
      const tensor = readSafetensors(bytes, `${PLAN.name}: weights file`), cache = new Map();
      readers.set(bytes, (name, n) => { if (!cache.has(name)) cache.set(name, tensor(name, n)); return cache.get(name); });
    }
    return readers.get(bytes);
  }

  // WebGPU: every GPU object is created here, once; a run writes the input, encodes one pass, submits and reads back
  async function loadWebGPU(device, tensor) {
    device.pushErrorScope("validation");
    const { STORAGE, COPY_SRC, COPY_DST, UNIFORM, MAP_READ } = GPUBufferUsage;
    const usageOf = { input: STORAGE | COPY_DST, output: STORAGE | COPY_SRC, weight: STORAGE, scratch: STORAGE };
    const buffers = PLAN.buffers.map((b) => {
      const size = Math.max(4, Math.ceil(b.bytes / 4) * 4);
      const buffer = device.createBuffer({ label: `${PLAN.name}/${b.name}`, size, usage: usageOf[b.kind], mappedAtCreation: b.kind === "weight" });
      if (b.kind === "weight") {
        new Uint8Array(buffer.getMappedRange()).set(tensor(b.name, b.bytes));
        buffer.unmap();
      }
      return buffer;
    });
    // tinygrad's WGSL reads INFINITY from a uniform at binding 0 (WGSL has no infinity literal)
    const infinity = device.createBuffer({ size: 4, usage: UNIFORM, mappedAtCreation: true });
    new Float32Array(infinity.getMappedRange())[0] = Infinity;
    infinity.unmap();
    const readback = device.createBuffer({ label: `${PLAN.name}/readback`, size: PLAN.buffers[OUTPUT].bytes, usage: MAP_READ | COPY_DST });

    const storageCount = PLAN.kernels.map((_, k) => PLAN.dispatches.find((d) => d.kernel === k).buffers.length);
    const layouts = storageCount.map((n) => device.createBindGroupLayout({
      entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
        ...Array.from({ length: n }, (_, i) => ({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } }))],
    }));
    const pipelines = await Promise.all(PLAN.kernels.map((k, i) => device.createComputePipelineAsync({
      label: `${PLAN.name}/${k.name}`,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layouts[i]] }),
      compute: { module: device.createShaderModule({ code: WGSL[i] }), entryPoint: k.name },
    })));
    const steps = PLAN.dispatches.map((d) => ({
      pipeline: pipelines[d.kernel],
      workgroups: d.workgroups,
      bindGroup: device.createBindGroup({
        layout: layouts[d.kernel],
        entries: [{ binding: 0, resource: { buffer: infinity } }, ...d.buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: buffers[b] } }))],
      }),
    }));
    const error = await device.popErrorScope();
    if (error) throw new Error(`${PLAN.name}: WebGPU rejected the model: ${error.message}`);

    return async function infer(input) {
      device.queue.writeBuffer(buffers[INPUT], 0, input);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      for (const step of steps) {
        pass.setPipeline(step.pipeline);
        pass.setBindGroup(0, step.bindGroup);
        pass.dispatchWorkgroups(...step.workgroups);
      }
      pass.end();
      encoder.copyBufferToBuffer(buffers[OUTPUT], 0, readback, 0, readback.size);
      device.queue.submit([encoder.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const logits = new Float32Array(readback.getMappedRange().slice(0, PLAN.outputLength * 4));
      readback.unmap();
      return logits;
    };
  }

  // WebAssembly: tinygrad's C kernels compiled to one module whose static arena holds every buffer at a fixed offset;
  // the weights are copied in once, and a run writes the input, calls net() and copies the logits out
  async function loadWasm(wasmBytes, tensor) {
    let instance;
    try { ({ instance } = await WebAssembly.instantiate(wasmBytes, {})); }
    catch (e) { throw new Error(`${PLAN.name}: this browser cannot run the WebAssembly module (it needs SIMD): ${e.message}`); }
    const { memory, arena, net } = instance.exports;
    const base = arena(), at = (b) => base + b.offset;
    checkArena(PLAN.wasm.buffers, memory.buffer.byteLength - base);
    const heap = new Uint8Array(memory.buffer);
    for (const b of PLAN.wasm.buffers) if (b.kind === "weight") heap.set(tensor(b.name, b.bytes), at(b));
    const input = new Float32Array(memory.buffer, at(PLAN.wasm.buffers.find((b) => b.kind === "input")), INPUT_LENGTH);
    const output = new Float32Array(memory.buffer, at(PLAN.wasm.buffers.find((b) => b.kind === "output")), PLAN.outputLength);
    return async function infer(x) {
      input.set(x);
      net();
      return output.slice();
    };
  }

  async function load(backend, weights, { verify = true, wasm } = {}) {
    if (backend === "wasm" && typeof WebAssembly !== "object") throw new Error(`${PLAN.name}: this browser has no WebAssembly`);
    // the module's file is fetched (or awaited) while the weights are still arriving
    const wasmBytes = backend === "wasm"
      ? bytesOf(wasm ?? new URL(`${PLAN.name}.wasm?v=${PLAN.wasm.sha256.slice(0, 16)}`, moduleUrl), PLAN.wasm.sha256, verify, "WebAssembly module")
      : null;
    wasmBytes?.catch(() => {});   // reported below, after the weights' own errors
    const tensor = weightsOf(await bytesOf(weights, PLAN.weightsSha256, verify, "weights file"));
    const infer = backend === "wasm" ? await loadWasm(await wasmBytes, tensor) : await loadWebGPU(backend, tensor);
    return serialised(infer, INPUT_LENGTH, PLAN.name);
  }

  return { name: PLAN.name, inputShape: PLAN.inputShape, outputLength: PLAN.outputLength, backends: ["webgpu", "wasm"], load };
}
