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
import contextlib, ctypes, hashlib, json, os, shutil, sys, tempfile, time
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
  kernels: list[dict]      # unique programs: {function, source}
  dispatches: list[dict]   # in order: {kernel, buffers (indices), workgroups}
  buffers: list[dict]      # {name, kind: input | output | weight | state | scratch, bytes, dtype (, shape, init)}

def capture(step, inputs:dict[str, np.ndarray], state:dict, wasm_beam:int=0, extra_state:dict|None=None,
            schedules:tuple[dict, dict]|None=None) -> dict[str, Captured]:
  """What `step(*inputs) -> {name: Tensor}` computes, captured with TinyJit for each backend in BACKEND_DEVICES.

  `inputs` are example values, in the order `step` takes them: captured buffers of kind "input" carry their names, and
  each backend's outputs for these values must match what `step` gives on the state's own device. `state` names the
  tensors `step` reads beyond its inputs (the weights): each becomes a buffer of kind "weight" with that name. Every
  other buffer is an output (named as in the dict `step` returns) or scratch memory. `wasm_beam` > 0 picks the wasm
  kernels by tinygrad's BEAM search of that width, each candidate timed as WebAssembly (wasm_search, with `schedules`:
  (recorded, chosen)).

  `extra_state` names tensors that a step keeps between calls beyond the weights (an optimizer's moments): buffers of
  kind "state", each filled with one value at the start ("init"). A step may change the weights and that state: every
  capture starts from their values as they are now, and leaves them so."""
  from tinygrad import Tensor
  extra_state = extra_state or {}
  everything = {**state, **extra_state}
  home = next(iter(state.values())).device
  start = {k: v.numpy().copy() for k, v in everything.items()}
  expected = {k: v.numpy() for k, v in step(*(Tensor(a, device=home) for a in inputs.values())).items()}
  for k, v in everything.items(): v.assign(Tensor(start[k], device=v.device, dtype=v.dtype)).realize()
  originals = {k: v.uop for k, v in everything.items()}
  captured = {}
  try:
    for backend, device in BACKEND_DEVICES.items():
      captured[backend], got = _capture_on(device, step, inputs, state, extra_state, start, beam=wasm_beam if backend == "wasm" else None,
                                           schedules=schedules)
      for k, want in expected.items():
        if not np.allclose(got[k], want, atol=1e-3):
          raise ExportError(f"the {device} capture's {k} differs from the model's ({np.abs(got[k] - want).max():.2g})")
      bound = {b["name"] for b in captured[backend].buffers if b["kind"] == "weight"}
      if unbound := sorted(set(state) - bound): raise ExportError(f"weights not read by the exported step: {', '.join(unbound)}")
  finally:
    for k, v in everything.items(): v.uop = originals[k]
  return captured

def _capture_on(device:str, step, inputs:dict[str, np.ndarray], state:dict, extra_state:dict, start:dict, beam:int|None,
                schedules:tuple[dict, dict]|None=None) -> tuple[Captured, dict]:
  """One device's capture, and its outputs for the example inputs from the `start` values of the weights and state.
  Leaves the tensors on `device` (capture restores them)."""
  from tinygrad.helpers import BEAM
  from tinygrad import Tensor, TinyJit, Device, Context
  from tinygrad.uop.ops import Ops
  from tinygrad.codegen import to_program
  from tinygrad.engine.realize import get_call_arg_uops

  # a fresh buffer per weight: loaded weights can be views into the file they came from
  for v in {**state, **extra_state}.values(): v.replace(v.to(device).clone().realize())
  @TinyJit
  def jitted(*args:Tensor) -> dict: return {k: v.realize() for k, v in step(*args).items()}
  rng = np.random.default_rng(0)
  def random_like(a:np.ndarray) -> Tensor:
    values = rng.standard_normal(a.shape) if a.dtype.kind == "f" else rng.integers(0, 10, a.shape)
    return Tensor(values.astype(a.dtype), device=device).realize()
  # capture even when the user trains with JIT=0; JIT=2 keeps kernels as single calls, never batched into a graph;
  # no memory planner, so every buffer is whole (the planner packs scratch into views of a shared one).
  # One CPU thread: the WebAssembly module runs each kernel once, in order (a page has no shared-memory threads on Pages)
  searching = wasm_search(*(schedules or ({}, {}))) if device == "CPU" and beam else contextlib.nullcontext()
  with Context(JIT=2, NUM_CPU_THREADS=1, NO_MEMORY_PLANNER=1, BEAM=BEAM.value if beam is None else beam), searching:
    for _ in range(3): outs = jitted(*(random_like(a) for a in inputs.values()))   # captured on the second call
    # the calls above may have changed the weights and state (a training step): back to where the model's own step began
    for k, v in {**state, **extra_state}.items(): v.uop.base.realized.copy_from(Tensor(start[k], device=device, dtype=v.dtype).realize().uop.base.realized)
    got = {k: v.numpy() for k, v in jitted(*(Tensor(a, device=device).realize() for a in inputs.values())).items()}
  if jitted.captured is None: raise ExportError("TinyJit captured nothing")
  output_of = {id(t.uop.base.realized): k for k, t in outs.items()}
  weight_of = {id(t.uop.base.realized): k for k, t in state.items()}
  state_of = {id(t.uop.base.realized): k for k, t in extra_state.items()}
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
      kind = "output" if key in output_of else "weight" if key in weight_of else "state" if key in state_of else "scratch"
      name = output_of.get(key) or weight_of.get(key) or state_of.get(key) or f"scratch{sum(x['kind'] == 'scratch' for x in buffers)}"
      shape = list(outs[name].shape) if kind == "output" else list(state[name].shape) if kind == "weight" else None
      info = {"name": name, "kind": kind, "bytes": b.nbytes, "dtype": b.dtype.name, **({"shape": shape} if shape is not None else {}),
              **({"init": _constant(start[name], name)} if kind == "state" else {})}
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
    if ("@compute" in source) != (device == "WEBGPU"):
      raise ExportError(f"the step runs kernel {info.function_name} on another device than {device} (a tensor not among the exported ones?)")
    if source not in kernel_index:
      kernel_index[source] = len(kernels)
      kernels.append({"function": info.function_name, "source": source})
    dispatches.append({"kernel": kernel_index[source], "buffers": [buffer_index(u) for u in get_call_arg_uops(call)],
                       "workgroups": [int(g) for g in info.global_size]})
  if missing := set(outs) - {b["name"] for b in buffers if b["kind"] == "output"}: raise ExportError(f"no kernel writes {', '.join(sorted(missing))}")
  return Captured(kernels, dispatches, buffers), got

