"""Bad input to the training scripts, one table: each case ends with exit 2 and one line on stderr that names the
problem, before any training where it can be known before, and the export folder exactly as it was. Most cases run
the script's main in this process (knobs as env vars, as a user sets them); the ones that depend on the process itself
(tinygrad reading its environment as it is imported, Ctrl-C, an unwritable output found before training) run it as a
process of its own."""
import hashlib, json, runpy, shutil, signal, subprocess, sys, time
import numpy as np
import pytest
from safetensors.numpy import save_file
from conftest import ROOT, run_script, mnist_dir, _script_env, sigint_ignored

def _fingerprint(folder):
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}

@pytest.fixture
def out(tmp_path):
  """An export folder a bad run must leave alone: a copy of the shipped MLP."""
  folder = tmp_path / "webapp"
  shutil.copytree(ROOT / "webapp" / "mnist_mlp", folder / "mnist_mlp")
  return folder

def _checkpoint(path, tensors:dict, model:dict, **cfg):
  config = {"steps": 1, "batch_size": 8, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0, "momentum": 0.9, "schedule": "onecycle",
            "warmup": 0.1, "label_smoothing": 0.0, "affine": 0, "rotate_deg": 0.0, "shift_px": 0.0, "scale": 0.0, "thicken_p": 0.0,
            "thin_p": 0.0, "seed": 1, "model": model, "aux_lr": 1e-3, "eval_every": 0, "log_every": 10, **cfg}
  save_file(tensors, str(path), metadata={"config": json.dumps(config), "training": json.dumps({"device": "CPU", "seconds": 1.0, "final_loss": 1.0})})
  return path

MLP16 = {"width": 16, "depth": 1, "act": "relu", "dropout": 0.0, "bn": 0}
def _mlp16(rng, width=16):
  return {"layers.1.weight": rng.standard_normal((width, 784)).astype(np.float32), "layers.1.bias": np.zeros(width, np.float32),
          "layers.4.weight": rng.standard_normal((10, width)).astype(np.float32), "layers.4.bias": np.zeros(10, np.float32)}

