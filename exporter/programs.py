"""The programs a model exports, each a tinygrad step captured for both backends (capture.capture):

  forward   a normalised (1, 1, 28, 28) float32 image -> 10 logits
  taps      the same, plus the output of every layer the model names in `model.taps` (the page's inside view)
  train     fine-tuning on a visitor's digits: forward, cross-entropy, backward, Adam on the last layer (FINETUNE)
  evaluate  EVAL_BATCH images at once -> their logits (the trainer's held-out checks and its final test)
  fit       training from scratch: forward in training mode, cross-entropy, backward, the scripts' optimizer on every
            parameter, the learning rate an input (with init_spec: how tinygrad initialises each tensor, as data)
"""
import math
import numpy as np
from exporter import ExportError
from exporter.capture import capture
from mnist_data import INPUT_SHAPE, N_CLASSES

# Fine-tuning in the page, every knob of it (the page reads them from the metadata). Measured with a writer whose 3s the
# CNN read as 8s: on the 48-channel CNN, Adam at 1e-3 on the last layer alone taught it that writer (held-out 3s
# 0 -> 84 %) for -0.3 points on held-out MNIST, and every layer at once cost 0.8-1.8 points for the same gain; the
# 14 000-parameter CNN's last layer has a quarter of the inputs, and learns the writer at 3e-3 (0 -> 82.5 %, -0.1
# points; 1e-3: 55 %; 1e-2: 72.5 %, -2.2 points).
FINETUNE = {
  "batch": 16,       # digits per step (fixed in the captured kernels)
  "lr": 3e-3,        # Adam's learning rate
  "steps": 60,       # steps per "Fine-tune"
  "yours": 0.25,     # share of each batch that is the visitor's digits; the rest replays MNIST, so it does not forget
}
EVAL_BATCH = 100     # digits per call of "evaluate"

def export_programs(model, state:dict, finetune:bool, fit:dict|None, on_cpu=None) -> tuple[dict, dict]:
  """Every program of the export, captured, and what the page must know about them: the taps, the fine-tuning step
  ("train") and the training from scratch ("fit", with each tensor's initialisation, and "evaluate")."""
  probe = {"input": np.random.default_rng(0).standard_normal(INPUT_SHAPE, dtype=np.float32)}
  programs = {"forward": capture(lambda x: {"output": model(x)}, probe, state, on_cpu=on_cpu)}
  taps = tap_info(model, state)
  if taps: programs["taps"] = capture(_with_taps(model, taps), probe, state, on_cpu=on_cpu)
  about = {"taps": taps, "train": None, "fit": None, "evaluate": None}
  has_bn = any("running_mean" in k for k in state)
  if finetune:
    trains = last_layer(model, state)
    step, example, opt_state = finetune_step(model, trains)
    programs["train"] = capture(step, example, state, extra_state=opt_state, on_cpu=on_cpu)
    about["train"] = {**FINETUNE, "optimizer": "adam", "trains": sorted(trains), "dropout": "off",
                      "batch_norm": "running statistics, frozen" if has_bn else None}
  if fit:
    images = {"images": np.random.default_rng(1).standard_normal((EVAL_BATCH, *INPUT_SHAPE[1:]), dtype=np.float32)}
    programs["evaluate"] = capture(lambda images: {"logits": model(images)}, images, state, on_cpu=on_cpu)
    about["evaluate"] = {"batch": EVAL_BATCH}
    init = init_spec(model, state)     # before the step: the capture below leaves the weights as they are
    step, example, opt_state = fit_step(model, fit["optimizer"], fit["batch"])
    programs["fit"] = capture(step, example, state, extra_state=opt_state, on_cpu=on_cpu)
    about["fit"] = {"batch": fit["batch"], "epochs": fit.get("epochs"), "optimizer": fit["schedule"]["optimizer"], "lr": float(example["lr"][0]),
                    "schedule": fit["schedule"], "trains": sorted(k for k, v in state.items() if v.is_param), "init": init,
                    "batch_norm": "batch statistics, running statistics updated" if has_bn else None, "dropout": fit.get("dropout") or "off"}
  return programs, about

# ---------------------------------------------------------------- taps: every layer's output

def layer_taps(model, x) -> dict:
  """The outputs of the layers that the model names in `model.taps` ({index in model.layers: name}); the last is the
  logits. What the page's inside view shows, and what the tap parity test compares with."""
  found = {}
  for i, layer in enumerate(model.layers):
    x = layer(x)
    if i in model.taps: found[model.taps[i]] = x
  return found

