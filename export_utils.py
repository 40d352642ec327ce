"""Export a trained tinygrad model to the browser: an ES module that runs it on WebGPU (WGSL kernels) or, where WebGPU
is missing or slower, on WebAssembly SIMD (tinygrad's C kernels compiled by clang); weights in safetensors; metadata.

  export_model(model, "mnist_mlp", "webapp", metadata={...})
    ->  webapp/mnist_mlp/{mnist_mlp.js, mnist_mlp.wasm, mnist_mlp.safetensors, mnist_mlp.json}

How: the model's batch-1 forward is captured twice with TinyJit, on tinygrad's WEBGPU device (Dawn) and on its CPU
device, and every captured kernel is rendered by tinygrad's own codegen: WGSL for the first, C for the second (compiled
to one wasm32 module whose static arena holds every buffer). Each kernel buffer is either the input, the output, a
weight (matched by identity against the state dict, so bound by name) or scratch memory; both backends read the same
safetensors file. The generated module builds everything once in `load`; `run` only writes the input, computes and
reads back.
"""
import contextlib, ctypes, hashlib, json, os, shutil, tempfile, time
from pathlib import Path
import numpy as np

class ExportError(Exception):
  """Why an export cannot be made, in one line."""

from training import MEAN, STD   # the normalisation training used: one source of truth, written into the metadata
INPUT_SHAPE, N_CLASSES = (1, 1, 28, 28), 10

def _point_tinygrad_at_dawn():
  """tinygrad finds Dawn through WEBGPU_PATH; default it to the library that the dawn-python wheel ships."""
  if os.environ.get("WEBGPU_PATH"): return
  try: import pydawn
  except ImportError: raise ExportError("exporting needs dawn-python (pip install dawn-python==0.3.0)") from None
  os.environ["WEBGPU_PATH"] = str(Path(pydawn.__file__).parent / "lib" / "libwebgpu_dawn_x86_64.so")
  os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())   # Mesa's Vulkan loader complains without one

NO_ADAPTER_HELP = "install a Vulkan driver (Debian: apt-get install libvulkan1 mesa-vulkan-drivers) and dawn-python==0.3.0"

def check_webgpu():
  """Refuse an adapter that does not compute: without a Vulkan driver Dawn hands out one that silently returns garbage."""
  _point_tinygrad_at_dawn()
  from tinygrad import Tensor
  a, b = np.arange(24, dtype=np.float32).reshape(4, 6) / 8, np.linspace(-1, 1, 18, dtype=np.float32).reshape(6, 3)
  try: got = (Tensor(a, device="WEBGPU") @ Tensor(b, device="WEBGPU")).relu().numpy()
  except Exception as e: raise ExportError(f"WebGPU is not available ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {NO_ADAPTER_HELP}") from None
  if not np.allclose(got, np.maximum(a @ b, 0), atol=1e-5):
    raise ExportError(f"the WebGPU adapter computes wrong results (a 4x6 @ 6x3 matmul came back wrong); {NO_ADAPTER_HELP}")

# ---------------------------------------------------------------- capture