def _constant(value:np.ndarray, name:str) -> float:
  """The one value an optimizer-state tensor starts with (the page fills its buffer with it)."""
  if value.size and not (value == value.flat[0]).all(): raise ExportError(f"{name} does not start at one value; only such state exports")
  return float(value.flat[0]) if value.size else 0.0

def merge(programs:dict[str, Captured]) -> tuple[list[dict], list[dict], dict[str, list[dict]]]:
  """Several captured programs of one backend as one set of kernels and buffers: the weights, the optimizers' state and
  the inputs are shared by name (a program reads what another wrote into them); every other buffer belongs to its program. Returns the
  kernels (each once, with a unique C name), the buffers, and each program's dispatches into those two lists."""
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

def layer_taps(model, x) -> dict:
  """The outputs of the layers that the model names in `model.taps` ({index in model.layers: name}); the last is the
  logits. What the page's inside view shows, and what the tap parity test compares with."""
  found = {}
  for i, layer in enumerate(model.layers):
    x = layer(x)
    if i in model.taps: found[model.taps[i]] = x
  return found

def _tap_info(model, state:dict) -> list[dict]:
  """Each tap's name, the weight of the layer that computes it (for the page's weights view), and which output holds it."""
  from tinygrad import nn
  info, weight = [], None
  for i, layer in enumerate(model.layers):
    if isinstance(layer, (nn.Conv2d, nn.Linear)) and f"layers.{i}.weight" in state: weight = f"layers.{i}.weight"
    if i in model.taps:
      info.append({"name": model.taps[i], "weight": weight})
      weight = None
  return info

# ---------------------------------------------------------------- fine-tuning in the page

# Measured on the shipped CNN with a writer whose 3s it read as 8s (60 steps, 4 of the writer's digits and 12 MNIST
# training digits per batch): Adam at 1e-3 on the last layer alone taught it that writer (held-out 3s 0 -> 84 %) for
# -0.3 points on held-out MNIST; every layer at once cost 0.8-1.8 points for the same gain.
FINETUNE_BATCH, FINETUNE_LR = 16, 1e-3

def last_layer(model, state:dict) -> set[str]:
  """The parameters of the model's last layer that has any: what the page fine-tunes."""
  for i in reversed(range(len(model.layers))):
    if found := {k for k in state if k.startswith(f"layers.{i}.")}: return found
  raise ExportError("the model has no parameters to fine-tune")

def finetune_step(model, batch_size:int=FINETUNE_BATCH, only:set|None=None):
  """The training step the page runs to fine-tune the model on a visitor's digits: forward, cross-entropy, backward and
  an Adam update of the parameters named in `only` (all if None). Batch norm uses its running statistics, as at
  inference (a batch of one visitor's digits says little about the statistics of MNIST), and they stay as they are;
  dropout is off. Returns the step (images, labels, lr) -> {"loss"}, example inputs, and the optimizer's state by name
  (Adam's moments and the running products of its betas)."""
  from tinygrad import Tensor, Context, nn
  from tinygrad.nn.state import get_state_dict, get_parameters
  name_of = {id(t): k for k, t in get_state_dict(model).items()}
  trained = [p for p in get_parameters(model) if p.is_param and (only is None or name_of[id(p)] in only)]
  opt = nn.optim.Adam(trained, lr=FINETUNE_LR)
  def step(images:Tensor, labels:Tensor, lr:Tensor) -> dict:
    opt.zero_grad()
    with Context(TRAINING=0): loss = model(images).sparse_categorical_crossentropy(labels).backward()
    opt.lr.assign(lr)
    with Context(TRAINING=1): Tensor.realize(loss, *opt.schedule_step())
    return {"loss": loss}
  return step, example_batch(batch_size, FINETUNE_LR), optimizer_state(opt, name_of, "adam")

def example_batch(batch_size:int, lr:float) -> dict[str, np.ndarray]:
  """Example inputs of a training step, in the order it takes them: a batch of images, their labels, the learning rate."""
  rng = np.random.default_rng(0)
  return {"images": rng.standard_normal((batch_size, *INPUT_SHAPE[1:]), dtype=np.float32),
          "labels": rng.integers(0, N_CLASSES, batch_size).astype(np.int32), "lr": np.array([lr], dtype=np.float32)}

