"""What a tinygrad step computes, as plain data: the step is captured with TinyJit on one device, and every captured kernel
is rendered by tinygrad's own code generator (WGSL on WEBGPU, C on CPU). The only module that reads the JIT's capture
(`captured.linear`, `to_program`, the call arguments): a tinygrad upgrade that changes them breaks this file alone.

A capture is three lists: the kernels (each unique source once), the dispatches in order (which kernel, which buffers,
how many workgroups) and the buffers, each one of: an input (by the name the step gives it), an output (named as in the
dict the step returns), a weight (matched by identity against the state dict, so bound by name), optimizer state (named,
with the one value it starts at) or scratch memory.
"""
import contextlib
from typing import NamedTuple
import numpy as np
from exporter import ExportError
from exporter.contract import MAX_THREADS

# Each backend's kernels, by the tinygrad device whose renderer writes them (WGSL on WEBGPU, C compiled to wasm on CPU) and
# the CPU threads tinygrad may split a kernel over ("threads": the WebAssembly module that runs on several Workers; its
# kernels take their part's number, core_id, as a last argument; a page runs the parts on as many Workers as it has).
BACKENDS = {"webgpu": ("WEBGPU", 1), "wasm": ("CPU", 1), "threads": ("CPU", MAX_THREADS)}

class Captured(NamedTuple):
  kernels: list[dict]      # unique programs: {function, source}
  dispatches: list[dict]   # in order: {kernel, buffers (indices), workgroups}
  buffers: list[dict]      # {name, kind: input | output | weight | state | scratch, bytes, dtype (, shape, init)}

def capture(step, inputs:dict[str, np.ndarray], state:dict, extra_state:dict|None=None, on_cpu=None) -> dict[str, Captured]:
  """What `step(*inputs) -> {name: Tensor}` computes, captured for each backend of BACKENDS.

  `inputs` are example values, in the order `step` takes them; each backend's outputs for them must match what `step`
  gives on the state's own device. `state` names the tensors `step` reads beyond its inputs (the weights). `extra_state`
  names what a step keeps between calls (an optimizer's moments): each must start at one value. A step may change the
  weights and that state: every capture starts from their values as they are now, and leaves them so. `on_cpu()`, if
  given, is a context entered around each CPU capture (wasm_search.searching: the kernels chosen by timing); it is called
  with the capture's thread count."""
  from tinygrad import Tensor
  everything = {**state, **(extra_state or {})}
  home = next(iter(state.values())).device
  start = {k: v.numpy().copy() for k, v in everything.items()}
  expected = {k: v.numpy() for k, v in step(*(Tensor(a, device=home) for a in inputs.values())).items()}
  for k, v in everything.items(): v.assign(Tensor(start[k], device=v.device, dtype=v.dtype)).realize()
  originals = {k: v.uop for k, v in everything.items()}
  captured = {}
  try:
    for backend, (device, threads) in BACKENDS.items():
      context = on_cpu(threads) if device == "CPU" and on_cpu else contextlib.nullcontext()
      captured[backend], got = _capture_on(device, threads, step, inputs, state, extra_state or {}, start, context)
      for k, want in expected.items():
        if not np.allclose(got[k], want, atol=1e-3):
          raise ExportError(f"the {device} capture's {k} differs from the model's ({np.abs(got[k] - want).max():.2g})")
      bound = {b["name"] for b in captured[backend].buffers if b["kind"] == "weight"}
      if unbound := sorted(set(state) - bound): raise ExportError(f"weights not read by the exported step: {', '.join(unbound)}")
  finally:
    for k, v in everything.items(): v.uop = originals[k]
  return captured

