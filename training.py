"""What the two MNIST scripts share: knobs, augmentation, optimisers and schedules, the training loop, evaluation,
checkpoints, and their common main (train, round to the stored precision, evaluate, export). The data and the input
contract are in mnist_data.py, the export in export_utils.py.

A model is any callable `model(x) -> logits` whose input is a normalised (N, 1, 28, 28) float batch. Training
runs in one `@TinyJit` step; batches are sampled, augmented and normalised on the device inside that step.
"""
import json, math, os, signal, sys, tempfile, threading, time
from pathlib import Path
import numpy as np

# tinygrad reads its settings (JIT, DEBUG, BEAM, ...) from the environment as it is imported: a value that is not a number
# stops it there, before any of the checks below could name the knob
try: import tinygrad  # noqa: F401
except ValueError as e:
  bad = [k for k in ("JIT", "DEBUG", "BEAM", "NOOPT", "CACHELEVEL", "VIZ") if not os.environ.get(k, "0").lstrip("-").isdigit()]
  print(f"error: {bad[0]}={os.environ[bad[0]]!r} is not a valid int (tinygrad reads it)" if bad else f"error: tinygrad could not read its environment ({e})",
        file=sys.stderr)
  sys.exit(2)
from tinygrad import Tensor, TinyJit, nn, Device, Context, dtypes
from tinygrad.helpers import getenv, trange
from safetensors.numpy import save_file
from tinygrad.nn.state import get_state_dict, get_parameters, load_state_dict
from mnist_data import IMAGE_SIZE, UserError, load_mnist, normalize
from export_utils import ExportError, export_model, weights_file
from evaluation import WEIGHT_DTYPES, evaluate, predict, round_weights, test_report, widened, wire_bytes

# ---------------------------------------------------------------- knobs

# Every knob is an env var read through tinygrad's getenv and checked, so that bad input is one clear line. One per line:
#   key in the config      env var             default     limits or choices                           what it sets
TRAINING_KNOBS = [
  ("steps",                "STEPS",            2000,       dict(lo=0)),                                 # training steps (each script has its own default)
  ("batch_size",           "BS",               128,        dict(lo=1, hi=60000)),                       # images per step
  ("lr",                   "LR",               1e-3,       dict(lo=0.0)),                               # peak learning rate
  ("optimizer",            "OPT",              "adam",     dict(choices=("adam", "adamw", "sgd", "muon"))),  # muon: Muon on matrices, AdamW at AUX_LR on the rest
  ("weight_decay",         "WD",               0.0,        dict(lo=0.0)),                               # decoupled weight decay (adamw, sgd, muon)
  ("momentum",             "MOMENTUM",         0.9,        dict(lo=0.0, hi=0.9999)),                    # SGD's Nesterov momentum
  ("aux_lr",               "AUX_LR",           1e-3,       dict(lo=0.0)),                               # AdamW's rate for what Muon does not train
  ("schedule",             "SCHEDULE",         "onecycle", dict(choices=("constant", "cosine", "onecycle"))),  # the learning rate over the steps
  ("warmup",               "WARMUP",           0.1,        dict(lo=0.0, hi=1.0)),                       # warm-up, as a share of STEPS
  ("label_smoothing",      "LABEL_SMOOTHING",  0.0,        dict(lo=0.0, hi=0.5)),                       # of the cross-entropy
  ("teacher",              "TEACHER",          "",         {}),                                         # distil from these weights (an export or checkpoint of either script)
  ("kd_temperature",       "KD_T",             4.0,        dict(lo=0.1, hi=100.0)),                     # the temperature that softens both outputs
  ("kd_weight",            "KD_WEIGHT",        0.7,        dict(lo=0.0, hi=1.0)),                       # the distillation term's share of the loss
  ("affine",               "AFFINE",           1,          dict(choices=(0, 1))),                       # random rotation, scale and shift on the device
  ("rotate_deg",           "ROTATE",           12.0,       dict(lo=0.0, hi=90.0)),                      # its largest rotation
  ("shift_px",             "SHIFT",            2.5,        dict(lo=0.0, hi=10.0)),                      # its largest shift
  ("scale",                "SCALE",            0.12,       dict(lo=0.0, hi=0.5)),                       # its largest change of size
  ("thicken_p",            "THICKEN",          0.3,        dict(lo=0.0, hi=1.0)),                       # chance of dilating an image (pens are thick)
  ("thin_p",               "THIN",             0.15,       dict(lo=0.0, hi=1.0)),                       # chance of eroding one
  ("seed",                 "SEED",             42,         {}),                                         # same seed, same result
  ("eval_every",           "EVAL_EVERY",       0,          dict(lo=0)),                                 # test accuracy every this many steps (0: at the end)
  ("log_every",            "LOG_EVERY",        10,         dict(lo=1)),                                 # training loss every this many steps
]
RUN_KNOBS = [
  ("out",                  "OUT",              "webapp",   {}),                                         # where to export
  ("export",               "EXPORT",           1,          dict(choices=(0, 1))),                       # 0: train and measure only
  ("trainer",              "TRAINER",          0,          dict(choices=(0, 1))),                       # 1: export <name>_trainer/, which the page trains from scratch
  ("wasm_beam",            "WASM_BEAM",        0,          dict(lo=0, hi=32)),                          # BEAM width for the WebAssembly kernels, timed as WebAssembly
  ("weights_dtype",        "WEIGHTS",          "float16",  dict(choices=WEIGHT_DTYPES)),                # how the weights file stores them (int8: per-channel scales)
  ("checkpoint",           "CHECKPOINT",       "",         {}),                                         # save the trained weights here
  ("load",                 "LOAD",             "",         {}),                                         # evaluate and export these weights instead of training
  ("metrics",              "METRICS",          "",         {}),                                         # a JSON file of the curves and results
  ("jit",                  "JIT",              1,          dict(choices=(0, 1, 2))),                    # tinygrad's JIT (0 runs the step eagerly); tinygrad reads it too
]