def tap_info(model, state:dict) -> list[dict]:
  """Each tap's name, the weight of the layer that computes it (for the page's weights view), and which output of the
  "taps" program holds it (the last tap, the logits, is its "output")."""
  from tinygrad import nn
  if not getattr(model, "taps", None): return []
  if "output" in model.taps.values(): raise ExportError("a tap cannot be named 'output'")
  info, weight = [], None
  for i, layer in enumerate(model.layers):
    if isinstance(layer, (nn.Conv2d, nn.Linear)) and f"layers.{i}.weight" in state: weight = f"layers.{i}.weight"
    if i in model.taps:
      info.append({"name": model.taps[i], "weight": weight, "buffer": model.taps[i]})
      weight = None
  info[-1]["buffer"] = "output"
  return info

def _with_taps(model, taps:list[dict]):
  def step(x):
    found = layer_taps(model, x)
    return {"output": found.pop(taps[-1]["name"]), **found}
  return step

# ---------------------------------------------------------------- training steps

def last_layer(model, state:dict) -> set[str]:
  """The parameters of the model's last layer that has any: what the page fine-tunes."""
  for i in reversed(range(len(model.layers))):
    if found := {k for k in state if k.startswith(f"layers.{i}.")}: return found
  raise ExportError("the model has no parameters to fine-tune")

def finetune_step(model, only:set|None=None, batch_size:int=FINETUNE["batch"]):
  """The step the page fine-tunes with: forward, cross-entropy, backward and an Adam update of the parameters named in
  `only` (all if None). Batch norm uses its running statistics, as at inference (a batch of one visitor's digits says
  little about the statistics of MNIST), and they stay as they are; dropout is off. Returns the step (images, labels,
  lr) -> {"loss"}, example inputs, and the optimizer's state by name."""
  from tinygrad import Tensor, Context, nn
  from tinygrad.nn.state import get_state_dict, get_parameters
  name_of = {id(t): k for k, t in get_state_dict(model).items()}
  trained = [p for p in get_parameters(model) if p.is_param and (only is None or name_of[id(p)] in only)]
  opt = nn.optim.Adam(trained, lr=FINETUNE["lr"])
  def step(images:Tensor, labels:Tensor, lr:Tensor) -> dict:
    opt.zero_grad()
    with Context(TRAINING=0): loss = model(images).sparse_categorical_crossentropy(labels).backward()
    opt.lr.assign(lr)
    with Context(TRAINING=1): Tensor.realize(loss, *opt.schedule_step())
    return {"loss": loss}
  return step, example_batch(batch_size, FINETUNE["lr"]), optimizer_state(opt, name_of, "adam")

def fit_step(model, opt, batch_size:int):
  """The page's "train from scratch" step: forward in training mode (batch norm on the batch's statistics, updating its
  running statistics; no dropout: training.py refuses it, as each backend would draw its own masks), cross-entropy, backward, and `opt` (the scripts' optimizer over
  every parameter) with the learning rate as an input, so that the page runs the scripts' schedule (a group's members
  scaled by the same factor, as the scripts do). Returns the step (images, labels, lr) -> {"loss", "correct" (how many
  of the batch it read right, before the update)}, example inputs, and the optimizer's state by name."""
  from tinygrad import Tensor, Context, nn
  from tinygrad.nn.state import get_state_dict
  members = list(opt.optimizers) if isinstance(opt, nn.optim.OptimizerGroup) else [opt]
  base = [float(o.lr.numpy()[0]) for o in members]
  norms = [layer for layer in getattr(model, "layers", []) if isinstance(layer, nn.BatchNorm)]
  def step(images:Tensor, labels:Tensor, lr:Tensor) -> dict:
    opt.zero_grad()
    with Context(TRAINING=1):
      logits = _without_step_counters(norms, lambda: model(images))
      loss = logits.sparse_categorical_crossentropy(labels).backward()
      correct = (logits.argmax(-1) == labels).sum().float()
      for o, b in zip(members, base): o.lr.assign(lr * (b / base[0]))
      Tensor.realize(loss, correct, *opt.schedule_step())
    return {"loss": loss, "correct": correct}
  name_of = {id(t): k for k, t in get_state_dict(model).items()}
  return step, example_batch(batch_size, base[0]), optimizer_state(opt, name_of, "fit")

def _without_step_counters(norms:list, forward):
  """Batch norm counts its training steps in an int64 that nothing reads (and WGSL cannot hold): a plain int meanwhile."""
  counters = [layer.num_batches_tracked for layer in norms]
  for layer in norms: layer.num_batches_tracked = 0
  try: return forward()
  finally:
    for layer, counter in zip(norms, counters): layer.num_batches_tracked = counter

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

def init_spec(model, state:dict) -> dict[str, dict]:
  """How tinygrad initialises each tensor of a fresh model (nn.Linear and nn.Conv2d: weight and bias uniform in
  ±1/sqrt(fan in); nn.BatchNorm: scale and running variance 1, shift and running mean 0), for the page to start a
  training from: {name: {"uniform": [low, high]} or {"constant": value}}. A test holds it to tinygrad's own layers."""
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
