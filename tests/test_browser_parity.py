"""The page computes what tinygrad computes: each exported model, run by its generated module in headless Chromium on
both backends (WebGPU on SwiftShader, and the WebAssembly fallback), against tinygrad's CPU forward of the same weights."""
import json, shutil
from pathlib import Path
import numpy as np
import pytest
from tinygrad import Tensor
from conftest import ROOT
from browser import serve, chromium
from test_export import build_model

N_IMAGES = 256
COMMITTED = {name: ROOT / "webapp" / name for name in ("mnist_mlp", "mnist_convnet")}

# In the page: load the module, normalise raw MNIST bytes with the metadata's mean/std (as the app does), run them all
RUN_IN_PAGE = """async ({name, count, verify, weights, backend}) => {
  const device = backend === "wasm" ? "wasm" : await (await navigator.gpu.requestAdapter()).requestDevice();
  const meta = await (await fetch(`${name}/${name}.json`)).json();
  const model = (await import(`./${name}/${name}.js`)).default;
  let run;
  try { run = await model.load(device, weights || `${name}/${name}.safetensors`, { verify }); }
  catch (e) { return { error: e.message }; }
  const pixels = new Uint8Array(await (await fetch("mnist_test_images.bin")).arrayBuffer());
  const logits = [];
  for (let i = 0; i < count; i++) {
    const x = new Float32Array(784);
    for (let j = 0; j < 784; j++) x[j] = (pixels[i * 784 + j] / 255 - meta.mean) / meta.std;
    logits.push(...(await run(x)));
  }
  return { logits, accuracy: meta.test_accuracy };
}"""

@pytest.fixture(scope="module")
def site(tmp_path_factory, quick_exports, mnist_test_set):
  """A folder served to the page: the committed models, the fresh exports and raw MNIST test bytes."""
  root = tmp_path_factory.mktemp("site")
  for name, folder in COMMITTED.items(): (root / name).symlink_to(folder)
  for name, (folder, _) in quick_exports.items(): shutil.copytree(folder, root / "fresh" / name)
  x, _ = mnist_test_set
  (root / "mnist_test_images.bin").write_bytes(x.tobytes())
  (root / "fresh" / "mnist_test_images.bin").symlink_to(root / "mnist_test_images.bin")
  with serve(root) as url, chromium() as browser:
    page = browser.new_page()
    page.goto(url)
    yield root, url, page

def _run(page, url, name, count, verify=True, weights=None, backend="webgpu"):
  page.goto(url)
  return page.evaluate(RUN_IN_PAGE, {"name": name, "count": count, "verify": verify, "weights": weights, "backend": backend})

def _reference(folder:Path, images:np.ndarray) -> np.ndarray:
  model, meta = build_model(folder)
  x = (images.astype(np.float32) / 255 - meta["mean"]) / meta["std"]
  return np.concatenate([model(Tensor(x[i:i + 128])).numpy() for i in range(0, len(x), 128)])

@pytest.mark.parametrize("backend", ["webgpu", "wasm"])
@pytest.mark.parametrize("where, name", [("committed", "mnist_mlp"), ("committed", "mnist_convnet"), ("fresh", "mnist_mlp"), ("fresh", "mnist_convnet")])
def test_browser_logits_match_tinygrad(site, mnist_test_set, where, name, backend):
  root, url, page = site
  result = _run(page, url + ("fresh/" if where == "fresh" else ""), name, N_IMAGES, backend=backend)
  assert "error" not in result, result
  got = np.array(result["logits"], dtype=np.float32).reshape(N_IMAGES, 10)
  want = _reference(root / ("fresh" if where == "fresh" else "") / name, mnist_test_set[0][:N_IMAGES])
  assert np.abs(got - want).max() < 1e-4
  assert (got.argmax(1) == want.argmax(1)).all()

def test_corrupting_one_tensor_changes_the_outputs_and_fails_verification(site, quick_exports):
  root, url, page = site
  src = root / "fresh" / "mnist_mlp"
  bad = root / "corrupt" / "mnist_mlp"
  shutil.copytree(src, bad)
  (root / "corrupt" / "mnist_test_images.bin").symlink_to(root / "mnist_test_images.bin")
  raw = bytearray((bad / "mnist_mlp.safetensors").read_bytes())
  header_len = int.from_bytes(raw[:8], "little")
  header = json.loads(raw[8:8 + header_len])
  begin, end = header["layers.1.weight"]["data_offsets"]
  start = 8 + header_len + begin
  raw[start:start + (end - begin) // 2] = bytes((end - begin) // 2)       # zero half of the first layer's weights
  (bad / "mnist_mlp.safetensors").write_bytes(raw)
  good = _run(page, url + "fresh/", "mnist_mlp", 8)["logits"]
  changed = _run(page, url + "corrupt/", "mnist_mlp", 8, verify=False)["logits"]
  assert np.abs(np.array(good) - np.array(changed)).max() > 1e-2
  assert "sha256 mismatch" in _run(page, url + "corrupt/", "mnist_mlp", 8)["error"]

def test_a_tampered_webassembly_module_fails_verification(site):
  root, url, page = site
  bad = root / "tampered" / "mnist_convnet"
  shutil.copytree(root / "fresh" / "mnist_convnet", bad)
  (root / "tampered" / "mnist_test_images.bin").symlink_to(root / "mnist_test_images.bin")
  wasm = bytearray((bad / "mnist_convnet.wasm").read_bytes())
  wasm[-1] ^= 0xFF
  (bad / "mnist_convnet.wasm").write_bytes(wasm)
  assert "sha256 mismatch" in _run(page, url + "tampered/", "mnist_convnet", 1, backend="wasm")["error"]
  assert "logits" in _run(page, url + "tampered/", "mnist_convnet", 1, backend="webgpu")      # the WebGPU path does not read it

def test_missing_or_truncated_weights_are_clear_errors(site):
  root, url, page = site
  assert "HTTP 404" in _run(page, url + "fresh/", "mnist_mlp", 1, weights="fresh/mnist_mlp/nope.safetensors")["error"]
  (root / "fresh" / "truncated.safetensors").write_bytes((root / "fresh" / "mnist_mlp" / "mnist_mlp.safetensors").read_bytes()[:5000])
  err = _run(page, url + "fresh/", "mnist_mlp", 1, verify=False, weights="truncated.safetensors")["error"]
  assert "corrupt" in err or "truncated" in err

@pytest.mark.parametrize("backend", ["webgpu", "wasm"])
@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_convnet"])
def test_browser_accuracy_on_all_10000_equals_the_metadata(site, mnist_test_set, name, backend):
  """The committed model's advertised accuracy is what the page computes on the full test set, on either backend."""
  _, url, page = site
  result = _run(page, url, name, 10000, backend=backend)
  predictions = np.array(result["logits"]).reshape(10000, 10).argmax(1)
  accuracy = float((predictions == mnist_test_set[1]).mean() * 100)
  assert accuracy == pytest.approx(result["accuracy"], abs=1e-9)