def _capture_on(device:str, threads:int, step, inputs:dict, state:dict, extra_state:dict, start:dict, context) -> tuple[Captured, dict]:
  """One device's capture, and its outputs for the example inputs from the `start` values of the weights and state.
  Leaves the tensors on `device` (capture restores them)."""
  from tinygrad import Tensor, TinyJit, Context
  everything = {**state, **extra_state}
  # a fresh buffer per weight: loaded weights can be views into the file they came from
  for v in everything.values(): v.replace(v.to(device).clone().realize())
  @TinyJit
  def jitted(*args:Tensor) -> dict: return {k: v.realize() for k, v in step(*args).items()}
  rng = np.random.default_rng(0)
  def random_like(a:np.ndarray) -> Tensor:
    values = rng.standard_normal(a.shape) if a.dtype.kind == "f" else rng.integers(0, 10, a.shape)
    return Tensor(values.astype(a.dtype), device=device).realize()
  # capture even when the user trains with JIT=0; JIT=2 keeps kernels as single calls, never batched into a graph; no
  # memory planner, so every buffer is whole (the planner packs scratch into views of a shared one). BEAM on the CPU is
  # wasm_search's to set.
  beam = {"BEAM": 0} if device == "CPU" else {}
  with Context(JIT=2, NUM_CPU_THREADS=threads, NO_MEMORY_PLANNER=1, **beam), context:
    for _ in range(3): outs = jitted(*(random_like(a) for a in inputs.values()))   # captured on the second call
    # the calls above may have changed the weights and state (a training step): back to where the model's own step began
    for k, v in everything.items():
      v.uop.base.realized.copy_from(Tensor(start[k], device=device, dtype=v.dtype).realize().uop.base.realized)
    got = {k: v.numpy() for k, v in jitted(*(Tensor(a, device=device).realize() for a in inputs.values())).items()}
  if jitted.captured is None: raise ExportError("TinyJit captured nothing")
  return _read(jitted.captured, device, list(inputs), _Buffers(outs, state, extra_state, start)), got

def _read(captured, device:str, input_names:list[str], buffers:"_Buffers") -> Captured:
  """The captured JIT's kernel calls, in order, as kernels, dispatches and buffers."""
  from tinygrad import Device
  from tinygrad.uop.ops import Ops
  from tinygrad.codegen import to_program
  from tinygrad.engine.realize import get_call_arg_uops
  kernels, dispatches, index_of = [], [], {}
  for call in captured.linear.toposort(gate=lambda x: x.op not in {Ops.SINK, Ops.PROGRAM}):
    if call.op is not Ops.CALL: continue
    if call.src[0].op not in {Ops.SINK, Ops.PROGRAM}: raise ExportError(f"the captured step has a {call.src[0].op} step, not a kernel")
    prg = to_program(call.src[0], Device[device].renderer)
    info, source = prg.arg, _source(prg)
    parts = _check_kernel(device, info, source)
    if source not in index_of:
      index_of[source] = len(kernels)
      kernels.append({"function": info.function_name, "source": source, "parts": parts})
    dispatches.append({"kernel": index_of[source], "buffers": [buffers.index(u, input_names) for u in get_call_arg_uops(call)],
                       "workgroups": [int(g) for g in info.global_size]})
  if missing := set(buffers.outputs) - {b["name"] for b in buffers.table if b["kind"] == "output"}:
    raise ExportError(f"no kernel writes {', '.join(sorted(missing))}")
  return Captured(kernels, dispatches, buffers.table)

def _source(prg) -> str:
  from tinygrad.uop.ops import Ops
  return next(s.arg for s in prg.src if s.op is Ops.SOURCE)

def _check_kernel(device:str, info, source:str) -> int:
  """Only what both backends can run exports: static shapes, float32, every kernel on the device being captured. Returns
  how many parts a CPU kernel is split into (its last argument, core_id, says which part to run)."""
  threaded = [v for v in info.vars if v.arg.name == "core_id"]
  if others := [v for v in info.vars if v.arg.name != "core_id"]:
    raise ExportError(f"a {device} kernel takes runtime variables ({', '.join(v.arg.name for v in others)}); only static shapes export")
  if "enable f16" in source or "__fp16" in source: raise ExportError("a kernel needs float16; export a float32 model")
  if ("@compute" in source) != (device == "WEBGPU"):
    raise ExportError(f"the step runs kernel {info.function_name} on another device than {device} (a tensor not among the exported ones?)")
  return int(info.global_size[0]) if threaded else 1

