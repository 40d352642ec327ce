"""Inside the model: every layer's output (the exporter's "taps" program) matches tinygrad's own intermediate tensors
on both backends; the test-set report the exporter wrote matches a recomputation; the page's panels work, load only
when opened, and fit a phone."""
import base64, json
import numpy as np
import pytest
from tinygrad import Tensor
from conftest import ROOT
from browser import open_app, wait_settled, draw_digit, floats
from test_export import build_model
from exporter.programs import layer_taps

WEBAPP = ROOT / "webapp"
MODELS = ["mnist_mlp", "mnist_convnet"]
N_TAPPED = 50

TAPS_IN_PAGE = """async ({name, backend, images}) => {
  const device = backend === "wasm" ? "wasm" : await (await navigator.gpu.requestAdapter()).requestDevice();
  const { openModel } = await import("./js/runtime/index.js");
  const model = await openModel(`${name}/${name}.json`), meta = model.meta;
  const run = await model.load(device);
  const pixels = Uint8Array.from(atob(images), (c) => c.charCodeAt(0)), out = [];
  const b64 = (f) => { const u = new Uint8Array(f.buffer, f.byteOffset, f.byteLength); let s = ""; for (const x of u) s += String.fromCharCode(x); return btoa(s); };
  for (let i = 0; i < pixels.length / 784; i++) {
    const x = Float32Array.from(pixels.subarray(i * 784, (i + 1) * 784), (p) => (p / 255 - meta.mean) / meta.std);
    const { logits, taps } = await run(x, { taps: true });
    const plain = await run(x);
    out.push({ logits: b64(logits), plain: b64(plain), taps: Object.fromEntries(Object.entries(taps).map(([k, v]) => [k, b64(v)])) });
  }
  return out;
}"""

# the app in a browser without WebGPU (on this machine SwiftShader costs a page several CPU-seconds to bring up and time),
# and with it for the tests that need both backends
@pytest.mark.parametrize("name, backend", [("mnist_mlp", "wasm"), *(pytest.param(*p, marks=pytest.mark.slow) for p in [("mnist_mlp", "webgpu"), ("mnist_convnet", "webgpu"), ("mnist_convnet", "wasm")])])
def test_every_layer_matches_tinygrads_intermediate_tensors(gpu_app, mnist_test_set, name, backend):
  url, browser = gpu_app
  images = mnist_test_set[0][:N_TAPPED]
  page = browser.new_page()
  page.goto(url + "__blank.html")
  got = page.evaluate(TAPS_IN_PAGE, {"name": name, "backend": backend, "images": base64.b64encode(images.tobytes()).decode()})
  page.close()
  model, meta = build_model(WEBAPP / name)
  x = Tensor(((images.astype(np.float32) / 255 - meta["mean"]) / meta["std"]))
  want = {k: v.numpy().reshape(N_TAPPED, -1) for k, v in layer_taps(model, x).items()}
  assert [t["name"] for t in meta["taps"]] == list(want) and list(want)[-1] == "logits"
  for i, result in enumerate(got):
    assert set(result["taps"]) == set(want)
    for layer, values in result["taps"].items():
      assert np.abs(floats(values) - want[layer][i]).max() < 1e-4, (i, layer)
    assert np.array_equal(floats(result["logits"]), floats(result["taps"]["logits"]))
    assert np.abs(floats(result["plain"]) - want["logits"][i]).max() < 1e-4          # the plain forward agrees

@pytest.mark.parametrize("name", ["mnist_mlp", pytest.param("mnist_convnet", marks=pytest.mark.slow)])
def test_the_report_is_what_tinygrad_computes_on_the_shipped_weights(mnist_test_set, shipped_logits, name):
  x, y = mnist_test_set
  report = json.loads((WEBAPP / name / f"{name}.report.json").read_text())
  meta = json.loads((WEBAPP / name / f"{name}.json").read_text())
  logits = shipped_logits(name)
  preds = logits.argmax(1)
  assert report["accuracy"] == meta["test_accuracy"] == round(float((preds == y).mean() * 100), 2)
  confusion = np.zeros((10, 10), dtype=int)
  np.add.at(confusion, (y, preds), 1)
  assert report["confusion"] == confusion.tolist()
  for c, row in enumerate(report["per_class"]):
    tp = confusion[c, c]
    assert row["support"] == confusion[c].sum()
    assert row["precision"] == pytest.approx(tp / confusion[:, c].sum(), abs=1e-4)
    assert row["recall"] == pytest.approx(tp / confusion[c].sum(), abs=1e-4)
    assert row["f1"] == pytest.approx(2 * row["precision"] * row["recall"] / (row["precision"] + row["recall"]), abs=2e-4)
  wrong = np.nonzero(preds != y)[0]
  misread = report["misread"]
  assert misread["index"] == wrong.tolist() and misread["label"] == y[wrong].tolist() and misread["pred"] == preds[wrong].tolist()
  probs = np.exp(logits[wrong] - logits[wrong].max(1, keepdims=True))
  assert np.allclose(misread["confidence"], (probs / probs.sum(1, keepdims=True)).max(1), atol=1e-3)
  assert base64.b64decode(misread["pixels"]) == x[wrong].tobytes()

def _means(page) -> dict:
  return dict(page.evaluate("[...document.querySelectorAll('[data-testid=activations] > [data-layer]')].map((f) => [f.dataset.layer, f.dataset.mean])"))

SHOWN = ("document.querySelector('[data-testid=activations] > [data-layer]') && "
         "[...document.querySelectorAll('[data-testid=activations] > [data-layer]')].every((f) => f.dataset.mean !== '')")

