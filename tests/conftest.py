import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

def mnist_dir() -> str:
  folder = os.environ.get("MNIST_DIR") or str(ROOT.parent / "shared" / "mnist")
  if not Path(folder, "t10k-images-idx3-ubyte.gz").exists():
    pytest.fail(f"MNIST not found: set MNIST_DIR to the folder with the four *-ubyte.gz files (tried {folder})")
  return folder

def run_script(script:str, timeout:int=900, **env) -> subprocess.CompletedProcess:
  """Run a training script as a user would, with env vars as knobs."""
  full_env = {k: v for k, v in os.environ.items() if k not in ("DEV", "STEPS", "BS", "LR", "SEED", "OUT")}
  full_env.update({"MNIST_DIR": mnist_dir(), "PYTHONUNBUFFERED": "1"}, **{k: str(v) for k, v in env.items()})
  return subprocess.run([sys.executable, str(ROOT / script)], env=full_env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)

@pytest.fixture(scope="session")
def quick_exports(tmp_path_factory):
  """Both scripts, trained briefly and exported into a fresh webapp folder: {name: (folder, metrics)}."""
  out = tmp_path_factory.mktemp("webapp")
  runs = {"mnist_mlp": dict(STEPS=80, WIDTH=128), "mnist_convnet": dict(STEPS=40, CHANNELS=16)}
  result = {}
  for name, knobs in runs.items():
    metrics = out / f"{name}.metrics.json"
    proc = run_script(f"{name}.py", OUT=out, METRICS=metrics, JIT=1, **knobs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"exported to {out / name}/" in proc.stdout
    result[name] = (out / name, json.loads(metrics.read_text()))
  return result

@pytest.fixture(scope="session")
def mnist_test_set():
  from mnist_data import load_mnist_numpy
  os.environ.setdefault("MNIST_DIR", mnist_dir())
  _, _, x, y = load_mnist_numpy()
  return x, y
