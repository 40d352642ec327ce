import contextlib, fcntl, json, os, signal, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from engines import ENGINES   # noqa: E402 (found through the path above)

def mnist_dir() -> str:
  folder = os.environ.get("MNIST_DIR") or str(ROOT.parent / "shared" / "mnist")
  if not Path(folder, "t10k-images-idx3-ubyte.gz").exists():
    pytest.fail(f"MNIST not found: set MNIST_DIR to the folder with the four *-ubyte.gz files (tried {folder})")
  return folder

def sigint_ignored():
  """preexec_fn: a process started as a shell's background job (or CI) starts it, with SIGINT ignored."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)

def _script_env(**env) -> dict:
  full_env = {k: v for k, v in os.environ.items() if k not in ("DEV", "STEPS", "BS", "LR", "SEED", "OUT")}
  full_env.update({"MNIST_DIR": mnist_dir(), "PYTHONUNBUFFERED": "1"}, **{k: str(v) for k, v in env.items()})
  return full_env

def run_script(script:str, timeout:int=900, **env) -> subprocess.CompletedProcess:
  """Run a training script as a user would, with env vars as knobs."""
  return subprocess.run([sys.executable, str(ROOT / script)], env=_script_env(**env), capture_output=True, text=True, timeout=timeout, cwd=ROOT)

@contextlib.contextmanager
def _locked(path:Path):
  with open(path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try: yield
    finally: fcntl.flock(f, fcntl.LOCK_UN)

def _shared_dir(tmp_path_factory) -> Path:
  """A folder every test process of this run sees (pytest-xdist's workers each have their own basetemp below it)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base

QUICK_RUNS = {"mnist_mlp": dict(STEPS=80, WIDTH=128), "mnist_convnet": dict(STEPS=40, CHANNELS=16)}

@pytest.fixture(scope="session")
def quick_exports(tmp_path_factory):
  """Both scripts, trained briefly and exported into a fresh webapp folder: {name: (folder, metrics)}. Trained once per
  test run, both scripts side by side; every test process shares the result (read it, copy it to change it)."""
  shared = _shared_dir(tmp_path_factory)
  out = shared / "quick_exports"
  with _locked(shared / "quick_exports.lock"):
    if not (out / "done").exists():
      out.mkdir(exist_ok=True)
      def start(name, knobs):
        env = _script_env(OUT=out, METRICS=out / f"{name}.metrics.json", JIT=1, **knobs)
        return subprocess.Popen([sys.executable, str(ROOT / f"{name}.py")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
      for name, proc in [(name, start(name, knobs)) for name, knobs in QUICK_RUNS.items()]:
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-2000:]
        assert f"exported to {out / name}/" in stdout
      (out / "done").touch()
  return {name: (out / name, json.loads((out / f"{name}.metrics.json").read_text())) for name in QUICK_RUNS}

@pytest.fixture(scope="session")
def shipped_logits(tmp_path_factory, mnist_test_set):
  """shipped_logits(name): tinygrad's logits of a committed model (webapp/<name>, as its metadata builds it) for all
  10 000 test images, computed once per test run and shared by every test process."""
  import numpy as np
  from tinygrad import Tensor
  from test_export import build_model
  shared = _shared_dir(tmp_path_factory)
  def logits(name:str):
    meta = json.loads((ROOT / "webapp" / name / f"{name}.json").read_text())
    path = shared / f"logits-{name}-{meta['files']['weights']['sha256'][:16]}.npy"
    with _locked(shared / f"logits-{name}.lock"):
      if not path.exists():
        model, _ = build_model(ROOT / "webapp" / name)
        x = (mnist_test_set[0].astype(np.float32) / 255 - meta["mean"]) / meta["std"]
        np.save(path, np.concatenate([model(Tensor(x[i:i + 1000])).numpy() for i in range(0, len(x), 1000)]))
    return np.load(path)
  return logits

# ---------------------------------------------------------------- browsers: one of each per test process

@pytest.fixture(scope="session")
def chromium_browser():
  """Headless Chromium with WebGPU (SwiftShader). Tests open pages in fresh contexts (browser.new_page() makes one)."""
  from browser import chromium
  with chromium() as b: yield b

@pytest.fixture(scope="session")
def chromium_no_webgpu():
  """Headless Chromium with WebGPU disabled: the page must fall back to WebAssembly."""
  from browser import chromium
  with chromium(webgpu=False) as b: yield b

@pytest.fixture(scope="session", params=[pytest.param(name, marks=[pytest.mark.engines, pytest.mark.xdist_group(name)]) for name in ENGINES])
def engine_browser(request):
  """Firefox or WebKit (tests/engines.py), one of each per test run: every test of an engine runs in one process."""
  from engines import engine
  with engine(request.param) as b: yield b

@pytest.fixture(autouse=True)
def _close_pages(request):
  """Every page a test opened in the shared browsers is closed after it (with its context: nothing carries over)."""
  yield
  for name in ("chromium_browser", "chromium_no_webgpu"):
    if name in request.fixturenames:
      for context in request.getfixturevalue(name).contexts: context.close()

@pytest.fixture(scope="session")
def app_url():
  """The committed app, served once per test process."""
  from browser import serve
  with serve(ROOT / "webapp") as url: yield url

@pytest.fixture
def app(app_url, chromium_no_webgpu):
  """The committed app and Chromium without WebGPU (a page on WebAssembly alone: SwiftShader costs a page seconds of CPU)."""
  return app_url, chromium_no_webgpu

@pytest.fixture
def gpu_app(app_url, chromium_browser):
  """The committed app and Chromium with WebGPU (SwiftShader)."""
  return app_url, chromium_browser

@pytest.fixture(scope="session")
def mnist_test_set():
  from mnist_data import load_mnist_numpy
  os.environ.setdefault("MNIST_DIR", mnist_dir())
  _, _, x, y = load_mnist_numpy()
  return x, y

def pytest_configure(config):
  config.addinivalue_line("markers", "engines: in Firefox and WebKit (the engine_browser fixture)")
  config.addinivalue_line("markers", "slow: left out of `make test-fast` (pytest -m 'not slow'); every test module keeps a fast test")
  config.addinivalue_line("markers", "first: a long test (minutes), started before the others so that the processes finish together")
  # Selenium's own WebKitGTK driver still builds its connection the deprecated way
  config.addinivalue_line("filterwarnings", "ignore:setting remote_server_addr:DeprecationWarning")

TEST_TIMEOUT_S = 600   # no test may hang CI: past this it fails (pytest-timeout), whatever it waits for (the slowest take ~150 s)

def pytest_collection_modifyitems(config, items):
  """`make test-fast` (pytest -m "not slow") leaves out the tests marked slow where they are written, and every test that
  needs the session's training runs (quick_exports), which must be marked too; each test module keeps a fast test.
  Every test is bounded in time."""
  fast_modules, modules = set(), set()
  for item in items:
    if item.get_closest_marker("timeout") is None: item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))
    modules.add(item.module.__name__)
    slow = item.get_closest_marker("slow") is not None
    if "quick_exports" in item.fixturenames and not slow: raise pytest.UsageError(f"{item.nodeid} trains (quick_exports): mark it slow")
    if not slow: fast_modules.add(item.module.__name__)
  if missing := modules - fast_modules: raise pytest.UsageError(f"make test-fast would run no test of {', '.join(sorted(missing))}")
  # the longest first (marked `first`), so that no process is left running one alone at the end while the others wait
  items.sort(key=lambda item: item.get_closest_marker("first") is None)