def _capture(model, state:dict, device:str, beam:int|None=None) -> tuple[list[dict], list[dict], list[dict]]:
  """Kernels (unique programs), dispatches and buffers of the model's batch-1 forward on `device` (WEBGPU or CPU),
  with kernel choices from tinygrad's BEAM search of width `beam` (timed on this machine's `device`) if given."""
  from tinygrad.helpers import BEAM
  from tinygrad import Tensor, TinyJit, Device, Context
  from tinygrad.uop.ops import Ops
  from tinygrad.codegen import to_program
  from tinygrad.engine.realize import get_call_arg_uops

  # a fresh buffer per weight: loaded weights can be views into the file they came from
  for v in state.values(): v.replace(v.to(device).clone().realize())
  @TinyJit
  def forward(x:Tensor) -> Tensor: return model(x).realize()
  # capture even when the user trains with JIT=0; JIT=2 keeps kernels as single calls, never batched into a graph;
  # no memory planner, so every buffer is whole (the planner packs scratch into views of a shared one).
  # One CPU thread: the WebAssembly module runs each kernel once, in order (a page has no shared-memory threads on Pages)
  with Context(JIT=2, NUM_CPU_THREADS=1, NO_MEMORY_PLANNER=1, BEAM=BEAM.value if beam is None else beam):
    for _ in range(3): out = forward(Tensor.randn(*INPUT_SHAPE, device=device).realize())   # captured on the second call
  if forward.captured is None: raise ExportError("TinyJit captured nothing")
  output_buf = out.uop.base.realized
  weight_of = {id(t.uop.base.realized): name for name, t in state.items()}

  kernels, dispatches, buffers, index_of = [], [], [], {}
  kernel_index: dict[str, int] = {}
  def buffer_index(u) -> int:
    """Each distinct buffer once: the input (the JIT's PARAM), the output, a named weight, or scratch memory."""
    if u.op is Ops.PARAM: key, info = "input", {"name": "input", "kind": "input", "bytes": int(np.prod(u.shape)) * u.dtype.itemsize}
    else:
      b = u.buffer
      if b.offset or b.base is not b: raise ExportError(f"buffer views are not supported (a {b.dtype.name} buffer at offset {b.offset})")
      key = id(b)
      if key in index_of: return index_of[key]
      kind = "output" if b is output_buf else "weight" if key in weight_of else "scratch"
      name = weight_of.get(key) or (kind if kind == "output" else f"scratch{sum(x['kind'] == 'scratch' for x in buffers)}")
      info = {"name": name, "kind": kind, "bytes": b.nbytes, "dtype": b.dtype.name}
    if key not in index_of:
      index_of[key] = len(buffers)
      buffers.append(info)
    return index_of[key]

  for call in forward.captured.linear.toposort(gate=lambda x: x.op not in {Ops.SINK, Ops.PROGRAM}):
    if call.op is not Ops.CALL: continue
    if call.src[0].op not in {Ops.SINK, Ops.PROGRAM}: raise ExportError(f"the captured forward has a {call.src[0].op} step, not a kernel")
    prg = to_program(call.src[0], Device[device].renderer)
    info, source = prg.arg, next(s.arg for s in prg.src if s.op is Ops.SOURCE)
    if info.vars: raise ExportError(f"a {device} kernel takes runtime variables ({', '.join(v.arg.name for v in info.vars)}); only static shapes export")
    if "enable f16" in source or "__fp16" in source: raise ExportError("a kernel needs float16; export a float32 model")
    if source not in kernel_index:
      # tinygrad names kernels by shape, so two different kernels can share a name: keep C symbols unique
      taken = sum(k["function"] == info.function_name for k in kernels)
      kernel_index[source] = len(kernels)
      kernels.append({"name": info.function_name + (f"_{taken}" if taken else ""), "function": info.function_name, "source": source})
    dispatches.append({"kernel": kernel_index[source], "buffers": [buffer_index(u) for u in get_call_arg_uops(call)],
                       "workgroups": [int(g) for g in info.global_size]})
  return kernels, dispatches, buffers

# ---------------------------------------------------------------- the WebAssembly fallback

WASM_ALIGN = 16   # float4 loads

