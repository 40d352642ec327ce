"""A model's plan, as data: for each backend the buffers (by name and kind), each program's dispatches, and which file
holds the code of each kernel. One runtime (webapp/js/model_runtime.js) runs any plan; no code is generated for a model.

The code is split by when the page needs it: the forward's (and the programs that use only its kernels: the taps) in
the files a first visit loads, <name>.wasm and <name>.wgsl.json; every other program's in <name>.extras.wasm (a module
with every program) and <name>.extras.wgsl.json, loaded when first run. Each WebAssembly module comes twice, plain and
with relaxed SIMD's fused multiply-add (<name>.fma.wasm, ...), for the browsers that validate it; <name>.threads.wasm
(and .threads.fma.wasm) runs every program on several Workers where the page may share memory between them.
"""
import json
from exporter.capture import merge
from exporter.wasm import compile_wasm, entry_point, render_c, render_threaded_c
from mnist_data import INPUT_SHAPE, N_CLASSES

def build_plan(programs:dict, about:dict, reassociate=None) -> tuple[dict, dict[str, bytes]]:
  """The plan of the captured `programs` ({program: {backend: Captured}}, see programs.export_programs) with what the
  page must know about them (`about`: taps, train, fit, evaluate), and the files of code by their metadata key.
  `reassociate(kernels, buffers, dispatches)` may mark WebAssembly kernels to reassociate (wasm_search)."""
  webgpu = merge({p: c["webgpu"] for p, c in programs.items()})
  wasm, threads = (merge({p: c[backend] for p, c in programs.items()}) for backend in ("wasm", "threads"))
  if reassociate:
    for kernels, buffers, dispatches in (wasm, threads): reassociate(kernels, buffers, dispatches)
  webgpu_plan, wgsl_files = _webgpu(*webgpu)
  wasm_plan, wasm_files = _wasm(*wasm)
  threads_plan, threads_files = _threads(*threads)
  outputs = {b["name"]: b["shape"] for b in webgpu[1] if b["kind"] == "output" and b.get("program") == "taps"}
  taps = [{**t, "shape": outputs[t["buffer"]]} for t in about["taps"]]
  plan = {"format": 2, "inputShape": list(INPUT_SHAPE), "outputLength": N_CLASSES, **about, "taps": taps, "webgpu": webgpu_plan, "wasm": wasm_plan,
          "threads": threads_plan}
  return plan, {**wgsl_files, **wasm_files, **threads_files}

def _inputs(buffers:list[dict], dispatches:dict[str, list[dict]]) -> dict:
  """Each program's input buffers by name (two training steps may each take "images", at their own batch sizes)."""
  return {p: {buffers[i]["name"]: i for d in ds for i in d["buffers"] if buffers[i]["kind"] == "input"} for p, ds in dispatches.items()}

def _uses(dispatches:list[dict], kernel:int) -> bool: return any(d["kernel"] == kernel for d in dispatches)

def _json(data) -> bytes: return (json.dumps(data, separators=(",", ":")) + "\n").encode()

def _webgpu(kernels:list[dict], buffers:list[dict], dispatches:dict) -> tuple[dict, dict[str, bytes]]:
  """The WGSL of each kernel in one of two JSON files ({kernel index: source}): the forward's, and the rest."""
  file_of = ["wgsl" if _uses(dispatches["forward"], i) else "extras_wgsl" for i in range(len(kernels))]
  files = {key: _json({str(i): k["source"] for i, k in enumerate(kernels) if file_of[i] == key}) for key in dict.fromkeys(file_of)}
  plan = {"kernels": [{"name": k["function"], "file": file_of[i]} for i, k in enumerate(kernels)],
          "buffers": buffers, "programs": dispatches, "inputs": _inputs(buffers, dispatches)}
  return plan, files

def _wasm(kernels:list[dict], buffers:list[dict], dispatches:dict) -> tuple[dict, dict[str, bytes]]:
  """The first module (the programs that need only the forward's kernels) and, if any program needs more, a second
  with every program, which takes over when one of those is first run; each plain and with relaxed SIMD."""
  base = {p: ds for p, ds in dispatches.items() if all(_uses(dispatches["forward"], d["kernel"]) for d in ds)}
  modules, files = [], {}
  for key, chosen in (("wasm", base), ("extras_wasm", dispatches if len(base) < len(dispatches) else None)):
    if chosen is None: continue
    source, offsets = render_c(kernels, buffers, chosen)
    for fma in (False, True):
      files[key + ("_fma" if fma else "")] = compile_wasm(source, fma)
      modules.append({"file": key + ("_fma" if fma else ""), "fma": fma, "offsets": offsets, "programs": sorted(chosen)})
  plan = {"buffers": buffers, "programs": {p: entry_point(p) for p in dispatches}, "inputs": _inputs(buffers, dispatches), "modules": modules}
  return plan, files

def _threads(kernels:list[dict], buffers:list[dict], dispatches:dict) -> tuple[dict, dict[str, bytes]]:
  """One module with every program, its kernels split into parts where tinygrad (or the timing) split them, on a shared
  memory: plain and with relaxed SIMD. `programs` lists them in the order its run() numbers them."""
  modules, files = [], {}
  source, offsets, memory, counters = render_threaded_c(kernels, buffers, dispatches)
  for fma in (False, True):
    key = "threads_wasm" + ("_fma" if fma else "")
    files[key] = compile_wasm(source, fma, memory)
    modules.append({"file": key, "fma": fma, "offsets": offsets, "programs": list(dispatches), "memory": memory, "counters": counters})
  split = [p for p, ds in dispatches.items() if any(kernels[d["kernel"]].get("parts", 1) > 1 for d in ds)]
  return {"buffers": buffers, "programs": list(dispatches), "inputs": _inputs(buffers, dispatches), "modules": modules, "split": split}, files
