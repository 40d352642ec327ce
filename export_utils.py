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
import ctypes, hashlib, json, os, shutil, tempfile, time
from typing import NamedTuple
from pathlib import Path
import numpy as np

class ExportError(Exception):
  """Why an export cannot be made, in one line."""

from mnist_data import INPUT_SHAPE, N_CLASSES, input_contract   # the input contract, written into every model's metadata

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

# the tinygrad device whose renderer writes each backend's kernels: WGSL on WEBGPU, C (compiled to wasm) on CPU
BACKEND_DEVICES = {"webgpu": "WEBGPU", "wasm": "CPU"}

class Captured(NamedTuple):
  kernels: list[dict]      # unique programs: {name, function, source}
  dispatches: list[dict]   # in order: {kernel, buffers (indices), workgroups}
  buffers: list[dict]      # {name, kind: input | output | weight | scratch, bytes, dtype}

def capture(step, inputs:dict[str, np.ndarray], state:dict, wasm_beam:int=0) -> dict[str, Captured]:
  """What `step(*inputs) -> {name: Tensor}` computes, captured with TinyJit for each backend in BACKEND_DEVICES.

  `inputs` are example values, in the order `step` takes them: captured buffers of kind "input" carry their names, and
  each backend's outputs for these values must match what `step` gives on the state's own device. `state` names the
  tensors `step` reads beyond its inputs (the weights): each becomes a buffer of kind "weight" with that name. Every
  other buffer is an output (named as in the dict `step` returns) or scratch memory. `wasm_beam` > 0 picks the wasm
  kernels by tinygrad's BEAM search of that width, timed on this machine's CPU."""
  from tinygrad import Tensor
  home = next(iter(state.values())).device
  expected = {k: v.numpy() for k, v in step(*(Tensor(a, device=home) for a in inputs.values())).items()}
  originals = {k: v.uop for k, v in state.items()}
  captured = {}
  try:
    for backend, device in BACKEND_DEVICES.items():
      captured[backend], got = _capture_on(device, step, inputs, state, beam=wasm_beam if backend == "wasm" else None)
      for k, want in expected.items():
        if not np.allclose(got[k], want, atol=1e-3):
          raise ExportError(f"the {device} capture's {k} differs from the model's ({np.abs(got[k] - want).max():.2g})")
      bound = {b["name"] for b in captured[backend].buffers if b["kind"] == "weight"}
      if unbound := sorted(set(state) - bound): raise ExportError(f"weights not read by the exported step: {', '.join(unbound)}")
  finally:
    for k, v in state.items(): v.uop = originals[k]
  return captured

