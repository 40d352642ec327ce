"""Every knob reaches the code: env vars change the config, the config changes the model and the optimiser."""
import json
import numpy as np
import pytest
from tinygrad.helpers import getenv
from conftest import run_script

KNOBS = dict(EXPORT=0, STEPS=25, WIDTH=32, LOG_EVERY=5)

def _metrics(tmp_path, tag, **env):
  """The script as a user runs it: a process of its own, knobs as env vars."""
  path = tmp_path / f"{tag}.json"
  proc = run_script("mnist_mlp.py", METRICS=path, **KNOBS, **env)
  assert proc.returncode == 0, proc.stderr[-1500:]
  return json.loads(path.read_text())

def _metrics_here(tmp_path, monkeypatch, tag, **env):
  """The script's main in this process, knobs as env vars: tinygrad compiles the same kernels only once for all runs."""
  import runpy
  from conftest import ROOT, mnist_dir
  path = tmp_path / f"{tag}.json"
  with monkeypatch.context() as m:
    for k, v in {"MNIST_DIR": mnist_dir(), "METRICS": path, **KNOBS, **env}.items(): m.setenv(k, str(v))
    getenv.cache_clear()
    runpy.run_path(str(ROOT / "mnist_mlp.py"), run_name="__main__")
  getenv.cache_clear()
  return json.loads(path.read_text())

@pytest.mark.slow
def test_lr_changes_training_and_seed_makes_it_repeatable(tmp_path, monkeypatch):
  a = _metrics(tmp_path, "a", LR=1e-3, SEED=1)
  b, fast, other_seed = (_metrics_here(tmp_path, monkeypatch, tag, LR=lr, SEED=seed) for tag, lr, seed in (("b", 1e-3, 1), ("fast", 2e-2, 1), ("c", 1e-3, 2)))
  assert a["loss"] == b["loss"] and a["test_accuracy"] == b["test_accuracy"]          # same SEED -> same result, in any process
  assert fast["config"]["lr"] == 2e-2 and fast["loss"] != a["loss"]                   # LR reaches the optimiser
  assert other_seed["loss"] != a["loss"]

@pytest.fixture
def env(monkeypatch):
  def set_env(**kv):
    for k, v in kv.items(): monkeypatch.setenv(k, str(v))
    getenv.cache_clear()   # tinygrad caches getenv
  yield set_env
  getenv.cache_clear()

def test_training_knobs_map_to_config(env):
  from training import training_knobs
  env(STEPS=7, BS=33, LR=0.005, OPT="sgd", WD=0.01, MOMENTUM=0.8, SCHEDULE="cosine", WARMUP=0.2, LABEL_SMOOTHING=0.1,
      AFFINE=0, ROTATE=5, SHIFT=1.5, SCALE=0.05, THICKEN=0.4, THIN=0.2, SEED=9, AUX_LR=0.003, EVAL_EVERY=5, LOG_EVERY=2,
      TEACHER="t.safetensors", KD_T=2.5, KD_WEIGHT=0.9)
  cfg = training_knobs({})
  assert cfg == {"steps": 7, "batch_size": 33, "lr": 0.005, "optimizer": "sgd", "weight_decay": 0.01, "momentum": 0.8, "schedule": "cosine",
                 "warmup": 0.2, "label_smoothing": 0.1, "affine": 0, "rotate_deg": 5.0, "shift_px": 1.5, "scale": 0.05, "thicken_p": 0.4,
                 "thin_p": 0.2, "seed": 9, "aux_lr": 0.003, "eval_every": 5, "log_every": 2, "teacher": "t.safetensors",
                 "kd_temperature": 2.5, "kd_weight": 0.9}