def knob(name:str, default, lo=None, hi=None, choices=None):
  """An env-var knob read through tinygrad's getenv, checked so that bad input is one clear line."""
  try: value = getenv(name, default)
  except ValueError: raise UserError(f"{name}={os.environ.get(name)!r} is not a valid {type(default).__name__}") from None
  if isinstance(value, float) and not math.isfinite(value): raise UserError(f"{name}={value} must be a finite number")
  if choices is not None and value not in choices: raise UserError(f"{name}={value!r} must be one of: {', '.join(map(str, choices))}")
  if lo is not None and value < lo: raise UserError(f"{name}={value} must be >= {lo}")
  if hi is not None and value > hi: raise UserError(f"{name}={value} must be <= {hi}")
  return value

def read_knobs(table:list, defaults:dict|None=None) -> dict:
  """A knob table read from the environment; `defaults` overrides some defaults by env var name (a script's own)."""
  return {key: knob(var, (defaults or {}).get(var, default), **limits) for key, var, default, limits in table}

def training_knobs(defaults:dict) -> dict:
  """The knobs every script has; `defaults` holds the script's own defaults for any of them."""
  return read_knobs(TRAINING_KNOBS, defaults)

# ---------------------------------------------------------------- augmentation (pure tensor ops: it runs inside the JIT'd step)