def _bad_mnist(tmp_path, how:str):
  folder = tmp_path / f"mnist-{how}"
  shutil.copytree(mnist_dir(), folder)
  target = folder / "t10k-labels-idx1-ubyte.gz"
  data = target.read_bytes()
  target.write_bytes(data[:len(data) // 2] if how == "truncated" else data[:12] + bytes(b ^ 0x5a for b in data[12:]) if how == "flipped"
                     else __import__("gzip").compress(b"not mnist at all"))
  return folder

# (case id, env (a callable of tmp_path and a rng where it needs files), what the one line must say)
CASES = [
  ("steps-text", {"STEPS": "abc"}, "STEPS='abc' is not a valid int"),
  ("bs-zero", {"BS": "0"}, "BS=0 must be >= 1"),
  ("lr-text", {"LR": "fast"}, "LR='fast' is not a valid float"),
  ("lr-nan", {"LR": "nan"}, "LR=nan must be a finite number"),
  ("opt", {"OPT": "adamax"}, "OPT='adamax' must be one of"),
  ("schedule", {"SCHEDULE": "linear"}, "SCHEDULE='linear' must be one of"),
  ("seed-text", {"SEED": "x"}, "SEED='x' is not a valid int"),
  ("export-2", {"EXPORT": "2"}, "EXPORT=2 must be one of"),
  ("trainer-x", {"TRAINER": "yes"}, "TRAINER='yes' is not a valid int"),
  ("weights", {"WEIGHTS": "int4"}, "WEIGHTS='int4' must be one of"),
  ("wasm-beam", {"WASM_BEAM": "-1"}, "WASM_BEAM=-1 must be >= 0"),
  ("width-zero", {"WIDTH": "0"}, "WIDTH=0 must be >= 1"),
  ("jit-3", {"JIT": "3"}, "JIT=3 must be one of"),
  ("steps-zero", {"STEPS": "0"}, "STEPS=0 trains nothing"),
  ("trainer-dropout", {"TRAINER": "1", "DROPOUT": "0.2"}, "TRAINER=1 needs DROPOUT=0 (not 0.2)"),
  ("out-empty", {"OUT": ""}, "OUT= is empty"),
  ("out-proc", {"OUT": "/proc/no/such/webapp"}, "OUT=/proc/no/such/webapp: output folder is not writable"),
  ("out-file", lambda tmp, rng: {"OUT": str((tmp / "f").write_text("x") and tmp / "f" / "webapp")}, "output folder is not writable"),
  ("metrics-proc", {"METRICS": "/proc/no/m.json"}, "METRICS=/proc/no/m.json: output folder is not writable"),
  ("metrics-folder", lambda tmp, rng: {"METRICS": str(tmp)}, "is a folder: give a file name"),
  ("checkpoint-proc", {"CHECKPOINT": "/proc/no/c.safetensors"}, "CHECKPOINT=/proc/no/c.safetensors: output folder is not writable"),
  ("mnist-missing", {"MNIST_DIR": "/nonexistent/mnist"}, "MNIST_DIR=/nonexistent/mnist is not a folder"),
  ("mnist-truncated", lambda tmp, rng: {"MNIST_DIR": str(_bad_mnist(tmp, "truncated"))}, "t10k-labels-idx1-ubyte.gz is not a readable gzip file"),
  ("mnist-flipped", lambda tmp, rng: {"MNIST_DIR": str(_bad_mnist(tmp, "flipped"))}, "t10k-labels-idx1-ubyte.gz is not a readable gzip file"),
  ("mnist-other", lambda tmp, rng: {"MNIST_DIR": str(_bad_mnist(tmp, "other"))}, "t10k-labels-idx1-ubyte.gz is corrupt"),
  ("load-missing", {"LOAD": "/nonexistent/w.safetensors"}, "LOAD=/nonexistent/w.safetensors: no such file"),
  ("load-random", lambda tmp, rng: {"LOAD": str((tmp / "r.bin").write_bytes(rng.bytes(5000)) and tmp / "r.bin")}, "not a checkpoint written by CHECKPOINT="),
  ("load-huge-header", lambda tmp, rng: {"LOAD": str((tmp / "h.bin").write_bytes((100_000_001).to_bytes(8, "little") + b"{}") and tmp / "h.bin")},
   "not a checkpoint written by CHECKPOINT="),
  ("load-truncated", lambda tmp, rng: {"LOAD": str(_truncated(_checkpoint(tmp / "t.safetensors", _mlp16(rng), MLP16)))}, "not a readable safetensors file"),
  ("load-nan", lambda tmp, rng: {"LOAD": str(_checkpoint(tmp / "n.safetensors", {**_mlp16(rng), "layers.1.bias": np.full(16, np.nan, np.float32)}, MLP16))},
   "layers.1.bias holds values that are not finite numbers"),
  ("load-wrong-shape", lambda tmp, rng: {"LOAD": str(_checkpoint(tmp / "s.safetensors", _mlp16(rng, 12), MLP16))},
   "layers.1.weight has shape (12, 784), this model's is (16, 784)"),
  ("load-missing-tensor", lambda tmp, rng: {"LOAD": str(_checkpoint(tmp / "m.safetensors", {"layers.1.weight": _mlp16(rng)["layers.1.weight"]}, MLP16))},
   "not weights of this model (missing layers.1.bias"),
  ("load-other-model", lambda tmp, rng: {"LOAD": str(ROOT / "webapp" / "mnist_convnet" / "mnist_convnet.safetensors")}, "a checkpoint of another model"),
  ("load-bad-config", lambda tmp, rng: {"LOAD": str(_checkpoint(tmp / "c.safetensors", _mlp16(rng), {**MLP16, "act": "tanh"}))}, "a checkpoint of another model"),
]

def _truncated(path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) - 100])
  return path

def _main_here(script:str, env:dict, monkeypatch, capsys) -> tuple[int, str]:
  """The script's main in this process with `env` set: its exit code and what it printed on stderr."""
  from tinygrad.helpers import getenv
  handler = signal.getsignal(signal.SIGTERM)
  with monkeypatch.context() as m:
    for k in ("DEV", "STEPS", "BS", "LR", "SEED", "OUT", "LOAD", "METRICS", "CHECKPOINT"): m.delenv(k, raising=False)
    for k, v in {"MNIST_DIR": mnist_dir(), "STEPS": "1", "WIDTH": "16", "DEPTH": "1", "LOG_EVERY": "1", **env}.items(): m.setenv(k, v)
    getenv.cache_clear()
    capsys.readouterr()
    try:
      runpy.run_path(str(ROOT / script), run_name="__main__")
      code = 0
    except SystemExit as e: code = e.code
    finally:
      getenv.cache_clear()
      signal.signal(signal.SIGTERM, handler)
  return code, capsys.readouterr().err