def _capture_on(device:str, step, inputs:dict[str, np.ndarray], state:dict, beam:int|None) -> tuple[Captured, dict]:
  """One device's capture, and its outputs for the example inputs. Leaves `state` on `device` (capture restores it)."""
  from tinygrad.helpers import BEAM
  from tinygrad import Tensor, TinyJit, Device, Context
  from tinygrad.uop.ops import Ops
  from tinygrad.codegen import to_program
  from tinygrad.engine.realize import get_call_arg_uops

  # a fresh buffer per weight: loaded weights can be views into the file they came from
  for v in state.values(): v.replace(v.to(device).clone().realize())
  @TinyJit
  def jitted(*args:Tensor) -> dict: return {k: v.realize() for k, v in step(*args).items()}
  rng = np.random.default_rng(0)
  def random_like(a:np.ndarray) -> Tensor:
    values = rng.standard_normal(a.shape) if a.dtype.kind == "f" else rng.integers(0, 10, a.shape)
    return Tensor(values.astype(a.dtype), device=device).realize()
  # capture even when the user trains with JIT=0; JIT=2 keeps kernels as single calls, never batched into a graph;
  # no memory planner, so every buffer is whole (the planner packs scratch into views of a shared one).
  # One CPU thread: the WebAssembly module runs each kernel once, in order (a page has no shared-memory threads on Pages)
  with Context(JIT=2, NUM_CPU_THREADS=1, NO_MEMORY_PLANNER=1, BEAM=BEAM.value if beam is None else beam):
    for _ in range(3): outs = jitted(*(random_like(a) for a in inputs.values()))   # captured on the second call
    got = {k: v.numpy() for k, v in jitted(*(Tensor(a, device=device).realize() for a in inputs.values())).items()}
  if jitted.captured is None: raise ExportError("TinyJit captured nothing")
  output_of = {id(t.uop.base.realized): k for k, t in outs.items()}
  weight_of = {id(t.uop.base.realized): k for k, t in state.items()}
  input_names = list(inputs)

  kernels, dispatches, buffers, index_of = [], [], [], {}
  kernel_index: dict[str, int] = {}
  def buffer_index(u) -> int:
    """Each distinct buffer once: an input (a PARAM of the JIT), an output, a named weight, or scratch memory."""
    if u.op is Ops.PARAM:
      name = input_names[u.arg.slot]
      key, info = ("input", name), {"name": name, "kind": "input", "bytes": int(np.prod(u.shape)) * u.dtype.itemsize, "dtype": u.dtype.name}
    else:
      b = u.buffer
      if b.offset or b.base is not b: raise ExportError(f"buffer views are not supported (a {b.dtype.name} buffer at offset {b.offset})")
      key = id(b)
      if key in index_of: return index_of[key]
      kind = "output" if key in output_of else "weight" if key in weight_of else "scratch"
      name = output_of.get(key) or weight_of.get(key) or f"scratch{sum(x['kind'] == 'scratch' for x in buffers)}"
      info = {"name": name, "kind": kind, "bytes": b.nbytes, "dtype": b.dtype.name}
    if key not in index_of:
      index_of[key] = len(buffers)
      buffers.append(info)
    return index_of[key]

  for call in jitted.captured.linear.toposort(gate=lambda x: x.op not in {Ops.SINK, Ops.PROGRAM}):
    if call.op is not Ops.CALL: continue
    if call.src[0].op not in {Ops.SINK, Ops.PROGRAM}: raise ExportError(f"the captured step has a {call.src[0].op} step, not a kernel")
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
  if missing := set(outs) - {b["name"] for b in buffers if b["kind"] == "output"}: raise ExportError(f"no kernel writes {', '.join(sorted(missing))}")
  return Captured(kernels, dispatches, buffers), got

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

# ---------------------------------------------------------------- stored precision

WEIGHT_DTYPES = ("float16", "float32")

def round_weights(model, dtype:str="float16") -> int:
  """Round the model's float weights in place to what the weights file stores, so that the accuracy measured next is
  the shipped model's. float16 halves the download; the kernels still compute in float32. A tensor whose values do not
  fit in float16 is left in float32. Returns how many values changed."""
  if dtype == "float32": return 0
  from tinygrad import Tensor, dtypes
  from tinygrad.nn.state import get_state_dict
  changed = 0
  for t in get_state_dict(model).values():
    if not dtypes.is_float(t.dtype): continue
    value = t.numpy()
    rounded = value.astype(np.float16)
    if not np.isfinite(rounded).all(): continue
    changed += int((rounded.astype(np.float32) != value).sum())
    t.assign(Tensor(rounded.astype(np.float32), device=t.device, dtype=t.dtype)).realize()
  return changed

def _stored(value:np.ndarray, dtype:str, name:str) -> np.ndarray:
  """The array written to the weights file: float16 where the weights are float16-exact (see round_weights)."""
  if dtype == "float32": return value
  half = value.astype(np.float16)
  if not np.isfinite(half).all(): return value
  if not np.array_equal(half.astype(np.float32), value):
    raise ExportError(f"{name} is not float16-exact: call round_weights(model) before measuring the accuracy you export")
  return half

