"""Everything the two MNIST scripts share: knobs, data, augmentation, the training loop, evaluation, export call.

A model is any callable `model(x) -> logits` whose input is a normalised (N, 1, 28, 28) float batch. Training
runs in one `@TinyJit` step; batches are sampled, augmented and normalised on the device inside that step.
"""
import gzip, json, math, os, sys, time
from pathlib import Path
import numpy as np
from tinygrad import Tensor, TinyJit, nn, Device, Context, dtypes
from tinygrad.helpers import getenv, trange
from safetensors.numpy import save_file
from tinygrad.nn.state import get_state_dict, get_parameters, safe_load, load_state_dict

# MNIST training-set pixel statistics. The exporter writes them into each model's metadata; the page reads them there.
MEAN, STD = 0.1307, 0.3081
IMAGE_SIZE = 28

class UserError(Exception):
  """A problem with the user's input (env vars, data, paths): reported as one line, no traceback."""

# ---------------------------------------------------------------- knobs

def knob(name:str, default, lo=None, hi=None, choices=None):
  """An env-var knob read through tinygrad's getenv, checked so that bad input is one clear line."""
  try: value = getenv(name, default)
  except ValueError: raise UserError(f"{name}={os.environ.get(name)!r} is not a valid {type(default).__name__}") from None
  if isinstance(value, float) and not math.isfinite(value): raise UserError(f"{name}={value} must be a finite number")
  if choices is not None and value not in choices: raise UserError(f"{name}={value!r} must be one of: {', '.join(map(str, choices))}")
  if lo is not None and value < lo: raise UserError(f"{name}={value} must be >= {lo}")
  if hi is not None and value > hi: raise UserError(f"{name}={value} must be <= {hi}")
  return value

def training_knobs(defaults:dict) -> dict:
  """The knobs every script has; `defaults` holds the script's own defaults for any of them."""
  d = {"STEPS": 2000, "BS": 128, "LR": 1e-3, "OPT": "adam", "WD": 0.0, "MOMENTUM": 0.9, "SCHEDULE": "onecycle", "WARMUP": 0.1,
       "LABEL_SMOOTHING": 0.0, "AFFINE": 1, "ROTATE": 12.0, "SHIFT": 2.5, "SCALE": 0.12, "THICKEN": 0.3, "THIN": 0.15, "SEED": 42,
       **defaults}
  return {
    "steps": knob("STEPS", d["STEPS"], lo=0), "batch_size": knob("BS", d["BS"], lo=1, hi=60000), "lr": knob("LR", d["LR"], lo=0.0),
    "optimizer": knob("OPT", d["OPT"], choices=("adam", "adamw", "sgd", "muon")), "weight_decay": knob("WD", d["WD"], lo=0.0),
    "momentum": knob("MOMENTUM", d["MOMENTUM"], lo=0.0, hi=0.9999), "schedule": knob("SCHEDULE", d["SCHEDULE"], choices=("constant", "cosine", "onecycle")),
    "warmup": knob("WARMUP", d["WARMUP"], lo=0.0, hi=1.0), "label_smoothing": knob("LABEL_SMOOTHING", d["LABEL_SMOOTHING"], lo=0.0, hi=0.5),
    "affine": knob("AFFINE", d["AFFINE"], choices=(0, 1)), "rotate_deg": knob("ROTATE", d["ROTATE"], lo=0.0, hi=90.0),
    "shift_px": knob("SHIFT", d["SHIFT"], lo=0.0, hi=10.0), "scale": knob("SCALE", d["SCALE"], lo=0.0, hi=0.5),
    "thicken_p": knob("THICKEN", d["THICKEN"], lo=0.0, hi=1.0), "thin_p": knob("THIN", d["THIN"], lo=0.0, hi=1.0),
    "seed": knob("SEED", d["SEED"]),
  }

# ---------------------------------------------------------------- data

MNIST_FILES = {"train_images": ("train-images-idx3-ubyte.gz", 2051, 60000), "train_labels": ("train-labels-idx1-ubyte.gz", 2049, 60000),
               "test_images": ("t10k-images-idx3-ubyte.gz", 2051, 10000), "test_labels": ("t10k-labels-idx1-ubyte.gz", 2049, 10000)}

