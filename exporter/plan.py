"""A model's plan, as data: every buffer once (by name and kind), the programs in one order, WebGPU's kernels and each
program's dispatches, and where each WebAssembly module keeps each buffer. One runtime (webapp/js/runtime/) runs any
plan; no code is generated for a model.

The code is split by when the page needs it: the forward's (and the programs that use only its kernels: the taps) in
the files a first visit loads, <name>.wasm and <name>.wgsl.json; every other program's in <name>.extras.wasm (a module
with every program) and <name>.extras.wgsl.json, loaded when first run. Each WebAssembly module comes twice, plain and
with relaxed SIMD's fused multiply-add (<name>.fma.wasm, ...), for the browsers that validate it; <name>.threads.wasm
(and .threads.fma.wasm) runs every program on several Workers where the page may share memory between them. Which
modules exist, and what each holds, goes into the metadata (modules()), so that the page can pick one before the plan
is in.
"""
import json
from exporter import ExportError
from exporter.capture import merge
from exporter.contract import MAX_THREADS, PLAN_FORMAT, threads_contract
from exporter.wasm import compile_wasm, render_c, render_threaded_c
from mnist_data import INPUT_SHAPE, N_CLASSES

def build_plan(programs:dict, about:dict, reassociate=None) -> tuple[dict, dict[str, bytes], list[dict]]:
  """The plan of the captured `programs` ({program: {backend: Captured}}, see programs.export_programs) with what the
  page must know about them (`about`: taps, train, fit, evaluate), the files of code by their metadata key, and the
  WebAssembly modules for the metadata ([{file, fma, threads, programs}]). `reassociate(kernels, buffers, dispatches)`
  may mark WebAssembly kernels to reassociate (wasm_search)."""
  order = list(programs)
  merged = {backend: merge({p: c[backend] for p, c in programs.items()}) for backend in ("webgpu", "wasm", "threads")}
  if reassociate:
    for backend in ("wasm", "threads"): reassociate(*merged[backend])
  buffers, merged = one_table(merged)
  wgsl_plan, wgsl_files = _webgpu(*merged["webgpu"])
  plain, plain_files, plain_modules = _wasm(*merged["wasm"], buffers, order)
  threaded, threaded_files, threaded_modules = _threads(*merged["threads"], buffers, order)
  outputs = {b["name"]: b["shape"] for b in buffers if b["kind"] == "output" and b.get("program") == "taps"}
  taps = [{**t, "shape": outputs[t["buffer"]]} for t in about["taps"]]
  every = {p: [d for backend in merged.values() for d in backend[1][p]] for p in order}
  plan = {"format": PLAN_FORMAT, "inputShape": list(INPUT_SHAPE), "outputLength": N_CLASSES, **about, "taps": taps, "programs": order,
          "buffers": buffers, "inputs": _inputs(buffers, every), "threads": threads_contract(), "webgpu": wgsl_plan,
          "wasm": {**plain, **threaded}}
  return plan, {**wgsl_files, **plain_files, **threaded_files}, plain_modules + threaded_modules

def one_table(merged:dict) -> tuple[list[dict], dict]:
  """One buffer table for every backend: the backends' captures name the same weights, state, inputs and outputs, and
  may differ in scratch memory (each scratch buffer its own entry, unless two backends have it at one size). Returns
  the table and each backend's (kernels, dispatches) with the dispatches' buffers as indices into it."""
  table, index_of, remapped = [], {}, {}
  for backend, (kernels, buffers, dispatches) in merged.items():
    local = []
    for b in buffers:
      key = (b["kind"], b.get("program"), b["name"], b["bytes"])
      if key not in index_of:
        if b["kind"] in ("weight", "state", "output") and any(k[:3] == key[:3] for k in index_of):
          raise ExportError(f"the {backend} capture's {b['name']} is {b['bytes']} bytes, another backend's is not")
        index_of[key] = len(table)
        table.append(b)
      local.append(index_of[key])
    remapped[backend] = (kernels, {p: [{**d, "buffers": [local[i] for i in d["buffers"]]} for d in ds] for p, ds in dispatches.items()})
  return table, remapped

def _inputs(buffers:list[dict], dispatches:dict[str, list[dict]]) -> dict:
  """Each program's input buffers by name (two training steps may each take "images", at their own batch sizes)."""
  return {p: {buffers[i]["name"]: i for d in ds for i in d["buffers"] if buffers[i]["kind"] == "input"} for p, ds in dispatches.items()}

def _uses(dispatches:list[dict], kernel:int) -> bool: return any(d["kernel"] == kernel for d in dispatches)

def _json(data) -> bytes: return (json.dumps(data, separators=(",", ":")) + "\n").encode()

def _webgpu(kernels:list[dict], dispatches:dict) -> tuple[dict, dict[str, bytes]]:
  """The WGSL of each kernel in one of two JSON files ({kernel index: source}): the forward's, and the rest."""
  file_of = ["wgsl" if _uses(dispatches["forward"], i) else "extras_wgsl" for i in range(len(kernels))]
  files = {key: _json({str(i): k["source"] for i, k in enumerate(kernels) if file_of[i] == key}) for key in dict.fromkeys(file_of)}
  return {"kernels": [{"name": k["function"], "file": file_of[i]} for i, k in enumerate(kernels)], "dispatches": dispatches}, files

def _wasm(kernels:list[dict], dispatches:dict, buffers:list[dict], order:list[str]) -> tuple[dict, dict[str, bytes], list[dict]]:
  """The first module (the programs that need only the forward's kernels) and, if any program needs more, a second
  with every program, which takes over when one of those is first run; each plain and with relaxed SIMD."""
  base = {p: ds for p, ds in dispatches.items() if all(_uses(dispatches["forward"], d["kernel"]) for d in ds)}
  layouts, files, modules = {}, {}, []
  for key, chosen in (("wasm", base), ("extras_wasm", dispatches if len(base) < len(dispatches) else None)):
    if chosen is None: continue
    source, offsets = render_c(kernels, buffers, chosen, order)
    for fma in (False, True):
      file = key + ("_fma" if fma else "")
      files[file] = compile_wasm(source, fma)
      layouts[file] = {"offsets": offsets}
      modules.append({"file": file, "fma": fma, "threads": 1, "programs": [p for p in order if p in chosen]})
  return layouts, files, modules

def _threads(kernels:list[dict], dispatches:dict, buffers:list[dict], order:list[str]) -> tuple[dict, dict[str, bytes], list[dict]]:
  """One module with every program, its kernels split into parts where tinygrad (or the timing) split them, on a shared
  memory: plain and with relaxed SIMD. `split`: the programs with a split kernel (the others run on the leader alone)."""
  layouts, files, modules = {}, {}, []
  source, offsets, memory, counters = render_threaded_c(kernels, buffers, dispatches, order)
  split = [p for p, ds in dispatches.items() if any(kernels[d["kernel"]].get("parts", 1) > 1 for d in ds)]
  for fma in (False, True):
    file = "threads_wasm" + ("_fma" if fma else "")
    files[file] = compile_wasm(source, fma, memory)
    layouts[file] = {"offsets": offsets, "memory": memory, "counters": counters, "split": split}
    modules.append({"file": file, "fma": fma, "threads": MAX_THREADS, "programs": list(order)})
  return layouts, files, modules