class _Buffers:
  """Each distinct buffer of a capture once, classified: an input (a PARAM of the JIT), an output, a named weight,
  optimizer state (with its start value) or scratch memory."""
  def __init__(self, outputs:dict, state:dict, extra_state:dict, start:dict):
    self.outputs, self.state, self.start = outputs, state, start
    self.names = [({id(t.uop.base.realized): k for k, t in d.items()}, kind) for d, kind in ((outputs, "output"), (state, "weight"), (extra_state, "state"))]
    self.table, self.at = [], {}

  def index(self, u, input_names:list[str]) -> int:
    from tinygrad.uop.ops import Ops
    if u.op is Ops.PARAM:
      name = input_names[u.arg.slot]
      key, info = ("input", name), {"name": name, "kind": "input", "bytes": int(np.prod(u.shape)) * u.dtype.itemsize, "dtype": u.dtype.name}
    else:
      b = u.buffer
      if b.offset or b.base is not b: raise ExportError(f"buffer views are not supported (a {b.dtype.name} buffer at offset {b.offset})")
      key = id(b)
      if key not in self.at: info = self._describe(b)
    if key not in self.at:
      self.at[key] = len(self.table)
      self.table.append(info)
    return self.at[key]

  def _describe(self, b) -> dict:
    kind, name = next(((kind, names[id(b)]) for names, kind in self.names if id(b) in names),
                      ("scratch", f"scratch{sum(x['kind'] == 'scratch' for x in self.table)}"))
    info = {"name": name, "kind": kind, "bytes": b.nbytes, "dtype": b.dtype.name}
    if kind == "output": info["shape"] = list(self.outputs[name].shape)
    if kind == "weight": info["shape"] = list(self.state[name].shape)
    if kind == "state": info["init"] = _constant(self.start[name], name)
    return info

def _constant(value:np.ndarray, name:str) -> float:
  """The one value an optimizer-state tensor starts with (the page fills its buffer with it)."""
  if value.size and not (value == value.flat[0]).all(): raise ExportError(f"{name} does not start at one value; only such state exports")
  return float(value.flat[0]) if value.size else 0.0

def merge(programs:dict[str, Captured]) -> tuple[list[dict], list[dict], dict[str, list[dict]]]:
  """Several captured programs of one backend as one set of kernels and buffers: the weights, the optimizers' state and
  the inputs are shared by name (a program reads what another wrote into them); every other buffer belongs to its
  program. Returns the kernels (each once, with a unique C name), the buffers, and each program's dispatches into them."""
  kernels, kernel_of, buffers, buffer_of, dispatches = [], {}, [], {}, {}
  for program, cap in programs.items():
    for k in cap.kernels:
      if k["source"] in kernel_of: continue
      # tinygrad names kernels by shape, so two different kernels can share a name: keep C symbols unique
      taken = sum(x["function"] == k["function"] for x in kernels)
      kernel_of[k["source"]] = len(kernels)
      kernels.append({**k, "name": k["function"] + (f"_{taken}" if taken else "")})
    local = []
    for b in cap.buffers:
      # an input is shared by the programs that take it at the same size (forward and taps: the image), not by two
      # training steps of different batch sizes
      shared = b["kind"] in ("weight", "state", "input")
      key = (b["kind"], b["name"], b["bytes"] if b["kind"] == "input" else None) if shared else (program, b["name"])
      if key not in buffer_of:
        buffer_of[key] = len(buffers)
        buffers.append(b if shared else {**b, "program": program})
      local.append(buffer_of[key])
    dispatches[program] = [{"kernel": kernel_of[cap.kernels[d["kernel"]]["source"]], "buffers": [local[i] for i in d["buffers"]],
                            "workgroups": d["workgroups"]} for d in cap.dispatches]
  return kernels, buffers, dispatches