def test_model_knobs_change_the_model(env):
  from tinygrad.nn.state import get_parameters
  import mnist_mlp, mnist_convnet
  count = lambda m: sum(p.numel() for p in get_parameters(m) if p.is_param)
  env(WIDTH=64, DEPTH=3, ACT="gelu", DROPOUT=0.1, BN=1)
  cfg = mnist_mlp.model_knobs()
  assert cfg == {"width": 64, "depth": 3, "act": "gelu", "dropout": 0.1, "bn": 1}
  assert count(mnist_mlp.MLP(**cfg)) == 784*64+64 + 2*(64*64+64) + 64*10+10 + 3*2*64
  env(CHANNELS=8, ACT="silu", DROPOUT=0.0, BN=0)
  cfg = mnist_convnet.model_knobs()
  assert count(mnist_convnet.ConvNet(**cfg)) == (25*8+8) + (25*8*8+8) + (9*8*16+16) + (9*16*16+16) + (16*9*10+10)
  env(WIDTHS="4,6,8,12", GAP=1)                                             # a width per convolution, pooled before the classifier
  cfg = mnist_convnet.model_knobs()
  assert count(mnist_convnet.ConvNet(**cfg)) == (25*4+4) + (25*4*6+6) + (9*6*8+8) + (9*8*12+12) + (12*10+10)
  assert "conv5x4-conv5x6-pool-conv3x8-conv3x12-pool-gap-linear" in mnist_convnet.describe(cfg)

@pytest.mark.parametrize("opt, kind", [("adam", "LAMB"), *(pytest.param(*p, marks=pytest.mark.slow) for p in [("adamw", "LAMB"), ("sgd", "LARS"), ("muon", "OptimizerGroup")])])
def test_optimizer_and_schedule_reach_the_step(opt, kind):
  """Each optimiser builds and trains; the one-cycle schedule ramps up over the warm-up, then anneals to ~0."""
  from tinygrad import Tensor
  from training import train, lr_factor, make_optimizer
  import mnist_mlp
  Tensor.manual_seed(0)
  cfg = {"steps": 10, "batch_size": 8, "lr": 0.003, "optimizer": opt, "weight_decay": 0.01, "momentum": 0.9, "schedule": "onecycle",
         "warmup": 0.5, "label_smoothing": 0.0, "affine": 0, "rotate_deg": 0, "shift_px": 0, "scale": 0, "thicken_p": 0, "thin_p": 0,
         "aux_lr": 0.001, "log_every": 1}
  assert type(make_optimizer(mnist_mlp.MLP(16, 1), cfg)).__name__ == kind
  x = Tensor(np.random.default_rng(0).integers(0, 255, (64, 1, 28, 28), dtype=np.uint8))
  y = Tensor(np.arange(64, dtype=np.int32) % 10)
  hist = train(mnist_mlp.MLP(16, 1), {**cfg, "steps": 3}, x, y)
  assert len(hist["loss"]) == 3 and all(np.isfinite(l) for _, l in hist["loss"])
  f = [lr_factor(Tensor([s]), cfg).item() for s in range(11)]
  assert f[0] == pytest.approx(0.04 + 0.96 / 5, rel=1e-5) and f[4] == pytest.approx(1.0, rel=1e-5)
  assert all(a > b for a, b in zip(f[5:], f[6:])) and f[10] == pytest.approx(1e-4, abs=1e-6)

@pytest.mark.slow
def test_jit_knob_reaches_tinygrad_and_export_still_works(tmp_path):
  """JIT=0 runs every step eagerly (tinygrad reads JIT itself): the same numbers, and the exporter still captures (with
  JIT=1 it exports in every test that trains, quick_exports)."""
  runs = {}
  for jit in (0, 1):
    metrics, out = tmp_path / f"jit{jit}.json", tmp_path / f"web{jit}"
    proc = run_script("mnist_mlp.py", JIT=jit, STEPS=10, WIDTH=32, LOG_EVERY=5, METRICS=metrics, OUT=out, EXPORT=1 - jit)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert (out / "mnist_mlp" / "mnist_mlp.plan.json").exists() == (jit == 0)
    runs[jit] = json.loads(metrics.read_text())
  assert runs[0]["loss"] == runs[1]["loss"] and runs[0]["test_accuracy"] == runs[1]["test_accuracy"]