def optimizer_state(opt, name_of:dict, prefix:str) -> dict:
  """What a tinygrad optimizer keeps between steps, by name: its learning rate, Adam's moments and the running products
  of its betas (LAMB: Adam, AdamW), the momentum buffers (LARS: SGD, Muon); `prefix.lr`, `prefix.b1_t`,
  `prefix.m.<parameter>`... For a group (Muon with AdamW), the second optimizer's names start `prefix1.`."""
  from tinygrad import nn
  state = {}
  for k, o in enumerate(opt.optimizers if isinstance(opt, nn.optim.OptimizerGroup) else [opt]):
    if o.fused: raise ExportError("a fused optimizer (FUSE_OPTIM=1) keeps one buffer for every parameter; export without it")
    p = prefix if k == 0 else f"{prefix}{k}"
    state[f"{p}.lr"] = o.lr
    for attr in ("b1_t", "b2_t"):
      if hasattr(o, attr): state[f"{p}.{attr}"] = getattr(o, attr)
    for attr in ("m", "v", "b"):
      for param, t in zip(o.params, getattr(o, attr, [])): state[f"{p}.{attr}.{name_of[id(param)]}"] = t
  return state

# ---------------------------------------------------------------- training from scratch in the page

EVAL_BATCH = 100

def fit_step(model, opt, batch_size:int):
  """The page's "train from scratch" step: forward in training mode (batch norm on the batch's statistics, updating
  its running statistics; dropout as the model has it), cross-entropy, backward, and `opt` (the scripts' optimizer over
  every parameter, built by the caller) with the learning rate as an input, so that the page can run the scripts'
  schedule (an optimizer group scales each member's rate as the scripts do: by the same factor). Returns the step
  (images, labels, lr) -> {"loss", "correct" (how many of the batch it read right, before the update)}, example
  inputs, and the optimizer's state by name."""
  from tinygrad import Tensor, Context, nn
  from tinygrad.nn.state import get_state_dict
  members = list(opt.optimizers) if isinstance(opt, nn.optim.OptimizerGroup) else [opt]
  base = [float(o.lr.numpy()[0]) for o in members]
  norms = [layer for layer in getattr(model, "layers", []) if isinstance(layer, nn.BatchNorm)]
  def step(images:Tensor, labels:Tensor, lr:Tensor) -> dict:
    opt.zero_grad()
    # batch norm counts its training steps in an int64 that nothing reads (and WGSL cannot hold): a plain int here
    counters = [layer.num_batches_tracked for layer in norms]
    for layer in norms: layer.num_batches_tracked = 0
    with Context(TRAINING=1):
      try: logits = model(images)
      finally:
        for layer, counter in zip(norms, counters): layer.num_batches_tracked = counter
      loss = logits.sparse_categorical_crossentropy(labels).backward()
      correct = (logits.argmax(-1) == labels).sum().float()
      for o, b in zip(members, base): o.lr.assign(lr * (b / base[0]))
      Tensor.realize(loss, correct, *opt.schedule_step())
    return {"loss": loss, "correct": correct}
  name_of = {id(t): k for k, t in get_state_dict(model).items()}
  return step, example_batch(batch_size, base[0]), optimizer_state(opt, name_of, "fit")

def init_spec(model, state:dict) -> dict[str, dict]:
  """How tinygrad initialises each tensor of a fresh model (nn.Linear and nn.Conv2d: weight and bias uniform in
  ±1/sqrt(fan in); nn.BatchNorm: scale and running variance 1, shift and running mean 0), for the page to start a
  training from: {name: {"uniform": [low, high]} or {"constant": value}}. A test holds it to tinygrad's own layers."""
  import math
  from tinygrad import nn
  spec = {}
  for i, layer in enumerate(getattr(model, "layers", [])):
    name = lambda part: f"layers.{i}.{part}"
    if isinstance(layer, (nn.Linear, nn.Conv2d)):
      bound = 1 / math.sqrt(int(np.prod(layer.weight.shape[1:])))
      spec[name("weight")] = {"uniform": [-bound, bound]}
      if layer.bias is not None: spec[name("bias")] = {"uniform": [-bound, bound]}
    elif isinstance(layer, nn.BatchNorm):
      spec.update({name("weight"): {"constant": 1.0}, name("bias"): {"constant": 0.0},
                   name("running_mean"): {"constant": 0.0}, name("running_var"): {"constant": 1.0}})
  if unknown := sorted(set(state) - set(spec)): raise ExportError(f"no known initialisation for {', '.join(unknown)} (only Linear, Conv2d, BatchNorm)")
  return {k: spec[k] for k in state}

# ---------------------------------------------------------------- the test-set report