def wasm_layout(buffers:list[dict]) -> tuple[list[int], int]:
  """Byte offset of each buffer in the module's one static arena, and the arena's size."""
  offsets, end = [], 0
  for b in buffers:
    offsets.append(end)
    end += -(-b["bytes"] // WASM_ALIGN) * WASM_ALIGN
  return offsets, max(end, WASM_ALIGN)

def render_c(kernels:list[dict], dispatches:list[dict], buffers:list[dict]) -> str:
  """tinygrad's C kernels, an arena holding every buffer at a fixed offset, and `net()` calling the kernels in order."""
  offsets, arena = wasm_layout(buffers)
  lines = ["// generated by export_utils.py from tinygrad's C kernels; compiled with clang --target=wasm32 -msimd128"]
  for k in kernels:
    if "void " + k["function"] + "(" not in k["source"]: raise ExportError(f"cannot find kernel {k['function']} in its C source")
    lines.append(k["source"].replace("void " + k["function"] + "(", "static void " + k["name"] + "(", 1))
  lines += [f"static unsigned char arena[{arena}] __attribute__((aligned({WASM_ALIGN})));",
            '__attribute__((export_name("arena"))) unsigned char* arena_address(void) { return arena; }',
            '__attribute__((export_name("net"))) void net(void) {']
  lines += [f"  {kernels[d['kernel']]['name']}({', '.join(f'(void*)(arena + {offsets[b]})' for b in d['buffers'])});" for d in dispatches]
  return "\n".join(lines + ["}", ""])

WASM_HELP = "the WebAssembly fallback is compiled with clang and wasm-ld (Debian: apt-get install clang lld)"

def compile_wasm(c_source:str) -> bytes:
  import subprocess
  with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "model.wasm"
    cmd = ["clang", "--target=wasm32", "-O3", "-msimd128", "-mbulk-memory", "-nostdlib", "-ffreestanding", "-Wl,--no-entry",
           "-Wl,--strip-all", "-x", "c", "-", "-o", str(out)]
    try: proc = subprocess.run(cmd, input=c_source, capture_output=True, text=True, timeout=600)
    except FileNotFoundError: raise ExportError(f"clang is not installed; {WASM_HELP}") from None
    if proc.returncode != 0:
      why = next((l for l in proc.stderr.splitlines() if "error" in l), proc.stderr.strip()[:200])
      raise ExportError(f"compiling the WebAssembly module failed ({why.strip()}); {WASM_HELP}")
    return out.read_bytes()

# ---------------------------------------------------------------- writing

def _rename_exchange(a:Path, b:Path) -> bool:
  """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0
  except (AttributeError, OSError): return False

def _install(staged:Path, final:Path):
  """Put the staged folder where the page loads it; a reader sees the old model or the new one, never a mix."""
  if final.exists() and _rename_exchange(staged, final): shutil.rmtree(staged); return
  if final.exists():
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(old)
  else: os.rename(staged, final)

def _fsync_write(path:Path, data:bytes):
  with open(path, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())

def export_model(model, name:str, out_dir:str|os.PathLike="webapp", metadata:dict|None=None, wasm_beam:int=0) -> Path:
  """Write `out_dir/name/` with `name.js` (WebGPU ES module), `name.safetensors` (weights) and `name.json` (metadata).

  `model(x)` maps a normalised (1, 1, 28, 28) float32 batch to 10 logits. `metadata` should hold at least
  `test_accuracy`; the input contract, parameter count, weights hash and tinygrad version are added here.
  Writing is atomic: on any failure the previous export is left untouched.

  `wasm_beam` > 0 picks the WebAssembly kernels by tinygrad's BEAM search, timed natively on this CPU. Measured on the
  shipped models: the CNN runs 1.5x faster in Chromium, the MLP slower (native AVX2 timings do not always carry over
  to 128-bit wasm SIMD), so it is a per-model choice; it never touches the WebGPU kernels."""
  if not name.isidentifier(): raise ExportError(f"model name {name!r} must be an identifier (it names files and a JS module)")
  check_webgpu()
  from tinygrad import Tensor, dtypes
  from tinygrad.nn.state import get_state_dict
  from safetensors.numpy import save_file

  # export what the kernels read: float tensors; integer bookkeeping (batch-norm's step counter) never enters the forward
  state = {k: v for k, v in get_state_dict(model).items() if dtypes.is_float(v.dtype)}
  probe = Tensor(np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32))
  expected = model(probe.to(next(iter(state.values())).device)).numpy()
  originals = {k: v.uop for k, v in state.items()}
  captured = {}
  try:
    for device in ("WEBGPU", "CPU"):
      captured[device] = _capture(model, state, device, beam=wasm_beam if device == "CPU" else None)
      got = model(probe.to(device)).numpy()
      if not np.allclose(got, expected, atol=1e-3): raise ExportError(f"the {device} forward differs from the model's ({np.abs(got - expected).max():.2g})")
      bound = {b["name"] for b in captured[device][2] if b["kind"] == "weight"}
      if unbound := sorted(set(state) - bound): raise ExportError(f"weights not read by the exported forward: {', '.join(unbound)}")
    weights = {k: v.numpy() for k, v in state.items()}
  finally:
    for k, v in state.items(): v.uop = originals[k]
  kernels, dispatches, buffers = captured["WEBGPU"]
  wasm_kernels, wasm_dispatches, wasm_buffers = captured["CPU"]
  wasm = compile_wasm(render_c(wasm_kernels, wasm_dispatches, wasm_buffers))

  out_dir, final = Path(out_dir), Path(out_dir) / name
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f".{name}.*.tmp"): shutil.rmtree(stale, ignore_errors=True)   # left by a killed export
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
  except OSError as e: raise ExportError(f"output folder {out_dir} is not writable ({e.strerror})") from None
  try:
    # one metadata key: safetensors orders several arbitrarily, and the same weights should give the same file (and hash)
    save_file(weights, staged / f"{name}.safetensors", metadata={"model": name})
    weights_bytes = (staged / f"{name}.safetensors").read_bytes()
    sha = hashlib.sha256(weights_bytes).hexdigest()
    params = sum(int(np.prod(w.shape)) for w in weights.values())
    _fsync_write(staged / f"{name}.wasm", wasm)
    wasm_plan = {"sha256": hashlib.sha256(wasm).hexdigest(), "bytes": len(wasm), "kernels": len(wasm_kernels),
                 "buffers": [{**b, "offset": o} for b, o in zip(wasm_buffers, wasm_layout(wasm_buffers)[0])]}
    module = render_module(name, kernels, dispatches, buffers, sha, wasm_plan).encode()
    meta = {"name": name, **(metadata or {}), "params": (metadata or {}).get("params", params), "weights_sha256": sha,
            "weights_bytes": len(weights_bytes), "tinygrad_version": _version(),
            "input_shape": list(INPUT_SHAPE), "mean": MEAN, "std": STD,
            "input": {"layout": "NCHW float32", "foreground": "white", "background": "black", "digit_box_px": 20,
                      "centred_by": "centre of mass", "normalisation": "(pixel / 255 - mean) / std"},
            "output": {"length": N_CLASSES, "meaning": "raw logits for digits 0-9"},
            "kernels": len(kernels), "dispatches": len(dispatches), "backends": ["webgpu", "wasm"], "wasm_kernels": len(wasm_kernels), "wasm_beam": wasm_beam,
            # what the page asks for, by content: a changed file gets a new URL, so no cache can serve a stale one
            "files": {"module": _short(hashlib.sha256(module).hexdigest()), "weights": _short(sha), "wasm": _short(wasm_plan["sha256"])},
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _fsync_write(staged / f"{name}.js", module)
    _fsync_write(staged / f"{name}.json", (json.dumps(meta, indent=2) + "\n").encode())
    for f in staged.iterdir(): f.chmod(0o644)
    staged.chmod(0o755)   # mkdtemp makes it private; a web server must read it
    _install(staged, final)
  except OSError as e: raise ExportError(f"could not write {final} ({e.strerror or e})") from None
  finally: shutil.rmtree(staged, ignore_errors=True)
  return final

def _short(sha256:str) -> str: return sha256[:16]

def _version() -> str:
  from importlib.metadata import version
  return version("tinygrad")

# ---------------------------------------------------------------- the generated module

def render_module(name:str, kernels:list[dict], dispatches:list[dict], buffers:list[dict], weights_sha256:str, wasm:dict) -> str:
  plan = {"name": name, "weightsSha256": weights_sha256, "inputShape": list(INPUT_SHAPE), "outputLength": N_CLASSES,
          "kernels": [{"name": k["function"]} for k in kernels], "buffers": buffers, "dispatches": dispatches, "wasm": wasm}
  wgsl = ",\n".join(f"  /* {k['function']} */ `{k['source']}`" for k in kernels)
  return (f"// {name}: generated by export_utils.py from a tinygrad {_version()} model. Do not edit; re-export instead.\n"
          f"const PLAN = {json.dumps(plan, separators=(',', ':'))};\n\nconst WGSL = [\n{wgsl}\n];\n" + RUNTIME_JS)

RUNTIME_JS = r"""
const INPUT = PLAN.buffers.findIndex((b) => b.kind === "input");
const OUTPUT = PLAN.buffers.findIndex((b) => b.kind === "output");
const INPUT_LENGTH = PLAN.buffers[INPUT].bytes / 4;

function fail(message) { return new Error(`${PLAN.name}: ${message}`); }

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) return null;   // only in insecure contexts, where WebGPU is missing anyway
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// safetensors: 8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, then the data
function readSafetensors(bytes) {
  if (bytes.byteLength < 8) throw fail("weights file is truncated");
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (headerLength > bytes.byteLength - 8) throw fail("weights file is truncated or not safetensors");
  let header;
  try { header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))); }
  catch { throw fail("weights file header is not valid safetensors JSON"); }
  const data = bytes.subarray(8 + headerLength);
  return (name, byteLength) => {
    const entry = header[name];
    if (!entry) throw fail(`weights file has no tensor "${name}"`);
    const [begin, end] = entry.data_offsets;
    if (entry.dtype !== "F32" || end - begin !== byteLength || end > data.byteLength) throw fail(`tensor "${name}" in the weights file is corrupt`);
    return data.subarray(begin, end);
  };
}