@pytest.mark.parametrize("case, env, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_the_export_untouched(out, tmp_path, monkeypatch, capsys, case, env, expect):
  before = _fingerprint(out)
  env = env(tmp_path, np.random.default_rng(0)) if callable(env) else env
  start = time.perf_counter()
  code, err = _main_here("mnist_mlp.py", {"OUT": str(out), **env}, monkeypatch, capsys)
  lines = err.strip().splitlines()
  assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], (code, err)
  assert _fingerprint(out) == before and not list(out.glob(".*.tmp"))
  print(f"{case}: {lines[0]} ({time.perf_counter() - start:.1f} s)")

def test_the_cnn_script_checks_its_own_knobs(out, tmp_path, monkeypatch, capsys):
  code, err = _main_here("mnist_convnet.py", {"OUT": str(out), "CHANNELS": "0"}, monkeypatch, capsys)
  assert code == 2 and err.strip() == "error: CHANNELS=0 must be >= 1"
  code, err = _main_here("mnist_convnet.py", {"OUT": str(out), "LOAD": str(ROOT / "webapp" / "mnist_mlp" / "mnist_mlp.safetensors")}, monkeypatch, capsys)
  assert code == 2 and "a checkpoint of another model" in err and len(err.strip().splitlines()) == 1

@pytest.mark.slow
@pytest.mark.parametrize("knob", ["JIT", "DEBUG"])
def test_a_setting_tinygrad_reads_as_it_is_imported_is_one_line(out, knob):
  proc = run_script("mnist_mlp.py", OUT=out, STEPS=1, **{knob: "abc"})
  assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [f"error: {knob}='abc' is not a valid int (tinygrad reads it)"]

def test_unwritable_output_folder_fails_before_training(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  proc = run_script("mnist_mlp.py", OUT=blocker / "webapp", STEPS=1, WIDTH=8)
  assert proc.returncode == 2
  assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(f"error: OUT={blocker / 'webapp'}: output folder is not writable")
  assert "test accuracy" not in proc.stdout   # it stopped before spending time on training

@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 130)])
def test_ctrl_c_or_a_kill_while_training_is_one_line_and_exports_nothing(out, sig, code):
  before = _fingerprint(out)
  # started as a shell's background job (or CI) starts it: SIGINT ignored, which Python would otherwise keep
  proc = subprocess.Popen([sys.executable, str(ROOT / "mnist_mlp.py")], env=_script_env(OUT=out, STEPS=100000, WIDTH=16, DEPTH=1),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=sigint_ignored)
  assert proc.stdout.readline().startswith("mnist_mlp: ")                   # it has loaded MNIST and starts training
  time.sleep(2)
  proc.send_signal(sig)
  _, stderr = proc.communicate(timeout=60)
  assert proc.returncode == code and stderr.strip().splitlines()[-1] == "error: interrupted; nothing was exported", stderr
  assert "Traceback" not in stderr and _fingerprint(out) == before

@pytest.mark.slow
def test_an_exit_handler_that_hangs_after_ctrl_c_does_not_hold_the_process(out):
  """Once in CI a script interrupted while training never exited (its exit handlers waited): they get a bounded time."""
  hang = ("import atexit, runpy, sys, time; atexit.register(time.sleep, 600); sys.argv = [sys.argv[1]]; "
          "runpy.run_path(sys.argv[0], run_name='__main__')")
  proc = subprocess.Popen([sys.executable, "-c", hang, str(ROOT / "mnist_mlp.py")], env=_script_env(OUT=out, STEPS=100000, WIDTH=16, DEPTH=1),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  assert proc.stdout.readline().startswith("mnist_mlp: ")
  time.sleep(1)
  proc.send_signal(signal.SIGINT)
  start = time.monotonic()
  _, stderr = proc.communicate(timeout=60)
  assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "error: interrupted; nothing was exported", stderr
  assert time.monotonic() - start < 30                                      # the grace (10 s), not the handler's 600 s
