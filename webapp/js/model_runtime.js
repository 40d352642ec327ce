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
    const present = (instance, i) => instance.file.offsets[i] !== null;
    plan.forEach((b, i) => {
      if (b.kind === "weight" && tensor) current.heap().set(tensor(b.name, b.bytes), current.at(i));
      else if (b.kind === "state" && b.init && present(current, i)) current.heap().set(initialState(b), current.at(i));
    });
    let upgrading = null;
    async function upgrade() {
      upgrading ??= (async () => {
        const { sha256 } = PLAN.wasm.extras;
        const next = await instantiate(await bytesOf(fileUrl("extras.wasm", sha256), sha256, verify, "extras WebAssembly module"), PLAN.wasm.extras);
        plan.forEach((b, i) => {
          if (!present(next, i) || (b.kind !== "weight" && b.kind !== "state")) return;
          if (present(current, i)) next.heap().set(current.heap().subarray(current.at(i), current.at(i) + b.bytes), next.at(i));
          else if (b.init) next.heap().set(initialState(b), next.at(i));
        });
        current = next;
      })();
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
    const wasmBytes = backend === "wasm" ? bytesOf(wasm ?? fileUrl("wasm", base.sha256), base.sha256, verify, "WebAssembly module") : null;
    wasmBytes?.catch(() => {});   // reported below, after the weights' own errors
    const tensor = weights === null ? null : weightsOf(await bytesOf(weights, PLAN.weightsSha256, verify && !madeHere, "weights file"));
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
    const tensor = weightsOf(await bytesOf(weights, PLAN.weightsSha256, verify && !madeHere, "weights file"));
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