def affine(x:Tensor, angle:Tensor, scale:Tensor, shift_x:Tensor, shift_y:Tensor) -> Tensor:
  """Rotate (radians), scale and shift (pixels) each image of x (B, 1, 28, 28) about its centre, bilinear, zero outside.

  Bilinear sampling is separable once the source coordinates are known, so instead of a gather it is one small
  batched matmul against "tent" weights: out[p] = sum_i wy[p,i] * sum_j img[i,j] * wx[p,j]."""
  b, n, c = x.shape[0], IMAGE_SIZE, (IMAGE_SIZE - 1) / 2
  pix = Tensor.arange(n * n).to(x.device)
  ys, xs = (pix // n).float().reshape(1, -1) - c, (pix % n).float().reshape(1, -1) - c
  cos, sin, inv = angle.cos().reshape(b, 1), angle.sin().reshape(b, 1), 1 / scale.reshape(b, 1)
  dx, dy = xs - shift_x.reshape(b, 1), ys - shift_y.reshape(b, 1)
  src_x, src_y = (cos * dx + sin * dy) * inv + c, (cos * dy - sin * dx) * inv + c        # (B, 784): where each output pixel reads
  grid = Tensor.arange(n).to(x.device).float().reshape(1, 1, n)
  wx, wy = (1 - (src_x.unsqueeze(-1) - grid).abs()).relu(), (1 - (src_y.unsqueeze(-1) - grid).abs()).relu()  # (B, 784, 28)
  rows = wx.matmul(x.reshape(b, n, n).transpose(1, 2))                                  # rows[b,p,i] = sum_j img[i,j] wx[p,j]
  return (wy * rows).sum(-1).reshape(b, 1, n, n)

def augment(x:Tensor, cfg:dict) -> Tensor:
  """Random affine distortion plus stroke thickening/thinning, as seen in hand-drawn digits. x: floats in [0, 1]."""
  b = x.shape[0]
  if cfg["affine"]:
    sym = lambda: Tensor.rand(b, device=x.device) * 2 - 1
    x = affine(x, sym() * math.radians(cfg["rotate_deg"]), 1 + sym() * cfg["scale"], sym() * cfg["shift_px"], sym() * cfg["shift_px"])
  if cfg["thicken_p"] or cfg["thin_p"]:
    r = Tensor.rand(b, 1, 1, 1, device=x.device)
    thick, thin = x.max_pool2d(3, stride=1, padding=1), -(-x).max_pool2d(3, stride=1, padding=1)
    x = (r < cfg["thicken_p"]).where(thick, (r < cfg["thicken_p"] + cfg["thin_p"]).where(thin, x))
  return x.clip(0, 1)

# ---------------------------------------------------------------- optimisation

def make_optimizer(model, cfg:dict):
  params = get_parameters(model)
  lr, wd, mom = cfg["lr"], cfg["weight_decay"], cfg["momentum"]
  if cfg["optimizer"] == "adam": return nn.optim.Adam(params, lr=lr)
  if cfg["optimizer"] == "adamw": return nn.optim.AdamW(params, lr=lr, weight_decay=wd)
  if cfg["optimizer"] == "sgd": return nn.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd, nesterov=mom > 0)
  # Muon orthogonalises updates of weight matrices; vectors (biases, norms) and running stats go to AdamW
  matrices = [p for p in params if p.ndim >= 2 and p.is_param]
  rest = [p for p in params if not any(p is m for m in matrices)]
  return nn.optim.OptimizerGroup(nn.optim.Muon(matrices, lr=lr, momentum=0.95, weight_decay=wd),
                                 nn.optim.AdamW(rest, lr=cfg["aux_lr"], weight_decay=0.0))

def lr_factor(step:Tensor, cfg:dict) -> Tensor:
  """The schedule's multiplier of the base learning rate at `step` (a device tensor), computed inside the JIT."""
  total, warm = max(cfg["steps"], 1), max(int(cfg["warmup"] * cfg["steps"]), 1)
  t = step.float()
  if cfg["schedule"] == "constant": return t * 0 + 1
  ramp = ((t + 1) / warm).minimum(1)
  progress = ((t - warm) / max(total - warm, 1)).clip(0, 1)
  if cfg["schedule"] == "cosine": return ramp * (0.5 * (1 + (progress * math.pi).cos()))
  # one-cycle: linear warm-up from 4% to the peak, then cosine annealing down to ~0
  return (t < warm).where(0.04 + 0.96 * ramp, 0.5 * (1 + (progress * math.pi).cos()) + 1e-4)

def _optimizers(opt): return list(opt.optimizers) if isinstance(opt, nn.optim.OptimizerGroup) else [opt]

# ---------------------------------------------------------------- train / evaluate

def teacher_model(path:str):
  """The model whose weights are at `path` (an export's or a checkpoint's, of either script), built from its own knobs."""
  import importlib
  model_cfg = read_checkpoint_info(path, "TEACHER")[0]["model"]
  script, cls = ("mnist_convnet", "ConvNet") if "channels" in model_cfg else ("mnist_mlp", "MLP")
  try: model = getattr(importlib.import_module(script), cls)(**model_cfg)
  except (TypeError, KeyError, ValueError): raise UserError(f"TEACHER={path}: its knobs {json.dumps(model_cfg)[:120]} build no model") from None
  return load_weights(model, path, "TEACHER")