def test_report(logits:np.ndarray, labels:np.ndarray, images:np.ndarray|None=None) -> dict:
  """The model's results on the test set, as the page's report shows them: accuracy, the confusion matrix (rows: true
  digit, columns: prediction), per-class precision/recall/F1, and each misread image (index, label, prediction,
  confidence; the 28x28 pixels as base64 of uint8, one image after another) if `images` is given."""
  import base64
  preds = logits.argmax(1)
  confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
  np.add.at(confusion, (labels, preds), 1)
  per_class = []
  for c in range(N_CLASSES):
    tp, predicted, actual = confusion[c, c], confusion[:, c].sum(), confusion[c].sum()
    precision, recall = tp / max(predicted, 1), tp / max(actual, 1)
    per_class.append({"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                      "f1": round(float(2 * precision * recall / max(precision + recall, 1e-12)), 4), "support": int(actual)})
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  wrong = np.nonzero(preds != labels)[0]
  report = {"accuracy": round(float((preds == labels).mean() * 100), 2),   # exact: one image is 0.01 %
            "confusion": confusion.tolist(), "per_class": per_class,
            "misread": {"index": wrong.tolist(), "label": labels[wrong].tolist(), "pred": preds[wrong].tolist(),
                        "confidence": [round(float(p), 4) for p in probs[wrong, preds[wrong]]]}}
  if images is not None:
    report["misread"]["pixels"] = base64.b64encode(images[wrong].astype(np.uint8).tobytes()).decode()
  return report

# ---------------------------------------------------------------- the WebAssembly fallback

WASM_ALIGN = 16   # float4 loads

def wasm_layout(buffers:list[dict], used:set[int]|None=None) -> tuple[list[int|None], int]:
  """Byte offset of each buffer (of those in `used`, default all) in a module's one static arena, and the arena's size."""
  offsets, end = [], 0
  for i, b in enumerate(buffers):
    if used is not None and i not in used: offsets.append(None); continue
    offsets.append(end)
    end += -(-b["bytes"] // WASM_ALIGN) * WASM_ALIGN
  return offsets, max(end, WASM_ALIGN)

def entry_point(program:str) -> str: return "net" if program == "forward" else f"net_{program}"

def render_c(kernels:list[dict], buffers:list[dict], programs:dict[str, list[dict]]) -> tuple[str, list[int|None]]:
  """tinygrad's C kernels, an arena holding every buffer these programs use at a fixed offset, and one exported
  function per program (`net` for the forward) calling its kernels in order. Returns the C source and the offsets."""
  used_kernels = sorted({d["kernel"] for ds in programs.values() for d in ds})
  offsets, arena = wasm_layout(buffers, {b for ds in programs.values() for d in ds for b in d["buffers"]})
  lines = ["// generated by export_utils.py from tinygrad's C kernels; compiled with clang --target=wasm32 -msimd128"]
  for k in (kernels[i] for i in used_kernels):
    if "void " + k["function"] + "(" not in k["source"]: raise ExportError(f"cannot find kernel {k['function']} in its C source")
    source = k["source"].replace("void " + k["function"] + "(", "static void " + k["name"] + "(", 1)
    lines.append(reassociating(source, k["name"]) if k.get("reassociate") else source)
  lines += [f"static unsigned char arena[{arena}] __attribute__((aligned({WASM_ALIGN})));",
            '__attribute__((export_name("arena"))) unsigned char* arena_address(void) { return arena; }']
  for program, dispatches in programs.items():
    lines.append(f'__attribute__((export_name("{entry_point(program)}"))) void {entry_point(program)}(void) {{')
    lines += [f"  {kernels[d['kernel']]['name']}({', '.join(f'(void*)(arena + {offsets[b]})' for b in d['buffers'])});" for d in dispatches]
    lines.append("}")
  return "\n".join(lines + [""]), offsets

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

# ---------------------------------------------------------------- WebAssembly kernels chosen by timing them as WebAssembly

# Each candidate kernel, compiled with the module's own flags into a module of its own, run by V8 (the engine of Chromium)
# in a Node process: TurboFan code only (--no-liftoff), on buffers filled with varied values, the best of five timings;
# the module holds the kernel twice, as rendered and allowed to reassociate its sums (reassociating), each timed.
WASM_TIMER_JS = r"""
import { createInterface } from "node:readline";
function best(bench) {
  for (let i = 0; i < 3; i++) bench(1);
  let n = 1, t = 0;
  for (;;) { const t0 = performance.now(); bench(n); t = performance.now() - t0; if (t > 2 || n >= 1 << 16) break; n *= 2; }
  let fastest = t / n;
  for (let r = 0; r < 4; r++) { const t0 = performance.now(); bench(n); fastest = Math.min(fastest, (performance.now() - t0) / n); }
  return fastest * 1000;
}
for await (const line of createInterface({ input: process.stdin })) {
  let reply;
  try {
    const { instance } = await WebAssembly.instantiate(Buffer.from(JSON.parse(line).wasm, "base64"));
    instance.exports.fill();
    reply = { us: best(instance.exports.bench), reassociated_us: best(instance.exports.bench_reassociated) };
  } catch (e) { reply = { error: String(e?.message ?? e) }; }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
"""

class WasmTimer:
  """Times C kernels as WebAssembly (WASM_TIMER_JS in a Node process of its own)."""
  def __init__(self):
    import subprocess
    try: self.proc = subprocess.Popen(["node", "--no-liftoff", "--input-type=module", "-e", WASM_TIMER_JS], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
    except FileNotFoundError: raise ExportError("timing the WebAssembly kernels needs Node.js (node) on PATH") from None

  def microseconds(self, source:str, function:str, buffers:list[tuple[int, str]]) -> tuple[float, float]:
    """One kernel's time in µs as rendered and as reassociating: `source` its C, `buffers` (bytes, dtype name) of its
    arguments in order."""
    import base64
    wasm = compile_wasm(_timing_harness(source, function, buffers))
    self.proc.stdin.write(json.dumps({"wasm": base64.b64encode(wasm).decode()}) + "\n")
    self.proc.stdin.flush()
    reply = json.loads(self.proc.stdout.readline() or '{"error": "the Node timer exited"}')
    if "error" in reply: raise RuntimeError(f"{function} did not run as WebAssembly: {reply['error']}")
    return reply["us"], reply["reassociated_us"]

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(30)

def _timing_harness(source:str, function:str, buffers:list[tuple[int, str]]) -> str:
  """A module that runs one kernel: its buffers in a static arena, fill() giving them varied values (small integers for
  integer buffers, which may index), bench(n) calling the kernel n times, bench_reassociated(n) its reassociating copy."""
  offsets, end = [], 0
  for nbytes, _ in buffers:
    offsets.append(end)
    end += -(-nbytes // WASM_ALIGN) * WASM_ALIGN
  fills = []
  for (nbytes, dtype), at in zip(buffers, offsets):
    kind, size = ("float", 4) if dtype == "float" else ("int", 4) if dtype in ("int", "uint") else ("unsigned char", 1)
    value = "(float)((s >> 9) & 0xffff) / 32768.0f - 1.0f" if kind == "float" else "(s >> 9) % 10"
    fills.append(f"  for (int i = 0; i < {nbytes // size}; i++) {{ s = s * 1103515245u + 12345u; (({kind}*)(arena + {at}))[i] = {value}; }}")
  if "void " + function + "(" not in source: raise ExportError(f"cannot find kernel {function} in its C source")
  args = ", ".join(f"(void*)(arena + {o})" for o in offsets)
  plain = source.replace("void " + function + "(", "static void kernel_under_test(", 1)
  return "\n".join([plain, reassociating(plain.replace("kernel_under_test(", "kernel_reassociated(", 1), "kernel_reassociated"),
                    f"static unsigned char arena[{max(end, WASM_ALIGN)}] __attribute__((aligned({WASM_ALIGN})));",
                    '__attribute__((export_name("fill"))) void fill(void) {', "  unsigned s = 1;", *fills, "}",
                    '__attribute__((export_name("bench"))) void bench(int n) {', f"  for (int k = 0; k < n; k++) kernel_under_test({args});", "}",
                    '__attribute__((export_name("bench_reassociated"))) void bench_reassociated(int n) {',
                    f"  for (int k = 0; k < n; k++) kernel_reassociated({args});", "}", ""])

# kernels quicker than this with tinygrad's own choice are not searched: a search costs minutes, and they cost no time
WASM_SEARCH_FLOOR_US = 20

def _opts_json(opts) -> list: return [[o.op.name, o.axis, list(o.arg) if isinstance(o.arg, tuple) else o.arg] for o in opts]

@contextlib.contextmanager
def wasm_search(recorded:dict, chosen:dict):
  """While capturing with BEAM > 0 on the CPU device: every kernel's schedule is picked by tinygrad's BEAM search with
  its candidates timed as WebAssembly (WasmTimer), not natively, each as rendered and reassociating, the better of the
  two counting (choose_reassociation later decides which a kernel ships as), and kept only where it beats tinygrad's own choice
  (hand_coded_optimizations), also timed as WebAssembly. A kernel whose AST has a schedule in `recorded` ({ast key:
  {"opts"}}, from an earlier export) takes it without a search, so a re-export reproduces it; every kernel's choice is
  put in `chosen` (name, opts, µs, and tinygrad's own choice's µs), which the exporter writes into the metadata."""
  from dataclasses import replace
  import tinygrad.codegen.opt.search as search
  from tinygrad.codegen.opt import Opt, OptOps
  from tinygrad.codegen.opt.heuristic import hand_coded_optimizations
  from tinygrad.uop.ops import Ops
  from tinygrad.codegen import to_program
  from tinygrad.helpers import ansistrip
  timer, original_search, original_time = WasmTimer(), search.beam_search, search._time_program

  def timed(s) -> float:
    ast = s.copy().get_optimized_ast(name_override="test")
    prg = to_program(ast.substitute({u: u.replace(arg=replace(u.arg, device="CPU")) for u in ast.toposort() if u.op is Ops.PARAM}), s.ren)
    source = next(u.arg for u in prg.src if u.op is Ops.SOURCE)
    params = sorted([u for u in ast.toposort() if u.op is Ops.PARAM], key=lambda u: u.arg.slot)
    return min(timer.microseconds(source, prg.arg.function_name, [(u.max_numel() * u.dtype.itemsize, u.dtype.name) for u in params]))

  def time_program(prg, var_vals, rawbufs, *args, **kwargs) -> list[float]:
    source = next(u.arg for u in prg.src if u.op is Ops.SOURCE)
    try: return [min(timer.microseconds(source, prg.arg.function_name, [(b.nbytes, b.dtype.name) for b in rawbufs])) / 1e6]
    except (RuntimeError, ExportError): return [float("inf")]

  def beam(s, rawbufs, var_vals, amt, allow_test_size=True, disable_cache=False):
    key = s.ast.key.hex()
    if key in recorded:
      out = s.copy()
      for op, axis, arg in recorded[key]["opts"]: out.apply_opt(Opt(OptOps[op], axis, tuple(arg) if isinstance(arg, list) else arg))
      chosen[key] = recorded[key]
      return out
    own = hand_coded_optimizations(s.copy())
    own_us = timed(own)
    best, best_us = own, own_us
    if own_us >= WASM_SEARCH_FLOOR_US:
      found = original_search(s, rawbufs, var_vals, amt, allow_test_size=False, disable_cache=True)
      if (found_us := timed(found)) < own_us: best, best_us = found, found_us
    chosen[key] = {"name": ansistrip(best.copy().get_optimized_ast().arg.name), "opts": _opts_json(best.applied_opts), "us": round(best_us, 2),
                   "tinygrad_us": round(own_us, 2)}
    if own_us >= WASM_SEARCH_FLOOR_US: print(f"wasm search: {chosen[key]['name']}: {own_us:.0f} -> {best_us:.0f} us", file=sys.stderr, flush=True)
    return best

  search.beam_search, search._time_program = beam, time_program
  try: yield
  finally:
    search.beam_search, search._time_program = original_search, original_time
    timer.close()

REASSOCIATE = "#pragma clang fp reassociate(on)"

def reassociating(source:str, function:str) -> str:
  """`source` with the kernel `function` allowed to reassociate its float arithmetic (clang's pragma, for that function
  alone): its sums may then be kept in vector registers and added up at the end, as -ffast-math would allow everywhere."""
  at = source.index("{", source.index(function + "(")) + 1
  return source[:at] + "\n" + REASSOCIATE + "\n" + source[at:]

# a kernel is reassociated only where it pays this much: a sum in another order differs in its last bits (the tests hold
# both backends to tinygrad within their tolerances)
REASSOCIATE_GAIN = 0.85

def choose_reassociation(kernels:list[dict], buffers:list[dict], programs:dict[str, list[dict]], recorded:dict, chosen:dict):
  """Mark ("reassociate": True) each WebAssembly kernel that runs faster when clang may reassociate its float sums, by
  timing it both ways as WebAssembly (WasmTimer); kernels quicker than WASM_SEARCH_FLOOR_US are left as they are. A
  kernel (by the hash of its source) whose choice is in `recorded` (an earlier export's) takes it again; every choice is
  put in `chosen`: {hash: {"name", "reassociate", "us", "reassociated_us"}}."""
  first_use = {}
  for ds in programs.values():
    for d in ds: first_use.setdefault(d["kernel"], d)
  timer = None
  try:
    for i, d in first_use.items():
      k = kernels[i]
      key = hashlib.sha256(k["source"].encode()).hexdigest()[:16]
      if key not in recorded:
        timer = timer or WasmTimer()
        args = [(buffers[b]["bytes"], buffers[b]["dtype"]) for b in d["buffers"]]
        plain, summed = timer.microseconds(k["source"], k["function"], args)
        recorded[key] = {"name": k["function"], "reassociate": plain >= WASM_SEARCH_FLOOR_US and summed < REASSOCIATE_GAIN * plain,
                         "us": round(plain, 2), "reassociated_us": round(summed, 2)}
        if recorded[key]["reassociate"]: print(f"wasm reassociate: {k['function']}: {plain:.0f} -> {summed:.0f} us", file=sys.stderr, flush=True)
      chosen[key] = recorded[key]
      k["reassociate"] = recorded[key]["reassociate"]
  finally:
    if timer: timer.close()

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
                 weights_dtype:str="float16", report:dict|None=None, finetune:bool=True, fit:dict|None=None,
                 wasm_schedules:dict|None=None) -> Path:
  """Write `out_dir/name/`: `name.js` (the ES module: the plan, the forward's WGSL and the runtime), `name.wasm` (the
  forward on WebAssembly), `name.extras.json` and `name.extras.wasm` (what the page loads on demand: the WGSL of the
  other programs, and a WebAssembly module with every program), `name.safetensors` (the weights, read by both
  backends), `name.json` (metadata) and, given a `report` (test_report), `name.report.json`.

  The programs: "forward" maps a normalised (1, 1, 28, 28) float32 image to 10 logits; "taps" also returns the
  outputs of the layers the model names in `model.taps`, if it has them; "train" (with `finetune`) is finetune_step;
  "fit" (given `fit`: {"optimizer": the scripts' optimizer over every parameter, "batch": its batch size, "schedule":
  {"kind", "warmup"} of the scripts' learning rate}) is fit_step, with init_spec for a fresh start. Writing is atomic:
  on any failure the previous export is left untouched.

  `weights_dtype` float16 stores the weights in half the bytes; the model must already hold float16-exact weights
  (round_weights), so that the accuracy measured on it (the report's) is the accuracy of exactly what is shipped.

  `wasm_beam` > 0 picks every program's WebAssembly kernels by tinygrad's BEAM search of that width, each candidate
  timed as WebAssembly in V8 (wasm_search), a kernel keeping tinygrad's own schedule unless a found one is faster, and
  then lets each kernel reassociate its float sums where that is clearly faster (choose_reassociation); the choices go
  into `name.schedules.json` ({"kernels": by AST, "reassociate": by source}; the metadata names it, the page never reads
  it), and `wasm_schedules` (an earlier export's) makes a re-export take them again without a search. It never touches
  the WebGPU kernels."""
  if not name.isidentifier(): raise ExportError(f"model name {name!r} must be an identifier (it names files and a JS module)")
  if weights_dtype not in WEIGHT_DTYPES: raise ExportError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}")
  check_webgpu()
  from tinygrad import dtypes
  from tinygrad.nn.state import get_state_dict
  # export what the kernels read: float tensors; integer bookkeeping (batch-norm's step counter) never enters the forward
  state = {k: v for k, v in get_state_dict(model).items() if dtypes.is_float(v.dtype)}
  weights = {k: _stored(v.numpy(), weights_dtype, k) for k, v in state.items()}
  chosen, reassociated = {}, {}
  recorded = wasm_schedules or {}
  programs, about = capture_programs(model, state, wasm_beam, finetune, fit, (recorded.get("kernels", {}), chosen))
  files, backends = build_backends(name, programs, (recorded.get("reassociate", {}), reassociated) if wasm_beam else None)
  plan = {"name": name, "inputShape": list(INPUT_SHAPE), "outputLength": N_CLASSES, **about, **backends}
  meta = {"name": name, **(metadata or {}), **({"test_accuracy": report["accuracy"]} if report is not None else {}),
          "params": (metadata or {}).get("params", sum(int(np.prod(w.shape)) for w in weights.values())),
          "weights_dtype": sorted({str(w.dtype) for w in weights.values()}), "tinygrad_version": _version(), **input_contract(),
          "finetune": about["train"],
          "fit": {k: v for k, v in about["fit"].items() if k != "init"} if about["fit"] else None,
          "kernels": len(backends["webgpu"]["kernels"]), "dispatches": len(backends["webgpu"]["programs"]["forward"]),
          "backends": ["webgpu", "wasm"], "wasm_kernels": len({d["kernel"] for d in backends["wasm"]["dispatches"]["forward"]}),
          "wasm_beam": wasm_beam, **({"wasm_schedules": f"{name}.schedules.json"} if chosen else {})}
  return write_export(Path(out_dir), name, weights, files, plan, meta, report, {"kernels": chosen, "reassociate": reassociated} if chosen else None)

def capture_programs(model, state:dict, wasm_beam:int, finetune:bool, fit:dict|None, schedules:tuple[dict, dict]) -> tuple[dict, dict]:
  """Every program of the export, captured (see export_model), and what the page must know about them: the taps, the
  fine-tuning step ("train") and the training from scratch ("fit", with each tensor's initialisation)."""
  probe = {"input": np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32)}
  searched = {"wasm_beam": wasm_beam, "schedules": schedules}
  programs = {"forward": capture(lambda x: {"output": model(x)}, probe, state, **searched)}
  taps = []
  if getattr(model, "taps", None):
    taps = _tap_info(model, state)
    def with_taps(x):
      found = layer_taps(model, x)
      return {"output": found.pop(taps[-1]["name"]), **found}
    if "output" in model.taps.values(): raise ExportError("a tap cannot be named 'output'")
    programs["taps"] = capture(with_taps, probe, state, **searched)
  batch_norm = any("running_mean" in k for k in state)
  train = None
  if finetune:
    trains = last_layer(model, state)
    step, example, opt_state = finetune_step(model, only=trains)
    programs["train"] = capture(step, example, state, extra_state=opt_state, **searched)
    train = {"batch": FINETUNE_BATCH, "lr": FINETUNE_LR, "optimizer": "adam", "trains": sorted(trains),
             "batch_norm": "running statistics, frozen" if batch_norm else None, "dropout": "off"}
  about_fit = evaluate = None
  if fit:
    # the trainer's measurements (held-out digits during training, the whole test set after) take EVAL_BATCH at once
    batch = {"images": np.random.default_rng(1).standard_normal((EVAL_BATCH, *INPUT_SHAPE[1:]), dtype=np.float32)}
    programs["evaluate"] = capture(lambda images: {"logits": model(images)}, batch, state, **searched)
    evaluate = {"batch": EVAL_BATCH}
    init = init_spec(model, state)     # before the step: the capture below leaves the weights as they are
    step, example, opt_state = fit_step(model, fit["optimizer"], fit["batch"])
    programs["fit"] = capture(step, example, state, extra_state=opt_state, **searched)
    about_fit = {"batch": fit["batch"], "epochs": fit.get("epochs"), "optimizer": fit["schedule"]["optimizer"], "lr": float(example["lr"][0]),
                 "schedule": fit["schedule"], "trains": sorted(k for k, v in state.items() if v.is_param), "init": init,
                 "batch_norm": "batch statistics, running statistics updated" if batch_norm else None,
                 "dropout": fit.get("dropout") or "off"}
  for t in taps: t["buffer"] = "output" if t is taps[-1] else t["name"]
  return programs, {"taps": taps, "train": train, "fit": about_fit, "evaluate": evaluate}

def build_backends(name:str, programs:dict, reassociation:tuple[dict, dict]|None=None) -> tuple[dict[str, bytes], dict]:
  """Each backend's kernels and buffers for all the programs, and the files that hold what the first visit does not
  load: the forward's WebAssembly module (with the programs that need no other kernel: the taps), and the extras (the
  WGSL and a WebAssembly module of every program: the training steps), loaded when the page first asks for them.
  `reassociation` (recorded, chosen): let the WebAssembly kernels that gain from it reassociate (choose_reassociation)."""
  webgpu = merge({p: c["webgpu"] for p, c in programs.items()})
  wasm = merge({p: c["wasm"] for p, c in programs.items()})
  if reassociation is not None: choose_reassociation(*wasm, *reassociation)
  shapes = {b["name"]: b["shape"] for b in webgpu[1] if b["kind"] == "output" and b.get("program") == "taps"}
  base = {p for p, ds in wasm[2].items() if all(_used_by(d["kernel"], wasm[2]["forward"]) for d in ds)}
  base_c, base_offsets = render_c(wasm[0], wasm[1], {p: ds for p, ds in wasm[2].items() if p in base})
  files = {"wasm": compile_wasm(base_c)}
  extras = None
  if len(base) < len(wasm[2]):
    extras_c, extras_offsets = render_c(*wasm)
    files["extras.wasm"] = compile_wasm(extras_c)
    extras = {"offsets": extras_offsets, "programs": sorted(wasm[2])}
  webgpu_extras = not all(_used_by(i, webgpu[2]["forward"]) for i in range(len(webgpu[0])))
  if webgpu_extras: files["extras.json"] = render_extras(webgpu[0], webgpu[2]).encode()
  # each program's input buffers by name (two training steps may each take "images", at their own batch sizes)
  inputs = lambda kernels, buffers, dispatches: {p: {buffers[i]["name"]: i for d in ds for i in d["buffers"] if buffers[i]["kind"] == "input"}
                                                 for p, ds in dispatches.items()}
  return files, {
    "shapes": shapes, "kernelSources": webgpu[0],
    "webgpu": {"kernels": [{"name": k["function"], "extras": not _used_by(i, webgpu[2]["forward"])} for i, k in enumerate(webgpu[0])],
               "buffers": webgpu[1], "programs": webgpu[2], "inputs": inputs(*webgpu), "extras": webgpu_extras},
    "wasm": {"buffers": wasm[1], "programs": {p: entry_point(p) for p in wasm[2]}, "inputs": inputs(*wasm), "dispatches": wasm[2],
             "base": {"offsets": base_offsets, "programs": sorted(base)}, "extras": extras}}

def write_export(out_dir:Path, name:str, weights:dict, files:dict[str, bytes], plan:dict, meta:dict, report:dict|None,
                 schedules:dict|None=None) -> Path:
  """The files, the plan's module and the metadata (each file's hash and size), and the exporter's own record of the
  WebAssembly kernels it chose (`schedules`, which the page never loads), staged beside the model's folder and swapped
  into its place in one step."""
  from safetensors.numpy import save_file
  final = out_dir / name
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f".{name}.*.tmp"): shutil.rmtree(stale, ignore_errors=True)   # left by a killed export
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
  except OSError as e: raise ExportError(f"output folder {out_dir} is not writable ({e.strerror})") from None
  try:
    # one metadata key: safetensors orders several arbitrarily, and the same weights should give the same file (and hash)
    save_file(weights, staged / f"{name}.safetensors", metadata={"model": name})
    files["safetensors"] = (staged / f"{name}.safetensors").read_bytes()
    if report is not None: files["report.json"] = (json.dumps(report, separators=(",", ":")) + "\n").encode()
    sha = {ext: hashlib.sha256(data).hexdigest() for ext, data in files.items()}
    file_info = lambda ext, **extra: {"sha256": sha[ext], "bytes": len(files[ext]), **extra}
    shapes, kernels = plan.pop("shapes"), plan.pop("kernelSources")
    plan["wasm"].pop("dispatches")   # in the module only as each program's inputs
    for t in plan["taps"]: t["shape"] = shapes[t["buffer"]]
    plan["weightsSha256"] = sha["safetensors"]
    plan["webgpu"]["extras"] = file_info("extras.json") if plan["webgpu"]["extras"] else None
    plan["wasm"]["base"] = file_info("wasm", **plan["wasm"]["base"])
    plan["wasm"]["extras"] = file_info("extras.wasm", **plan["wasm"]["extras"]) if plan["wasm"]["extras"] else None
    files["js"] = render_module(name, plan, kernels).encode()
    for ext, data in files.items(): _fsync_write(staged / f"{name}.{ext}", data)
    # what the page asks for, by content (?v=<the file's SHA-256>): a changed file gets a new URL, so no cache can serve a
    # stale one, and the service worker can check what it stores against the URL itself
    meta.update({"weights_sha256": sha["safetensors"], "weights_bytes": len(files["safetensors"]),
                 "taps": [{k: t[k] for k in ("name", "shape", "weight")} for t in plan["taps"]],
                 "files": {FILE_KEYS[ext]: hashlib.sha256(data).hexdigest() for ext, data in files.items()},
                 "file_bytes": {FILE_KEYS[ext]: len(data) for ext, data in files.items()},
                 "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    _fsync_write(staged / f"{name}.json", (json.dumps(meta, indent=2) + "\n").encode())
    if schedules: _fsync_write(staged / f"{name}.schedules.json", (json.dumps(schedules, indent=1) + "\n").encode())
    for f in staged.iterdir(): f.chmod(0o644)
    staged.chmod(0o755)   # mkdtemp makes it private; a web server must read it
    _install(staged, final)
  except OSError as e: raise ExportError(f"could not write {final} ({e.strerror or e})") from None
  finally: shutil.rmtree(staged, ignore_errors=True)
  return final

# a model's files, by suffix -> their names in the metadata's "files" (the page and sw.js find them there)
FILE_KEYS = {"js": "module", "safetensors": "weights", "wasm": "wasm", "extras.json": "extras_wgsl", "extras.wasm": "extras_wasm",
             "report.json": "report"}

def _used_by(kernel:int, dispatches:list[dict]) -> bool: return any(d["kernel"] == kernel for d in dispatches)

def _version() -> str:
  from importlib.metadata import version
  return version("tinygrad")

# ---------------------------------------------------------------- the generated module

RUNTIME_JS = Path(__file__).resolve().parent / "webapp" / "js" / "model_runtime.js"   # real JavaScript, tested by node --test

def render_module(name:str, plan:dict, kernels:list[dict]) -> str:
  """The model's ES module: its plan, the WGSL of the forward's kernels (the others are in name.extras.json) and the runtime.
  It exports PLAN and WGSL too: a Worker builds the same model from them with the page's own runtime (js/model_runtime.js,
  which the module embeds verbatim), so that only the page imports the module, once it has checked its hash."""
  wgsl = ",\n".join(f"  /* {k['function']} */ " + ("null" if plan["webgpu"]["kernels"][i]["extras"] else f"`{k['source']}`") for i, k in enumerate(kernels))
  return (f"// {name}: generated by export_utils.py from a tinygrad {_version()} model. Do not edit; re-export instead.\n"
          f"const PLAN = {json.dumps(plan, separators=(',', ':'))};\n\nconst WGSL = [\n{wgsl}\n];\n\n"
          f"// ---- the runtime, embedded from webapp/js/model_runtime.js\n{RUNTIME_JS.read_text()}\n"
          "export { PLAN, WGSL };\nexport default createModel(PLAN, WGSL, import.meta.url);\n")

def render_extras(kernels:list[dict], programs:dict[str, list[dict]]) -> str:
  """The WGSL of the kernels that only the other programs use (the page loads it on demand), by kernel index: JSON, which
  the page checks and parses (code from a data: URL would need a looser Content-Security-Policy)."""
  forward = {d["kernel"] for d in programs["forward"]}
  return json.dumps({str(i): k["source"] for i, k in enumerate(kernels) if i not in forward}, separators=(",", ":")) + "\n"
