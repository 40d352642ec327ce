"""The page computes what tinygrad computes: each exported model, run by the model runtime in headless Chromium on
both backends (WebGPU on SwiftShader, and the WebAssembly fallback), against tinygrad's CPU forward of the same weights."""
import json, shutil
from pathlib import Path
import numpy as np
import pytest
from tinygrad import Tensor
from conftest import ROOT
from browser import serve, RUN_IN_PAGE
from test_export import build_model

N_IMAGES = 256
COMMITTED = {name: ROOT / "webapp" / name for name in ("mnist_mlp", "mnist_convnet")}

@pytest.fixture(scope="module")
def site(tmp_path_factory, mnist_test_set):
  """A folder served to the page: the committed models and raw MNIST test bytes (fresh/: see `fresh`)."""
  root = tmp_path_factory.mktemp("site")
  for name, folder in COMMITTED.items(): (root / name).symlink_to(folder)
  x, _ = mnist_test_set
  (root / "mnist_test_images.bin").write_bytes(x.tobytes())
  _beside(root, root)
  _beside(root, root / "fresh")
  with serve(root) as url:
    yield root, url

@pytest.fixture
def fresh(site, quick_exports):
  """The site with the session's fresh exports (trained and exported by the scripts in this test run) in fresh/."""
  root, url = site
  for name, (folder, _) in quick_exports.items():
    if not (root / "fresh" / name).exists(): shutil.copytree(folder, root / "fresh" / name)
  return root, url

def _beside(root:Path, folder:Path):
  """`folder` made a site of models the runtime can open: the test images and the app's js/ linked into it."""
  folder.mkdir(parents=True, exist_ok=True)
  if folder != root: (folder / "mnist_test_images.bin").symlink_to(root / "mnist_test_images.bin")
  (folder / "js").symlink_to(ROOT / "webapp" / "js")

def _run(browser, url, name, count, verify=True, weights=None, backend="webgpu"):
  page = browser.new_page()
  try:
    page.goto(url)
    return page.evaluate(RUN_IN_PAGE, {"name": name, "count": count, "verify": verify, "weights": weights, "backend": backend})
  finally: page.close()

def _reference(folder:Path, images:np.ndarray) -> np.ndarray:
  model, meta = build_model(folder)
  x = (images.astype(np.float32) / 255 - meta["mean"]) / meta["std"]
  return np.concatenate([model(Tensor(x[i:i + 128])).numpy() for i in range(0, len(x), 128)])

@pytest.mark.parametrize("where, name", [("committed", "mnist_mlp"), *(pytest.param(*p, marks=pytest.mark.slow) for p in [("committed", "mnist_convnet"), ("fresh", "mnist_mlp"), ("fresh", "mnist_convnet")])])
def test_both_backends_match_tinygrad_and_each_other(request, site, chromium_browser, mnist_test_set, where, name):
  """WebGPU's numbers are proved here, on N_IMAGES test digits, against tinygrad and against WebAssembly (whose
  accuracy on all 10 000 is checked below); SwiftShader's 10 000 are in `make bench` (bench/bench_accuracy.py)."""
  root, url = request.getfixturevalue("fresh") if where == "fresh" else site
  want = _reference(root / ("fresh" if where == "fresh" else "") / name, mnist_test_set[0][:N_IMAGES])
  got = {}
  for backend in ("webgpu", "wasm"):
    result = _run(chromium_browser, url + ("fresh/" if where == "fresh" else ""), name, N_IMAGES, backend=backend)
    assert "error" not in result, result
    got[backend] = np.array(result["logits"], dtype=np.float32).reshape(N_IMAGES, 10)
    assert np.abs(got[backend] - want).max() < 1e-4, backend
    assert (got[backend].argmax(1) == want.argmax(1)).all(), backend
  assert np.abs(got["webgpu"] - got["wasm"]).max() < 1e-4 and (got["webgpu"].argmax(1) == got["wasm"].argmax(1)).all()

@pytest.mark.slow
def test_corrupting_one_tensor_changes_the_outputs_and_fails_verification(fresh, chromium_browser):
  root, url = fresh
  src = root / "fresh" / "mnist_mlp"
  bad = root / "corrupt" / "mnist_mlp"
  shutil.copytree(src, bad)
  _beside(root, root / "corrupt")
  raw = bytearray((bad / "mnist_mlp.safetensors").read_bytes())
  header_len = int.from_bytes(raw[:8], "little")
  header = json.loads(raw[8:8 + header_len])
  begin, end = header["layers.1.weight"]["data_offsets"]
  start = 8 + header_len + begin
  raw[start:start + (end - begin) // 2] = bytes((end - begin) // 2)       # zero half of the first layer's weights
  (bad / "mnist_mlp.safetensors").write_bytes(raw)
  good = _run(chromium_browser, url + "fresh/", "mnist_mlp", 8)["logits"]
  changed = _run(chromium_browser, url + "corrupt/", "mnist_mlp", 8, verify=False)["logits"]
  assert np.abs(np.array(good) - np.array(changed)).max() > 1e-2
  assert "sha256 mismatch" in _run(chromium_browser, url + "corrupt/", "mnist_mlp", 8)["error"]

@pytest.mark.slow
def test_a_tampered_webassembly_module_fails_verification(fresh, chromium_browser):
  root, url = fresh
  bad = root / "tampered" / "mnist_convnet"
  shutil.copytree(root / "fresh" / "mnist_convnet", bad)
  _beside(root, root / "tampered")
  for build in ("mnist_convnet.wasm", "mnist_convnet.fma.wasm"):                 # whichever the browser runs
    wasm = bytearray((bad / build).read_bytes())
    wasm[-1] ^= 0xFF
    (bad / build).write_bytes(wasm)
  assert "sha256 mismatch" in _run(chromium_browser, url + "tampered/", "mnist_convnet", 1, backend="wasm")["error"]
  assert "logits" in _run(chromium_browser, url + "tampered/", "mnist_convnet", 1, backend="webgpu")      # the WebGPU path does not read it

@pytest.mark.slow
def test_missing_or_truncated_weights_are_clear_errors(fresh, chromium_browser):
  root, url = fresh
  assert "HTTP 404" in _run(chromium_browser, url + "fresh/", "mnist_mlp", 1, weights="fresh/mnist_mlp/nope.safetensors")["error"]
  (root / "fresh" / "truncated.safetensors").write_bytes((root / "fresh" / "mnist_mlp" / "mnist_mlp.safetensors").read_bytes()[:5000])
  err = _run(chromium_browser, url + "fresh/", "mnist_mlp", 1, verify=False, weights="truncated.safetensors")["error"]
  assert "corrupt" in err or "truncated" in err

@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_convnet"])
def test_browser_accuracy_on_all_10000_equals_the_metadata(site, chromium_browser, mnist_test_set, name):
  """The committed model's advertised accuracy is what the page computes on the full test set (on WebAssembly; the
  test above ties WebGPU to it)."""
  _, url = site
  result = _run(chromium_browser, url, name, 10000, backend="wasm")
  predictions = np.array(result["logits"]).reshape(10000, 10).argmax(1)
  accuracy = float((predictions == mnist_test_set[1]).mean() * 100)
  assert accuracy == pytest.approx(result["accuracy"], abs=1e-9)