def distillation(student:Tensor, teacher:Tensor, labels:Tensor, cfg:dict) -> Tensor:
  """Hinton et al. (2015): the cross-entropy with the labels, and with weight `kd_weight` the KL divergence from the
  teacher's outputs to the student's, both softened by the temperature T (times T^2, so that its gradients keep their
  size whatever T)."""
  t = cfg["kd_temperature"]
  soft = (teacher / t).softmax(-1)
  kl = (soft * ((teacher / t).log_softmax(-1) - (student / t).log_softmax(-1))).sum(-1).mean()
  hard = student.sparse_categorical_crossentropy(labels, label_smoothing=cfg["label_smoothing"])
  return (1 - cfg["kd_weight"]) * hard + cfg["kd_weight"] * t * t * kl

def train(model, cfg:dict, X_train:Tensor, Y_train:Tensor, X_test:Tensor|None=None, Y_test:Tensor|None=None) -> dict:
  """Train `model` in place for cfg['steps'] steps (from a teacher's outputs too, given TEACHER). Returns the history:
  loss curve, test-accuracy curve, timings."""
  opt = make_optimizer(model, cfg)
  teacher = teacher_model(cfg["teacher"]) if cfg.get("teacher") else None
  base_lrs = [o.lr.numpy().copy() for o in _optimizers(opt)]
  step = Tensor([0], dtype=dtypes.int32, device=X_train.device).contiguous().realize()

  @TinyJit
  @Context(TRAINING=1)
  def train_step() -> Tensor:
    opt.zero_grad()
    idx = Tensor.randint(cfg["batch_size"], high=X_train.shape[0], device=X_train.device)
    x = normalize(augment(X_train[idx].float() / 255, cfg))
    if teacher is None: loss = model(x).sparse_categorical_crossentropy(Y_train[idx], label_smoothing=cfg["label_smoothing"])
    else:
      with Context(TRAINING=0): taught = teacher(x).detach()   # the teacher as it predicts, on the same augmented batch
      loss = distillation(model(x), taught, Y_train[idx], cfg)
    loss.backward()
    factor = lr_factor(step, cfg)
    for o, base in zip(_optimizers(opt), base_lrs): o.lr.assign(Tensor(base, device=o.lr.device) * factor)
    step.assign(step + 1)
    return loss.realize(*opt.schedule_step(), step)

  log_every, eval_every = cfg.get("log_every", 10), cfg.get("eval_every", 0)
  history = {"loss": [], "accuracy_curve": [], "log_seconds": [], "train_seconds": 0.0}
  loss_value, test_acc = float("nan"), float("nan")
  start = time.perf_counter()
  for i in (t := trange(cfg["steps"])):
    loss = train_step()
    if i % log_every == log_every - 1 or i == cfg["steps"] - 1:
      loss_value = loss.item()
      if not math.isfinite(loss_value): raise UserError(f"training diverged at step {i+1} (loss {loss_value}); lower LR")
      history["loss"].append([i + 1, loss_value])
      history["log_seconds"].append(time.perf_counter() - start)   # loss.item() synchronised: a true time
    if eval_every and X_test is not None and (i % eval_every == eval_every - 1):
      test_acc = evaluate(model, X_test, Y_test)
      history["accuracy_curve"].append([i + 1, test_acc])
    t.set_description(f"loss {loss_value:6.3f}" + (f" test {test_acc:5.2f}%" if eval_every else ""))
  Device[X_train.device].synchronize()
  history["train_seconds"] = time.perf_counter() - start
  history["final_loss"] = loss_value
  return history

# ---------------------------------------------------------------- checkpoints

def save_checkpoint(model, cfg:dict, training_info:dict, path:str):
  """Trained weights plus how they were trained, so that another machine can evaluate and export them (LOAD=)."""
  # through numpy: a GPU machine may have no CPU compiler for tinygrad's own copy to CPU
  save_file({k: v.numpy() for k, v in get_state_dict(model).items()}, path, metadata={"config": json.dumps(cfg), "training": json.dumps(training_info)})