def _open_inside(page, drawn:bool=True):
  page.get_by_test_id("inside").click()
  page.wait_for_function(SHOWN if drawn else "document.querySelector('[data-testid=activations] > [data-layer]')", timeout=60_000)

@pytest.mark.slow
@pytest.mark.parametrize("backend", ["webgpu", "wasm"])
@pytest.mark.parametrize("name", MODELS)
def test_the_activations_follow_the_drawing(gpu_app, mnist_test_set, name, backend):
  url, browser = gpu_app
  x, y = mnist_test_set
  page = open_app(browser, url)
  page.get_by_test_id("model-select").select_option(name)
  page.wait_for_function("document.body.dataset.settled === 'true'", timeout=120_000)
  page.get_by_test_id("backend-select").select_option(backend)
  page.wait_for_function(f"document.body.dataset.backend === '{backend}'")
  draw_digit(page, x[0], 0.7, np.random.default_rng(0))
  wait_settled(page)
  _open_inside(page)
  meta = json.loads((WEBAPP / name / f"{name}.json").read_text())
  first = _means(page)
  assert list(first) == [t["name"] for t in meta["taps"]] and all(np.isfinite(float(v)) for v in first.values())
  assert page.get_by_test_id("prediction").text_content() == str(y[0])
  page.get_by_test_id("clear").click()
  draw_digit(page, x[1], 0.7, np.random.default_rng(1))
  wait_settled(page)
  second = _means(page)
  assert page.get_by_test_id("prediction").text_content() == str(y[1])
  assert all(first[k] != second[k] for k in first), (first, second)         # every layer saw the new drawing
  assert page.locator("#weights canvas").count() == 1                       # the first layer's weights, drawn
  page.get_by_test_id("clear").click()
  wait_settled(page)
  assert set(_means(page).values()) == {""}                                 # nothing drawn, nothing shown
  assert not page.errors
  page.close()

def test_the_report_opens_a_cell_and_draws_a_misread_digit(app):
  url, browser = app
  page = open_app(browser, url)
  page.get_by_test_id("report").click()
  page.wait_for_function("document.querySelectorAll('[data-testid=confusion-cell]').length === 100", timeout=30_000)
  report = json.loads((WEBAPP / "mnist_convnet" / "mnist_convnet.report.json").read_text())
  cells = page.evaluate("[...document.querySelectorAll('[data-testid=confusion-cell]')].map((c) => [+c.dataset.true, +c.dataset.pred, +c.dataset.count])")
  assert {(t, p): n for t, p, n in cells} == {(t, p): report["confusion"][t][p] for t in range(10) for p in range(10)}
  k = 0                                                                     # the first misread digit, through its cell
  t, p = report["misread"]["label"][k], report["misread"]["pred"][k]
  page.locator(f"[data-testid=confusion-cell][data-true='{t}'][data-pred='{p}']").click()
  gallery = page.get_by_test_id("report-gallery").locator("button")
  assert gallery.count() == report["confusion"][t][p]
  _open_inside(page, drawn=False)
  gallery.first.click()
  wait_settled(page)
  page.wait_for_function(SHOWN)
  assert page.get_by_test_id("prediction").text_content() == str(p)         # read as in the test set: wrongly
  before = _means(page)
  page.get_by_test_id("sample").click()                                     # another drawing: other activations
  wait_settled(page)
  assert _means(page) != before
  assert not page.errors
  page.close()

def test_the_panels_load_their_code_only_when_opened(app):
  """(The page's own requests: the service worker fetches everything for offline use once the models are in.)"""
  url, browser = app
  page = browser.new_page()
  requested = []
  page.on("request", lambda r: requested.append(r.url.split("?")[0].removeprefix(url.rstrip("/"))))
  page.goto(url)
  page.wait_for_function("document.body.dataset.settled === 'true'", timeout=120_000)
  on_demand = ("/js/inside.js", "/js/report.js", "/mnist_convnet/mnist_convnet.report.json")
  assert not any(r in requested for r in on_demand), requested
  page.get_by_test_id("inside").click()
  page.get_by_test_id("report").click()
  page.wait_for_function("document.querySelectorAll('[data-testid=confusion-cell]').length === 100", timeout=30_000)
  assert all(r in requested for r in on_demand), requested
  page.close()

@pytest.mark.parametrize("scheme", ["light", pytest.param("dark", marks=pytest.mark.slow)])
def test_the_open_panels_fit_a_phone_and_pass_axe(app, mnist_test_set, scheme):
  url, browser = app
  context = browser.new_context(viewport={"width": 375, "height": 667}, color_scheme=scheme)
  page = context.new_page()
  page.goto(url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  page.get_by_test_id("sample").click()
  wait_settled(page)
  _open_inside(page)
  page.get_by_test_id("report").click()
  page.wait_for_function("document.querySelectorAll('[data-testid=confusion-cell]').length === 100", timeout=30_000)
  page.locator("[data-testid=confusion-cell][data-true='4'][data-pred='9']").click()
  assert page.evaluate("document.documentElement.scrollWidth") <= 375
  for testid in ("inside", "report", "activations", "confusion"):
    box = page.get_by_test_id(testid).bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375.5, testid
  page.add_script_tag(path=str(ROOT / "node_modules" / "axe-core" / "axe.min.js"))
  violations = page.evaluate("axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations)")
  assert not [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations if v["impact"] in ("serious", "critical")]
  shots = ROOT / "runs" / "screenshots"
  shots.mkdir(parents=True, exist_ok=True)
  page.screenshot(path=str(shots / f"inside-phone-{scheme}.png"), full_page=True)
  context.close()