def export_model(model, name:str, out_dir:str|os.PathLike="webapp", metadata:dict|None=None, wasm_beam:int=0,
                 weights_dtype:str="float16") -> Path:
  """Write `out_dir/name/` with `name.js` (WebGPU ES module), `name.safetensors` (weights) and `name.json` (metadata).

  `model(x)` maps a normalised (1, 1, 28, 28) float32 batch to 10 logits. `metadata` should hold at least
  `test_accuracy`; the input contract, parameter count, weights hash and tinygrad version are added here.
  Writing is atomic: on any failure the previous export is left untouched.

  `weights_dtype` float16 stores the weights in half the bytes; the model must already hold float16-exact weights
  (round_weights), so that the accuracy in `metadata` is the accuracy of exactly what is shipped.

  `wasm_beam` > 0 picks the WebAssembly kernels by tinygrad's BEAM search, timed natively on this CPU. Measured on the
  shipped models: the CNN runs 1.5x faster in Chromium, the MLP slower (native AVX2 timings do not always carry over
  to 128-bit wasm SIMD), so it is a per-model choice; it never touches the WebGPU kernels."""
  if not name.isidentifier(): raise ExportError(f"model name {name!r} must be an identifier (it names files and a JS module)")
  check_webgpu()
  from tinygrad import dtypes
  from tinygrad.nn.state import get_state_dict
  from safetensors.numpy import save_file

  if weights_dtype not in WEIGHT_DTYPES: raise ExportError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}")
  # export what the kernels read: float tensors; integer bookkeeping (batch-norm's step counter) never enters the forward
  state = {k: v for k, v in get_state_dict(model).items() if dtypes.is_float(v.dtype)}
  weights = {k: _stored(v.numpy(), weights_dtype, k) for k, v in state.items()}
  probe = np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32)
  captured = capture(lambda x: {"output": model(x)}, {"input": probe}, state, wasm_beam=wasm_beam)
  kernels, dispatches, buffers = captured["webgpu"]
  wasm_kernels, wasm_dispatches, wasm_buffers = captured["wasm"]
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
            "weights_bytes": len(weights_bytes), "weights_dtype": sorted({str(w.dtype) for w in weights.values()}),
            "tinygrad_version": _version(),
            **input_contract(),
            "kernels": len(kernels), "dispatches": len(dispatches), "backends": ["webgpu", "wasm"], "wasm_kernels": len(wasm_kernels), "wasm_beam": wasm_beam,
            # what the page asks for, by content: a changed file gets a new URL, so no cache can serve a stale one
            "files": {"module": _short(hashlib.sha256(module).hexdigest()), "weights": _short(sha), "wasm": _short(wasm_plan["sha256"])},
            "file_bytes": {"module": len(module), "weights": len(weights_bytes), "wasm": len(wasm)},
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

RUNTIME_JS = Path(__file__).resolve().parent / "webapp" / "js" / "model_runtime.js"   # real JavaScript, tested by node --test

def render_module(name:str, kernels:list[dict], dispatches:list[dict], buffers:list[dict], weights_sha256:str, wasm:dict) -> str:
  plan = {"name": name, "weightsSha256": weights_sha256, "inputShape": list(INPUT_SHAPE), "outputLength": N_CLASSES,
          "kernels": [{"name": k["function"]} for k in kernels], "buffers": buffers, "dispatches": dispatches, "wasm": wasm}
  wgsl = ",\n".join(f"  /* {k['function']} */ `{k['source']}`" for k in kernels)
  return (f"// {name}: generated by export_utils.py from a tinygrad {_version()} model. Do not edit; re-export instead.\n"
          f"const PLAN = {json.dumps(plan, separators=(',', ':'))};\n\nconst WGSL = [\n{wgsl}\n];\n\n"
          f"// ---- the runtime, embedded from webapp/js/model_runtime.js\n{RUNTIME_JS.read_text()}\n"
          "export default createModel(PLAN, WGSL, import.meta.url);\n")