def _read_idx(path:Path, magic:int, count:int) -> np.ndarray:
  try: raw = gzip.decompress(path.read_bytes())
  except FileNotFoundError: raise UserError(f"MNIST_DIR={path.parent}: missing {path.name}") from None
  except (OSError, EOFError, gzip.BadGzipFile) as e: raise UserError(f"MNIST_DIR={path.parent}: {path.name} is not a readable gzip file ({e})") from None
  header = 16 if magic == 2051 else 8
  fields = np.frombuffer(raw[:header], dtype=">u4") if len(raw) >= header else np.zeros(0)
  want = [magic, count] + ([IMAGE_SIZE, IMAGE_SIZE] if magic == 2051 else [])
  if fields.tolist() != want or len(raw) != header + count * (IMAGE_SIZE**2 if magic == 2051 else 1):
    raise UserError(f"MNIST_DIR={path.parent}: {path.name} is corrupt (header {fields.tolist()}, {len(raw)} bytes; expected {want})")
  data = np.frombuffer(raw, dtype=np.uint8, offset=header).copy()  # a writable copy: CUDA copies fail on read-only memory
  return data.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE) if magic == 2051 else data

MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"   # where tinygrad's own loader downloads from

def download_mnist(folder:str):
  """Fetch the four MNIST files into `folder` (for a MNIST_DIR on a machine with internet)."""
  import urllib.request
  Path(folder).mkdir(parents=True, exist_ok=True)
  for name, _, _ in MNIST_FILES.values():
    print(f"downloading {name}")
    urllib.request.urlretrieve(MNIST_URL + name, Path(folder) / f".{name}.part")
    os.replace(Path(folder) / f".{name}.part", Path(folder) / name)

def load_mnist_numpy() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(X_train, Y_train, X_test, Y_test) as uint8 arrays, X of shape (N, 1, 28, 28): from MNIST_DIR, else tinygrad's download."""
  if mnist_dir := os.environ.get("MNIST_DIR"):
    folder = Path(mnist_dir)
    if not folder.is_dir(): raise UserError(f"MNIST_DIR={mnist_dir} is not a folder (it should hold the four *-ubyte.gz MNIST files)")
    x_tr, y_tr, x_te, y_te = (_read_idx(folder / name, magic, count) for name, magic, count in MNIST_FILES.values())
  else:
    from tinygrad.nn.datasets import mnist
    try: x_tr, y_tr, x_te, y_te = (t.numpy().copy() for t in mnist(device="CPU"))
    except Exception as e: raise UserError(f"could not download MNIST ({type(e).__name__}); set MNIST_DIR to a folder with the four *-ubyte.gz files") from None
  if len(x_tr) != 60000 or len(x_te) != 10000 or y_tr.max() > 9 or y_te.max() > 9: raise UserError("MNIST data has the wrong shape or labels")
  return x_tr, y_tr, x_te, y_te

def load_mnist(device:str|None=None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
  """The four MNIST arrays as tinygrad Tensors on `device`: images uint8 (N, 1, 28, 28), labels int32."""
  x_tr, y_tr, x_te, y_te = load_mnist_numpy()
  return (Tensor(x_tr, device=device), Tensor(y_tr.astype(np.int32), device=device),
          Tensor(x_te, device=device), Tensor(y_te.astype(np.int32), device=device))

def normalize(x:Tensor) -> Tensor:
  """uint8 pixels (or floats in [0, 1]) -> the model's input contract: (pixel/255 - MEAN) / STD."""
  return ((x.float() / 255 if x.dtype == dtypes.uint8 else x) - MEAN) / STD

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

def train(model, cfg:dict, X_train:Tensor, Y_train:Tensor, X_test:Tensor|None=None, Y_test:Tensor|None=None) -> dict:
  """Train `model` in place for cfg['steps'] steps. Returns the history: loss curve, test-accuracy curve, timings."""
  opt = make_optimizer(model, cfg)
  base_lrs = [o.lr.numpy().copy() for o in _optimizers(opt)]
  step = Tensor([0], dtype=dtypes.int32, device=X_train.device).contiguous().realize()

  @TinyJit
  @Context(TRAINING=1)
  def train_step() -> Tensor:
    opt.zero_grad()
    idx = Tensor.randint(cfg["batch_size"], high=X_train.shape[0], device=X_train.device)
    x = augment(X_train[idx].float() / 255, cfg)
    loss = model(normalize(x)).sparse_categorical_crossentropy(Y_train[idx], label_smoothing=cfg["label_smoothing"]).backward()
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
      test_acc = evaluate(model, X_test, Y_test)[0]
      history["accuracy_curve"].append([i + 1, test_acc])
    t.set_description(f"loss {loss_value:6.3f}" + (f" test {test_acc:5.2f}%" if eval_every else ""))
  Device[X_train.device].synchronize()
  history["train_seconds"] = time.perf_counter() - start
  history["final_loss"] = loss_value
  return history

def evaluate(model, X:Tensor, Y:Tensor, batch_size:int=1000) -> tuple[float, np.ndarray]:
  """Accuracy (percent) in eval mode (no dropout, batch-norm running statistics) and the predicted labels."""
  # no TinyJit: a slice of a realized tensor is a view of its buffer, which the JIT input swap does not follow
  preds = np.concatenate([model(normalize(X[i:i + batch_size])).argmax(axis=1).numpy() for i in range(0, X.shape[0], batch_size)])
  return round(float((preds == Y.numpy()).mean() * 100), 2), preds   # exact: one image is 0.01 %

# ---------------------------------------------------------------- checkpoints

def save_checkpoint(model, cfg:dict, training_info:dict, path:str):
  """Trained weights plus how they were trained, so that another machine can evaluate and export them (LOAD=)."""
  # through numpy: a GPU machine may have no CPU compiler for tinygrad's own copy to CPU
  save_file({k: v.numpy() for k, v in get_state_dict(model).items()}, path, metadata={"config": json.dumps(cfg), "training": json.dumps(training_info)})

def load_weights(model, path:str):
  """Load weights saved by CHECKPOINT= or by the exporter. The exporter leaves out integer bookkeeping tensors
  (batch norm's step counter) that inference never reads, so only float tensors must be present."""
  state = safe_load(path)
  expected = {k for k, v in get_state_dict(model).items() if dtypes.is_float(v.dtype)}
  if missing := sorted(expected - set(state)): raise UserError(f"{path}: missing tensors {', '.join(missing)}")
  load_state_dict(model, state, strict=False, verbose=False)
  return model

def read_checkpoint_info(path:str) -> tuple[dict, dict]:
  try:
    with open(path, "rb") as f: header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return json.loads(header["__metadata__"]["config"]), json.loads(header["__metadata__"]["training"])
  except (OSError, ValueError, KeyError) as e: raise UserError(f"LOAD={path}: not a checkpoint written by CHECKPOINT= ({type(e).__name__}: {e})") from None

# ---------------------------------------------------------------- the scripts' shared main

def check_writable(folder:Path):
  """Fail before training, not after, when the export folder cannot be written."""
  probe = folder
  while not probe.exists(): probe = probe.parent
  if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK): raise UserError(f"OUT={folder}: output folder is not writable")

