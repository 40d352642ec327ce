// The WebGPU backend: tinygrad's WGSL kernels on the page's GPUDevice. GPU objects are made once: the buffers at load,
// each program's pipelines and bind groups when it first runs (the forward's at load); a run only writes the input,
// encodes one pass, submits and reads the program's outputs back.

import { ModelFileError } from "./fetch.js";
import { writable, outputsOf, initialState } from "./plan.js";

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

/** The backend's memory ({ execute, read, write }) for `model` on `device`, its weights from `tensor` (or none). */
export async function webgpuBackend(model, device, tensor) {
  const { buffers: layout, webgpu: { dispatches } } = model.plan;
  const used = new Set(Object.values(dispatches).flat().flatMap((d) => d.buffers));
  device.pushErrorScope("validation");
  const buffers = layout.map((b, i) => (used.has(i) || b.kind === "weight" || b.kind === "state") && createBuffer(device, `${model.name}/${b.name}`, b,
    b.kind === "weight" ? tensor?.(b.name, b.bytes) : b.kind === "state" ? initialState(b) : null));
  // tinygrad's WGSL reads INFINITY from a uniform at binding 0 (WGSL has no infinity literal)
  const infinity = createBuffer(device, `${model.name}/infinity`, { kind: "uniform", bytes: 4 }, new Uint8Array(Float32Array.of(Infinity).buffer));
  const pipelines = new Map(), built = new Map();
  const build = (program) => {
    if (!dispatches[program]) return Promise.reject(new Error(`${model.name} has no program "${program}"`));
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
  const named = (name) => ({ ...layout[writable(model.plan, name)], buffer: buffers[writable(model.plan, name)] });
  return {
    execute: (program, values, read = true) => build(program).then((execute) => execute(values, read)),
    read: (names) => readBuffers(device, names.map(named)),
    async write(values) {
      for (const [name, data] of Object.entries(values)) device.queue.writeBuffer(named(name).buffer, 0, data);
      await device.queue.onSubmittedWorkDone();
    },
  };
}

/** A kernel's compute pipeline, made once (asynchronously) from its WGSL, which comes from the file the plan names. */
function pipelineOf(model, device, pipelines, k) {
  if (!pipelines.has(k)) {
    const { name, file } = model.plan.webgpu.kernels[k];
    const n = Object.values(model.plan.webgpu.dispatches).flat().find((d) => d.kernel === k).buffers.length;
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
  const { plan } = model, dispatches = plan.webgpu.dispatches[program];
  const made = new Map(await Promise.all([...new Set(dispatches.map((d) => d.kernel))].map(async (k) => [k, await pipeline(k)])));
  device.pushErrorScope("validation");
  const steps = dispatches.map((d) => ({
    pipeline: made.get(d.kernel).pipeline, workgroups: d.workgroups,
    bindGroup: device.createBindGroup({ layout: made.get(d.kernel).layout, entries: [{ binding: 0, resource: { buffer: infinity } },
      ...d.buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: buffers[b] } }))] }),
  }));
  const outputs = outputsOf(plan, program).map((i) => ({ ...plan.buffers[i], buffer: buffers[i] }));
  const readback = device.createBuffer({ label: `${model.name}/${program}/readback`, size: Math.max(4, outputs.reduce((n, b) => n + Math.ceil(b.bytes / 4) * 4, 0)),
                                         usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const error = await device.popErrorScope();
  if (error) throw new Error(`${model.name}: WebGPU rejected the ${program} program: ${error.message}`);
  const inputs = plan.inputs[program];
  // read: false submits without waiting for the results (a training step whose loss nobody looks at)
  return async function execute(values, read) {
    for (const [name, data] of Object.entries(values)) device.queue.writeBuffer(buffers[inputs[name]], 0, data);
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