def load_weights(model, path:str, knob:str="LOAD"):
  """Load weights saved by CHECKPOINT= or by the exporter, checked before anything uses them: a readable safetensors
  file, every float tensor of this model present with its shape, every value finite. The exporter leaves out integer
  bookkeeping tensors (batch norm's step counter) that inference never reads, so only float tensors must be present.
  `knob` names where the path came from in the errors."""
  # exported weights may be stored as float16 or int8 with scales: widen them to the model's float32
  from safetensors.numpy import load_file
  try: arrays = widened(load_file(path))
  except Exception as e: raise UserError(f"{knob}={path}: not a readable safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
  expected = {k: v for k, v in get_state_dict(model).items() if dtypes.is_float(v.dtype)}
  if missing := sorted(set(expected) - set(arrays)): raise UserError(f"{knob}={path}: not weights of this model (missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''})")
  for k, v in expected.items():
    if tuple(arrays[k].shape) != tuple(v.shape): raise UserError(f"{knob}={path}: {k} has shape {tuple(arrays[k].shape)}, this model's is {tuple(v.shape)} (other knobs?)")
    if arrays[k].dtype.kind != "f" or not np.isfinite(arrays[k]).all(): raise UserError(f"{knob}={path}: {k} holds values that are not finite numbers")
  state = {k: Tensor(a) for k, a in arrays.items() if k in expected}
  load_state_dict(model, state, strict=False, verbose=False)
  return model

SAFETENSORS_MAX_HEADER = 100_000_000   # the reference reader's limit

def read_checkpoint_info(path:str, knob:str="LOAD") -> tuple[dict, dict]:
  """How the weights at `path` were trained: from a checkpoint's own header, or from an export's metadata beside it."""
  exported = Path(path).with_suffix(".json")
  if Path(path).suffix == ".safetensors" and exported.is_file():
    try:
      meta = json.loads(exported.read_text())
      return meta["config"], meta["training"]
    except (ValueError, KeyError) as e: raise UserError(f"{knob}={path}: {exported.name} is not an export's metadata ({type(e).__name__}: {e})") from None
  try:
    with open(path, "rb") as f:
      size = int.from_bytes(f.read(8), "little")
      if not 2 <= size <= min(SAFETENSORS_MAX_HEADER, os.path.getsize(path) - 8): raise ValueError(f"a header of {size} bytes")
      header = json.loads(f.read(size))
    return json.loads(header["__metadata__"]["config"]), json.loads(header["__metadata__"]["training"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"{knob}={path}: not a checkpoint written by CHECKPOINT= ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None

# ---------------------------------------------------------------- the scripts' shared main

def recorded_schedules(folder:Path) -> dict:
  """The WebAssembly kernels' schedules and reassociation an earlier export chose (WASM_BEAM), so that exporting again
  reproduces them."""
  try: return json.loads((folder / f"{folder.name}.schedules.json").read_text())
  except (OSError, ValueError, AttributeError): return {}

def check_writable(label:str, folder:Path):
  """Fail before training, not after, when `folder` cannot be written: a file is made and removed in it, or in the
  nearest folder above it that exists (access rights alone say yes to root in /proc)."""
  probe = folder
  while not probe.exists(): probe = probe.parent
  try:
    if not probe.is_dir(): raise NotADirectoryError(f"{probe} is a file")
    fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=probe)
    os.close(fd)
    os.unlink(name)
  except OSError as e: raise UserError(f"{label}: output folder is not writable ({e.strerror or e})") from None

def run_knobs() -> dict:
  """The knobs of a run beyond the model and its training, each checked before any data is read: where the export, the
  metrics and the checkpoint go (writable), what to load, and tinygrad's own JIT (which it reads itself)."""
  run = read_knobs(RUN_KNOBS)
  if not run["out"].strip(): raise UserError("OUT= is empty: give the folder to export into (default webapp)")
  run["out"] = Path(run["out"])
  if run["export"]: check_writable(f"OUT={run['out']}", run["out"])
  for name in ("metrics", "checkpoint"):
    if run[name]:
      if Path(run[name]).is_dir(): raise UserError(f"{name.upper()}={run[name]} is a folder: give a file name")
      check_writable(f"{name.upper()}={run[name]}", Path(run[name]).parent)
  if run["load"] and not Path(run["load"]).is_file(): raise UserError(f"LOAD={run['load']}: no such file")
  return run

EXIT_GRACE_S = 10   # after an interrupt, how long exit handlers may take

def _stop(signum, frame): raise KeyboardInterrupt   # SIGTERM ends a run as Ctrl-C does: cleanly, temporary files removed

def run_script(name:str, label:str, build_model, model_knobs, train_defaults:dict, describe) -> dict:
  """Parse knobs, load data, train, evaluate, export (as `name`, shown as `label`: the page's model menu and trainer).
  `model_knobs()` reads the model's own knobs into a dict for
  `build_model(**cfg)`; `describe(model_cfg)` gives the architecture summary for the metadata. Bad input, a failure
  and an interrupt each end the run with one line on stderr (exit 2; 130 for Ctrl-C or SIGTERM)."""
  signal.signal(signal.SIGTERM, _stop)
  # Ctrl-C stops a run even where it was started with SIGINT ignored (a shell's background job, CI): Python then leaves
  # it ignored, and two CI runs' interrupts were lost that way
  signal.signal(signal.SIGINT, signal.default_int_handler)
  try: return _run(name, label, build_model, model_knobs, train_defaults, describe)
  except (UserError, ExportError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print("\nerror: interrupted; nothing was exported", file=sys.stderr, flush=True)
    # Exit handlers still run (tinygrad's compile workers are shut down with them), but bounded: they also synchronise
    # tinygrad's devices, which an interrupt may have left mid-command, and once in a CI run the process never exited
    watchdog = threading.Timer(EXIT_GRACE_S, os._exit, (130,))
    watchdog.daemon = True   # it must not itself hold the exit up
    watchdog.start()
    sys.exit(130)

def _run(name:str, label:str, build_model, model_knobs, train_defaults:dict, describe) -> dict:
  run = run_knobs()
  if run["load"]: cfg, training_info = read_checkpoint_info(run["load"])
  else:
    cfg = {**training_knobs(train_defaults), "model": model_knobs()}
    if cfg["steps"] == 0 and run["export"]: raise UserError("STEPS=0 trains nothing, so there is nothing to export: give STEPS > 0, LOAD= saved weights, or EXPORT=0")
  Tensor.manual_seed(cfg["seed"])
  np.random.seed(cfg["seed"])
  try: model = build_model(**cfg["model"])
  except (TypeError, KeyError, ValueError):
    if not run["load"]: raise
    raise UserError(f"LOAD={run['load']}: a checkpoint of another model (its knobs {json.dumps(cfg.get('model'))[:120]} do not build {name})") from None
  if run["load"]: load_weights(model, run["load"])
  if cfg.get("teacher") and not run["load"] and not Path(cfg["teacher"]).is_file(): raise UserError(f"TEACHER={cfg['teacher']}: no such file")
  if run["trainer"] and run["export"] and cfg["model"].get("dropout"):   # before training: the export would fail only after it
    raise UserError(f"TRAINER=1 needs DROPOUT=0 (not {cfg['model']['dropout']:g}): each backend draws its own dropout masks, so the exported step could not be checked against the model's")
  X_train, Y_train, X_test, Y_test = load_mnist()
  n_params = sum(p.numel() for p in get_parameters(model) if p.is_param)
  print(f"{name}: {describe(cfg['model'])}, {n_params:,} parameters, device {Device.DEFAULT}")
  if run["load"]: history = {"loss": [], "accuracy_curve": [], "train_seconds": training_info["seconds"], "final_loss": training_info["final_loss"]}
  else:
    history = train(model, cfg, X_train, Y_train, X_test, Y_test)
    training_info = {"device": Device.DEFAULT, "seconds": round(history["train_seconds"], 2), "final_loss": history["final_loss"]}
  if run["checkpoint"]:
    save_checkpoint(model, cfg, training_info, run["checkpoint"])
    print(f"checkpoint: {run['checkpoint']}")
  report = test_report(predict(model, X_test), Y_test.numpy(), X_test.numpy())
  print(f"test accuracy: {report['accuracy']:.2f}% on all {X_test.shape[0]} test images")
  shipped = as_shipped(name, model, run["weights_dtype"], report, X_test, Y_test)
  if run["load"] and (trained := exported_accuracy_before_rounding(run["load"])) is not None:
    shipped["test_accuracy_float32"] = trained   # weights loaded from an export were rounded already: before that, they read this
  if run["export"]: export_run(name, label, model, cfg, run, report, shipped, n_params, describe, training_info, X_train)
  result = {"name": name, "test_accuracy": report["accuracy"], "params": n_params, "device": Device.DEFAULT, "config": cfg,
            "confusion": report["confusion"], "shipped": shipped, **history}
  if run["metrics"]:
    try: Path(run["metrics"]).write_text(json.dumps(result))
    except OSError as e: raise UserError(f"METRICS={run['metrics']}: could not write it ({e.strerror})") from None
  return result

def as_shipped(name:str, model, dtype:str, report:dict, X_test, Y_test) -> dict:
  """Round the weights in place to how the weights file stores them and measure that model (`report` updated): what
  ships is what was measured. Returns the precision, the accuracy before rounding, and the weights file's bytes and its
  bytes on the wire (as GitHub Pages serves it)."""
  before = report["accuracy"]
  if round_weights(model, dtype):
    report.update(test_report(predict(model, X_test), Y_test.numpy(), X_test.numpy()))
    print(f"test accuracy: {report['accuracy']:.2f}% with the weights rounded to {dtype} as shipped")
  data = weights_file(model, dtype, name)[0]
  return {"weights_dtype": dtype, "test_accuracy_float32": before, "weights_bytes": len(data), "wire_bytes": wire_bytes(f"{name}.safetensors", data)}

def export_run(name:str, label:str, model, cfg:dict, run:dict, report:dict, shipped:dict, n_params:int, describe, training_info:dict, X_train):
  """Export the model as shipped (as_shipped); the model it replaces and this one are both named with their accuracy,
  so that a worse model never replaces a better one unnoticed."""
  precision = {k: shipped[k] for k in ("weights_dtype", "test_accuracy_float32")}
  # TRAINER=1: a model the page trains from scratch, with the scripts' optimizer and schedule at this batch size
  fit = {"optimizer": make_optimizer(model, cfg), "batch": cfg["batch_size"], "dropout": cfg["model"].get("dropout", 0.0),
         "epochs": round(cfg["steps"] * cfg["batch_size"] / len(X_train), 2),
         "schedule": {"optimizer": cfg["optimizer"], "kind": cfg["schedule"], "warmup": cfg["warmup"]}} if run["trainer"] else None
  export_name = name + ("_trainer" if run["trainer"] else "")
  before = previous_accuracy(run["out"] / export_name)
  folder = export_model(model, export_name, run["out"], label=label, wasm_beam=run["wasm_beam"], weights_dtype=run["weights_dtype"],
                        wasm_schedules=recorded_schedules(run["out"] / export_name), report=report, fit=fit,
                        metadata={**precision, "architecture": describe(cfg["model"]), "params": n_params, "config": cfg, "training": training_info})
  print(f"exported to {folder}/" + (f" (it replaced a model of {before:.2f}%, this one {report['accuracy']:.2f}%" +
                                    ("; lower" if report["accuracy"] < before else "") + ")" if before is not None else ""))

def _accuracy_in_metadata(metadata:Path, key:str) -> float|None:
  try: return float(json.loads(metadata.read_text())[key])
  except (OSError, ValueError, KeyError, TypeError): return None

def exported_accuracy_before_rounding(path:str) -> float|None:
  """The accuracy an export's weights had before they were rounded to how it stores them, from its metadata (None if
  `path` is not an export's weights file)."""
  return _accuracy_in_metadata(Path(path).with_suffix(".json"), "test_accuracy_float32")

def previous_accuracy(folder:Path) -> float|None:
  """The test accuracy of the model an export is about to replace, from its metadata (None if there is none)."""
  return _accuracy_in_metadata(folder / f"{folder.name}.json", "test_accuracy")
