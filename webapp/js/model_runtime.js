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
//
// A backend runs programs (PLAN.*.programs): "forward", "taps", and any the exporter adds. Their kernels and buffers are
// one set per backend: the weights are shared by name, so every program sees what another wrote into them. Programs
// whose kernels are not in this file (PLAN.webgpu.extras, PLAN.wasm.extras) are loaded when first run.

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
  tensor.shape = (name) => (name !== "__metadata__" && Array.isArray(header[name]?.shape) ? header[name].shape : null);
  return tensor;
  function tensor(name, float32Bytes) {
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
  }
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
  return function run(input, options = {}) {
    if (!(input instanceof Float32Array) || input.length !== inputLength) {
      return Promise.reject(new TypeError(`${name}: run() takes a Float32Array(${inputLength})`));
    }
    const snapshot = input.slice();   // the caller may reuse its array while this run waits its turn
    const result = previous.then(() => infer(snapshot, options));
    previous = result.catch(() => {});
    return result;
  };
}

export function createModel(PLAN, WGSL, moduleUrl) {
  const INPUT_LENGTH = PLAN.inputShape.reduce((a, b) => a * b, 1);
  const fail = (message) => new ModelFileError(`${PLAN.name}: ${message}`);
  const checked = new WeakMap();   // bytes -> promise of their check, so a file given to both backends is hashed once
  const fileUrl = (suffix, sha256) => new URL(`${PLAN.name}.${suffix}?v=${sha256.slice(0, 16)}`, moduleUrl);

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
      const cached = (name, n) => { if (!cache.has(name)) cache.set(name, tensor(name, n)); return cache.get(name); };
      cached.shape = tensor.shape;
      readers.set(bytes, cached);
    }
    return readers.get(bytes);
  }

  // the WGSL of the programs beyond the forward, checked like every other file, then imported
  let extraWGSL = null;
  function extrasWGSL(verify) {
    extraWGSL ??= (async () => {
      const { sha256 } = PLAN.webgpu.extras;
      const bytes = await bytesOf(fileUrl("extras.js", sha256), sha256, verify, "extras module");
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return (await import(`data:text/javascript;base64,${btoa(binary)}`)).WGSL;
    })();
    return extraWGSL;
  }

  // WebGPU: the buffers once, at load; each program's pipelines and bind groups when it first runs (the forward at
  // load). A run writes the input, encodes one pass, submits and reads the program's outputs back.
  async function loadWebGPU(device, tensor, verify) {
    const { kernels, buffers: plan, programs } = PLAN.webgpu;
    const { STORAGE, COPY_SRC, COPY_DST, UNIFORM, MAP_READ } = GPUBufferUsage;
    const usageOf = { input: STORAGE | COPY_DST, output: STORAGE | COPY_SRC, weight: STORAGE | COPY_SRC | COPY_DST, scratch: STORAGE };
    device.pushErrorScope("validation");
    const buffers = plan.map((b) => {
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
    const input = plan.findIndex((b) => b.kind === "input");
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
      return async function execute(x) {
        device.queue.writeBuffer(buffers[input], 0, x);
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        for (const step of steps) {
          pass.setPipeline(step.pipeline);
          pass.setBindGroup(0, step.bindGroup);
          pass.dispatchWorkgroups(...step.workgroups);
        }
        pass.end();
        for (const o of outputs) encoder.copyBufferToBuffer(buffers[o.index], 0, readback, o.at, Math.ceil(o.bytes / 4) * 4);
        device.queue.submit([encoder.finish()]);
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
    return (program, x) => {
      if (!built.has(program)) built.set(program, build(program));
      return built.get(program).then((execute) => execute(x));
    };
  }

  // WebAssembly: tinygrad's C kernels compiled to a module whose static arena holds every buffer at a fixed offset, and
  // one exported function per program. The weights are copied in once; a run writes the input, calls the program's
  // function and copies its outputs out. A program that is not in the first module is in the extras module, which
  // then takes over every program, the weights copied across as they are at that moment.
  async function loadWasm(wasmBytes, tensor, verify) {
    const { buffers: plan, programs } = PLAN.wasm;
    async function instantiate(bytes, file) {
      let instance;
      try { ({ instance } = await WebAssembly.instantiate(bytes, {})); }
      catch (e) { throw new Error(`${PLAN.name}: this browser cannot run the WebAssembly module (it needs SIMD): ${e.message}`); }
      const { memory, arena } = instance.exports, base = arena();
      const at = (i) => base + file.offsets[i];
      checkArena(plan.map((b, i) => ({ ...b, offset: file.offsets[i] })).filter((b) => b.offset !== null), memory.buffer.byteLength - base);
      return { exports: instance.exports, heap: () => new Uint8Array(memory.buffer), at, file };
    }
    let current = await instantiate(wasmBytes, PLAN.wasm.base);
    plan.forEach((b, i) => { if (b.kind === "weight") current.heap().set(tensor(b.name, b.bytes), current.at(i)); });
    let upgrading = null;
    async function upgrade() {
      upgrading ??= (async () => {
        const { sha256 } = PLAN.wasm.extras;
        const next = await instantiate(await bytesOf(fileUrl("extras.wasm", sha256), sha256, verify, "extras WebAssembly module"), PLAN.wasm.extras);
        plan.forEach((b, i) => {
          if (b.kind === "weight") next.heap().set(current.heap().subarray(current.at(i), current.at(i) + b.bytes), next.at(i));
        });
        current = next;
      })();
      return upgrading;
    }
    const input = plan.findIndex((b) => b.kind === "input");
    return async (program, x) => {
      if (!programs[program]) throw new Error(`${PLAN.name} has no program "${program}"`);
      if (!current.file.programs.includes(program)) await upgrade();
      new Float32Array(current.heap().buffer, current.at(input), x.length).set(x);
      current.exports[programs[program]]();
      const result = {};
      plan.forEach((b, i) => {
        if (b.kind === "output" && b.program === program) result[b.name] = new Float32Array(current.heap().buffer, current.at(i), b.bytes / 4).slice();
      });
      return result;
    };
  }

  async function load(backend, weights, { verify = true, wasm } = {}) {
    if (backend === "wasm" && typeof WebAssembly !== "object") throw new Error(`${PLAN.name}: this browser has no WebAssembly`);
    // the module's file is fetched (or awaited) while the weights are still arriving
    const base = PLAN.wasm.base;
    const wasmBytes = backend === "wasm" ? bytesOf(wasm ?? fileUrl("wasm", base.sha256), base.sha256, verify, "WebAssembly module") : null;
    wasmBytes?.catch(() => {});   // reported below, after the weights' own errors
    const tensor = weightsOf(await bytesOf(weights, PLAN.weightsSha256, verify, "weights file"));
    const execute = backend === "wasm" ? await loadWasm(await wasmBytes, tensor, verify) : await loadWebGPU(backend, tensor, verify);
    return serialised(async (x, { taps = false } = {}) => {
      if (!taps) return (await execute("forward", x)).output;
      const out = await execute("taps", x);
      return { logits: out.output, taps: Object.fromEntries(PLAN.taps.map((t) => [t.name, out[t.buffer]])) };
    }, INPUT_LENGTH, PLAN.name);
  }

  /** The weights file's tensors as float32, with their shapes: for showing what the model learned. */
  async function tensors(weights, { verify = true } = {}) {
    const tensor = weightsOf(await bytesOf(weights, PLAN.weightsSha256, verify, "weights file"));
    return (name) => {
      const shape = tensor.shape(name);
      if (!shape) throw fail(`the weights file has no tensor "${name}"`);
      return { shape, data: new Float32Array(tensor(name, 4 * shape.reduce((a, b) => a * b, 1)).slice().buffer) };
    };
  }

  return { name: PLAN.name, inputShape: PLAN.inputShape, outputLength: PLAN.outputLength, taps: PLAN.taps, backends: ["webgpu", "wasm"], load, tensors };
}