async function fetchBytes(url, sha256, verify, what) {
  const response = await fetch(url);
  if (!response.ok) throw fail(`could not fetch ${url} (HTTP ${response.status})`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (verify) {
    const hash = await sha256Hex(bytes);
    if (hash !== null && hash !== sha256) throw fail(`${url} is not the ${what} this model was exported with (sha256 mismatch)`);
  }
  return bytes;
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
  if (error) throw fail(`WebGPU rejected the model: ${error.message}`);

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
async function loadWasm(tensor, verify) {
  if (typeof WebAssembly !== "object") throw fail("this browser has no WebAssembly");
  const url = new URL(`${PLAN.name}.wasm?v=${PLAN.wasm.sha256.slice(0, 16)}`, import.meta.url);
  const bytes = await fetchBytes(url, PLAN.wasm.sha256, verify, "WebAssembly module");
  let instance;
  try { ({ instance } = await WebAssembly.instantiate(bytes, {})); }
  catch (e) { throw fail(`this browser cannot run the WebAssembly module (it needs SIMD): ${e.message}`); }
  const { memory, arena, net } = instance.exports;
  const base = arena(), at = (b) => base + b.offset;
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

/** Load the weights onto a backend: a GPUDevice (WebGPU) or the string "wasm" (WebAssembly SIMD, on the CPU).
 *  Resolves to run(input: Float32Array(784)) -> Promise<Float32Array(10)>, the same for both. */
async function load(backend, weightsUrl, { verify = true } = {}) {
  const tensor = readSafetensors(await fetchBytes(weightsUrl, PLAN.weightsSha256, verify, "weights"));
  const infer = backend === "wasm" ? await loadWasm(tensor, verify) : await loadWebGPU(backend, tensor);
  // Runs share their input and output memory, so each waits for the one before it.
  let previous = Promise.resolve();
  return function run(input) {
    if (!(input instanceof Float32Array) || input.length !== INPUT_LENGTH) {
      return Promise.reject(new TypeError(`${PLAN.name}: run() takes a Float32Array(${INPUT_LENGTH})`));
    }
    const snapshot = input.slice();   // the caller may reuse its array while this run waits its turn
    const result = previous.then(() => infer(snapshot));
    previous = result.catch(() => {});
    return result;
  };
}

export default { name: PLAN.name, inputShape: PLAN.inputShape, outputLength: PLAN.outputLength, backends: ["webgpu", "wasm"], load };
"""
