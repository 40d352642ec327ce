"""Export a trained tinygrad model to the browser, as data: the page's one runtime (webapp/js/runtime/) runs it on WebGPU
(tinygrad's WGSL kernels) or, where WebGPU is missing or slower, on WebAssembly SIMD (tinygrad's C kernels compiled by
clang), from the same weights file.

  export_model(model, "mnist_mlp", "webapp", label="MLP", metadata={...})
    ->  webapp/mnist_mlp/  mnist_mlp.json             metadata: the input contract, accuracy, the WebAssembly modules
                                                      (which build, which programs), each file's SHA-256 and size
                           mnist_mlp.plan.json        every buffer once, the programs, WebGPU's dispatches, where each
                                                      module keeps each buffer, the threads' contract, taps, training specs
                           mnist_mlp.safetensors      the weights (float16), bound to the kernels' buffers by name
                           mnist_mlp.wgsl.json        the forward's WGSL kernels; .extras.wgsl.json every other program's
                           mnist_mlp.wasm             the forward's WebAssembly; .extras.wasm every program's
                           mnist_mlp.fma.wasm         the same with relaxed SIMD's FMA; .extras.fma.wasm
                           mnist_mlp.threads.wasm     every program, kernels split over Workers; .threads.fma.wasm
                           mnist_mlp.report.json      the test-set report (given one)
                           mnist_mlp.schedules.json   the WebAssembly kernels chosen by timing (wasm_beam; the page never
                                                      loads it, a re-export takes it again)
        webapp/models.json                            the site's models, this one's entry added or replaced

The steps, each an idea of its own module in exporter/: prove the WebGPU adapter (dawn), capture every program with
TinyJit on both backends (programs, capture; the WebAssembly kernels optionally chosen by timing, wasm_search), lay the
captures out as a plan and compile the code (plan, wasm; what the runtime may rely on: contract), write the folder
atomically and list it (files).
"""
import os, time
from pathlib import Path
import numpy as np
from exporter import ExportError
from exporter.dawn import check_webgpu
from exporter.files import write_export
from exporter.plan import build_plan
from exporter.programs import export_programs
from evaluation import WEIGHT_DTYPES, stored
from mnist_data import input_contract

__all__ = ["ExportError", "export_model", "weights_file"]

def export_model(model, name:str, out_dir:str|os.PathLike="webapp", label:str|None=None, metadata:dict|None=None, report:dict|None=None,
                 finetune:bool=True, fit:dict|None=None, weights_dtype:str="float16", wasm_beam:int=0, wasm_schedules:dict|None=None) -> Path:
  """Write `out_dir/name/` (see above) and list it in `out_dir/models.json` under `label`. Returns the folder.

  The programs: "forward" and "taps" always (see exporter/programs.py); "train" (fine-tuning) with `finetune`;
  "evaluate" and "fit" given `fit` ({"optimizer": the scripts' optimizer over every parameter, "batch", "schedule":
  {"optimizer", "kind", "warmup"}, "epochs", "dropout"}): the model is then one the page trains from scratch (its
  manifest role "train"; otherwise "predict").

  `weights_dtype` float16 stores the weights in half the bytes, int8 the matrices and filters in a quarter (with a scale
  per output channel); the model must already hold exactly those values (evaluation.round_weights), so that the accuracy
  measured on it (`report`'s) is the accuracy of exactly what ships.

  `wasm_beam` > 0 picks the WebAssembly kernels by tinygrad's BEAM search of that width, timed as WebAssembly, and
  reassociates the sums of the kernels that gain from it; the choices go into `name.schedules.json`, and
  `wasm_schedules` (an earlier export's) makes a re-export take them again without a search."""
  if not name.isidentifier(): raise ExportError(f"model name {name!r} must be an identifier (it names files and buffers)")
  if weights_dtype not in WEIGHT_DTYPES: raise ExportError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}")
  check_webgpu()
  weights, stored_as = weights_file(model, weights_dtype, name)
  state = _float_state(model)
  searched = _searching(wasm_beam, wasm_schedules or {})
  programs, about = export_programs(model, state, finetune, fit, on_cpu=searched.on_cpu)
  plan, files, modules = build_plan(programs, about, reassociate=searched.reassociate)
  files = {"plan": _json(plan), "weights": weights, **files, **({"report": _json(report)} if report is not None else {})}
  meta = {"name": name, **(metadata or {}), **({"test_accuracy": report["accuracy"]} if report is not None else {}),
          "params": (metadata or {}).get("params", sum(int(np.prod(v.shape)) for v in state.values())),
          "weights_as": weights_dtype, "weights_dtype": stored_as, "tinygrad_version": _version(), **input_contract(),
          "finetune": about["train"], "fit": about["fit"] and {k: v for k, v in about["fit"].items() if k != "init"},
          "taps": [{k: t[k] for k in ("name", "shape", "weight")} for t in plan["taps"]],
          "kernels": len(plan["webgpu"]["kernels"]), "dispatches": len(plan["webgpu"]["dispatches"]["forward"]), "backends": ["webgpu", "wasm"], "wasm_modules": modules,
          "wasm_kernels": len({d["kernel"] for d in programs["forward"]["wasm"].dispatches}), "wasm_beam": wasm_beam,
          **({"wasm_schedules": f"{name}.schedules.json"} if searched.chosen else {}), "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  return write_export(Path(out_dir), name, files, meta, label or name, "train" if fit else "predict", searched.chosen or None)

def _float_state(model) -> dict:
  """What the kernels read: the float tensors (integer bookkeeping, batch norm's step counter, never enters a program)."""
  from tinygrad import dtypes
  from tinygrad.nn.state import get_state_dict
  return {k: v for k, v in get_state_dict(model).items() if dtypes.is_float(v.dtype)}

def weights_file(model, dtype:str, name:str) -> tuple[bytes, list[str]]:
  """The safetensors file both backends read, and the dtypes it stores. One metadata key: safetensors orders several
  arbitrarily, and the same weights should give the same file (and hash)."""
  from safetensors.numpy import save
  arrays = {}
  for k, v in _float_state(model).items():
    held = stored(k, v.numpy(), dtype)
    if held is None: raise ExportError(f"{k} is not {dtype}-exact: call round_weights(model) before measuring the accuracy you export")
    arrays.update(held)
  return save(arrays, metadata={"model": name}), sorted({str(a.dtype) for a in arrays.values()})

class _searching:
  """The WebAssembly kernels chosen by timing (wasm_beam > 0), or tinygrad's own schedules."""
  def __init__(self, beam:int, recorded:dict):
    self.chosen = {"kernels": {}, "reassociate": {}} if beam else {}
    if not beam: self.on_cpu = self.reassociate = None; return
    from exporter.wasm_search import searching, choose_reassociation
    self.on_cpu = lambda threads: searching(beam, recorded.get("kernels", {}), self.chosen["kernels"], threads)
    self.reassociate = lambda *wasm: choose_reassociation(*wasm, recorded.get("reassociate", {}), self.chosen["reassociate"])

def _json(data) -> bytes:
  import json
  return json.dumps(data, separators=(",", ":")).encode() + b"\n"

def _version() -> str:
  from importlib.metadata import version
  return version("tinygrad")