def run_script(name:str, build_model, model_knobs, train_defaults:dict, describe) -> dict:
  """Parse knobs, load data, train, evaluate, export. `model_knobs()` reads the model's own knobs into a dict for
  `build_model(**cfg)`; `describe(model_cfg)` gives the architecture summary for the metadata."""
  from export_utils import export_model, ExportError
  try:
    out_dir, do_export = Path(knob("OUT", "webapp")), knob("EXPORT", 1, choices=(0, 1))
    wasm_beam = knob("WASM_BEAM", 0, lo=0, hi=32)
    checkpoint, load = knob("CHECKPOINT", ""), knob("LOAD", "")
    if load: cfg, training_info = read_checkpoint_info(load)
    else:
      cfg = {**training_knobs(train_defaults), "model": model_knobs(), "aux_lr": knob("AUX_LR", 1e-3, lo=0.0),
             "eval_every": knob("EVAL_EVERY", 0, lo=0), "log_every": knob("LOG_EVERY", 10, lo=1)}
    metrics_path = knob("METRICS", "")
    if do_export: check_writable(out_dir)
    Tensor.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    X_train, Y_train, X_test, Y_test = load_mnist()
    model = build_model(**cfg["model"])
    if load: load_weights(model, load)
    n_params = sum(p.numel() for p in get_parameters(model) if p.is_param)
    print(f"{name}: {describe(cfg['model'])}, {n_params:,} parameters, device {Device.DEFAULT}")
    if load: history = {"loss": [], "accuracy_curve": [], "train_seconds": training_info["seconds"], "final_loss": training_info["final_loss"]}
    else:
      history = train(model, cfg, X_train, Y_train, X_test, Y_test)
      training_info = {"device": Device.DEFAULT, "seconds": round(history["train_seconds"], 2), "final_loss": history["final_loss"]}
    accuracy, preds = evaluate(model, X_test, Y_test)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (Y_test.numpy(), preds), 1)
    print(f"test accuracy: {accuracy:.2f}% on all {X_test.shape[0]} test images")
    if checkpoint:
      save_checkpoint(model, cfg, training_info, checkpoint)
      print(f"checkpoint: {checkpoint}")
    if do_export:
      folder = export_model(model, name, out_dir, wasm_beam=wasm_beam, metadata={
        "test_accuracy": accuracy, "architecture": describe(cfg["model"]), "params": n_params, "config": cfg, "training": training_info})
      print(f"exported to {folder}/")
    result = {"name": name, "test_accuracy": accuracy, "params": n_params, "device": Device.DEFAULT, "config": cfg,
              "confusion": confusion.tolist(), **history}
    if metrics_path: Path(metrics_path).write_text(json.dumps(result))
    return result
  except (UserError, ExportError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
