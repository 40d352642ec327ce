"""The app end to end in the other browser engines, Firefox (Gecko) and WebKit (Safari's engine), as a visitor uses it:
neither has WebGPU here, so the page must say so and run on WebAssembly; drawn digits are read; a sample, a model
switch, the inside view, the report and fine-tuning work; a second visit works offline; and the models compute on
WebAssembly exactly what they compute in Chromium. Each test gets a fresh origin (its own server), so no test sees
another's storage, caches or service worker."""
import base64, json, re
import numpy as np
import pytest
from conftest import ROOT
from browser import serve, digit_strokes, DISPATCH_STROKES, Server

WEBAPP = ROOT / "webapp"
MODELS = ["mnist_mlp", "mnist_convnet"]
N_DRAWN = 10   # per model and engine (Chromium draws 100 per model and backend in test_app.py)

@pytest.fixture
def engine_app(engine_browser):
  """A fresh origin with the app, and a page in `browser` that has loaded it and is ready."""
  server = Server()
  with serve(WEBAPP, server=server) as url:
    page = engine_browser.open(1280, 900)
    page.goto(url)
    page.wait_for("document.body.dataset.ready === 'true'", timeout=120)
    page.url, page.server = url, server
    yield page
    errors = [e for e in page.errors if "never-cached.txt" not in e]      # the offline test's own probe
    assert not errors, errors
    page.close()

def click(page, testid): page.evaluate("(id) => document.querySelector(`[data-testid='${id}']`).click()", testid)
def text(page, testid): return page.evaluate("(id) => document.querySelector(`[data-testid='${id}']`).textContent", testid)

def select(page, testid, value):
  page.evaluate("([id, v]) => { const s = document.querySelector(`[data-testid='${id}']`); s.value = v; s.dispatchEvent(new Event('change')); }",
                [testid, value])

def settled(page): page.wait_for("document.body.dataset.busy === 'false'", timeout=30)

def draw(page, digit, height_frac, rng):
  page.evaluate(DISPATCH_STROKES, digit_strokes(digit, height_frac, rng))
  settled(page)
  return text(page, "prediction")

def test_without_webgpu_it_says_so_and_reads_drawn_digits_on_webassembly(engine_app, engine_browser, mnist_test_set):
  page = engine_app
  page.wait_for("document.body.dataset.settled === 'true'", timeout=120)
  assert page.evaluate("() => !navigator.gpu")                              # as on this machine: no WebGPU in either engine
  assert page.evaluate("() => !document.getElementById('no-webgpu').hidden") and "WebAssembly" in page.evaluate(
    "() => document.getElementById('no-webgpu').textContent")
  # the page says how it runs WebAssembly: its threads (one on a first visit, which is not cross-origin isolated, and
  # why) and FMA where the engine validates relaxed SIMD
  said = re.search(r"Running on WebAssembly · (\d+) threads?( · FMA)? ", text(page, "backend"))
  assert text(page, "status").startswith("Ready · WebAssembly") and said and "WebGPU unavailable" in text(page, "backend"), text(page, "backend")
  assert said[1] != "1" or "one thread: " in text(page, "backend"), text(page, "backend")
  print(f"{engine_browser.name}: {said[0]}")
  x, y = mnist_test_set
  rng = np.random.default_rng(11)
  for name in MODELS:
    select(page, "model-select", name)
    page.wait_for("document.body.dataset.ready === 'true'", timeout=120)
    picks = rng.choice(len(x), N_DRAWN, replace=False)
    read = []
    for i in picks:
      click(page, "clear")
      read.append(draw(page, x[i], rng.uniform(0.45, 0.85), rng) == str(y[i]))
    print(f"{engine_browser.name} {name}: {sum(read)} of {N_DRAWN} drawn digits read")
    assert sum(read) >= N_DRAWN - 1, (name, read)
    assert text(page, "inference-ms").endswith("WebAssembly")

@pytest.mark.slow
def test_a_sample_and_a_model_switch(engine_app, mnist_test_set):
  page = engine_app
  click(page, "sample")
  settled(page)
  shown = text(page, "prediction")
  probs = page.evaluate("() => [...Array(10).keys()].map((d) => +document.querySelector(`[data-testid=prob-${d}]`).dataset.value)")
  assert shown.isdigit() and probs.index(max(probs)) == int(shown) and max(probs) > 0.5 and abs(sum(probs) - 1) < 1e-4
  before = probs
  for name in ("mnist_mlp", "mnist_convnet"):
    select(page, "model-select", name)
    page.wait_for("document.body.dataset.ready === 'true'", timeout=120)
    settled(page)
    meta = json.loads((WEBAPP / name / f"{name}.json").read_text())
    info = page.evaluate("() => document.getElementById('model-info').textContent")
    assert f"{meta['test_accuracy']:.2f}%" in info and f"{meta['params']:,}" in info
    probs = page.evaluate("() => [...Array(10).keys()].map((d) => +document.querySelector(`[data-testid=prob-${d}]`).dataset.value)")
    assert (probs != before) == (name == "mnist_mlp")                     # the same drawing, read by another model

@pytest.mark.slow
def test_the_inside_view_and_the_report_open(engine_app, mnist_test_set):
  page = engine_app
  x, y = mnist_test_set
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[0].reshape(-1).tolist())
  settled(page)
  click(page, "inside")
  page.wait_for("[...document.querySelectorAll('[data-testid=activations] > [data-layer]')].length > 0 && "
                "[...document.querySelectorAll('[data-testid=activations] > [data-layer]')].every((f) => f.dataset.mean !== '')", timeout=60)
  layers = page.evaluate("() => [...document.querySelectorAll('[data-testid=activations] > [data-layer]')].map((f) => f.dataset.layer)")
  assert layers == [t["name"] for t in json.loads((WEBAPP / "mnist_convnet" / "mnist_convnet.json").read_text())["taps"]]
  assert text(page, "prediction") == str(y[0])
  click(page, "report")
  page.wait_for("document.querySelectorAll('[data-testid=confusion-cell]').length === 100", timeout=60)
  report = json.loads((WEBAPP / "mnist_convnet" / "mnist_convnet.report.json").read_text())
  t, p = report["misread"]["label"][0], report["misread"]["pred"][0]
  page.evaluate("([t, p]) => document.querySelector(`[data-testid=confusion-cell][data-true='${t}'][data-pred='${p}']`).click()", [t, p])
  page.evaluate("() => document.querySelector('[data-testid=report-gallery] button').click()")
  settled(page)
  assert text(page, "prediction") == str(p)                                # drawn as the test set has it: misread, as reported

@pytest.mark.slow
def test_fine_tuning_runs(engine_app, mnist_test_set):
  page = engine_app
  x, y = mnist_test_set
  select(page, "model-select", "mnist_mlp")                                  # (the CNN's step is the slower one in WebKit)
  page.wait_for("document.body.dataset.ready === 'true'", timeout=120)
  for i in np.nonzero(y[:200] == 3)[0][:2]:
    page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[i].reshape(-1).tolist())
    settled(page)
    click(page, "correct-3")
  page.wait_for("document.querySelector('[data-testid=examples-count]').textContent === '2 examples'")
  click(page, "finetune")
  page.wait_for("['done', 'error'].includes(document.querySelector('[data-testid=finetune-status]').dataset.state)", timeout=300)
  status = text(page, "finetune-status")
  assert status.startswith("Done in"), status
  summary = page.evaluate("() => mnistApp.model('mnist_mlp').finetuned")
  assert summary["steps"] == 60 and summary["backend"] == "wasm" and summary["after"]["mnist"] >= summary["before"]["mnist"] - 1
  assert page.evaluate("() => document.body.dataset.finetuned") == "true"

@pytest.mark.slow
def test_a_second_visit_works_offline(engine_app, mnist_test_set):
  page = engine_app
  assert page.evaluate("() => 'serviceWorker' in navigator")                # both engines allow it on http://127.0.0.1
  page.wait_for("document.body.dataset.offline === 'ready'", timeout=180)
  page.server.offline = True
  page.reload()
  page.wait_for("document.body?.dataset.ready === 'true'", timeout=120)
  assert page.evaluate("() => fetch('never-cached.txt').then(() => 'online', () => 'offline')") == "offline"
  x, y = mnist_test_set
  for name in MODELS:
    select(page, "model-select", name)
    page.wait_for("document.body.dataset.ready === 'true'", timeout=120)
    click(page, "clear")
    assert draw(page, x[7], 0.7, np.random.default_rng(7)) == str(y[7]), name

RUN_WASM = """async ({names, images}) => {
  const pixels = Uint8Array.from(atob(images), (c) => c.charCodeAt(0)), out = {};
  for (const name of names) {
    const url = (file) => new URL(`${name}/${file}`, location.href).href;
    const { loadModel } = await import(new URL("js/runtime/index.js", location.href));
    const meta = await (await fetch(url(`${name}.json`))).json();
    const run = await loadModel(url(`${name}.json`), "wasm", { fma: false });   // plain SIMD, which every engine runs
    const logits = [];
    for (let i = 0; i < pixels.length / 784; i++) {
      logits.push(...await run(Float32Array.from(pixels.subarray(i * 784, (i + 1) * 784), (p) => (p / 255 - meta.mean) / meta.std)));
    }
    out[name] = logits;
  }
  return out;
}"""

@pytest.mark.slow
def test_the_models_compute_on_webassembly_what_they_compute_in_chromium(engine_browser, chromium_no_webgpu, mnist_test_set):
  images = {"names": MODELS, "images": base64.b64encode(mnist_test_set[0][:64].tobytes()).decode()}
  with serve(WEBAPP) as url:
    page = chromium_no_webgpu.new_page()
    page.goto(url + "__blank.html")
    want = page.evaluate(RUN_WASM, images)
    page = engine_browser.open()
    page.goto(url + "__blank.html")
    got = page.evaluate(RUN_WASM, images)
    page.close()
  for name in MODELS:
    diff = np.abs(np.array(got[name]) - np.array(want[name])).max()
    print(f"{engine_browser.name} {name}: 64 images, max |logit - Chromium's| = {diff:.1e}")
    assert diff == 0, (name, diff)                                          # WebAssembly's float arithmetic is exact IEEE

@pytest.mark.slow
def test_training_from_scratch(engine_app, mnist_test_set):
  """The trainer on WebAssembly, in a worker: a short training learns, and drawing then runs on what it trained."""
  page = engine_app
  x, y = mnist_test_set
  click(page, "trainer")
  page.wait_for("document.querySelector('[data-testid=train-status]')?.dataset.state === 'idle' && "
                "document.querySelector('[data-testid=train-model]').options.length === 2", timeout=120)
  page.evaluate("""() => {
    const set = (id, v) => { const el = document.querySelector(`[data-testid=${id}]`); el.value = v; el.dispatchEvent(new Event("change")); };
    set("train-model", "mnist_mlp_trainer"); set("train-samples", "3000"); set("train-epochs", "2"); set("train-seed", "5");
  }""")
  click(page, "train-start")
  page.wait_for("['done', 'error'].includes(document.querySelector('[data-testid=train-status]').dataset.state)", timeout=300)
  assert page.evaluate("() => document.querySelector('[data-testid=train-status]').dataset.state") == "done", text(page, "train-status")
  accuracy = float(page.evaluate("() => document.querySelector('[data-testid=train-accuracy]').dataset.value"))
  assert accuracy > 80, accuracy
  click(page, "train-use")
  page.wait_for("document.querySelector('[data-testid=model-select]').value === 'trained' && document.body.dataset.ready === 'true'", timeout=60)
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[1].reshape(-1).tolist())
  settled(page)
  assert text(page, "prediction") == str(y[1])
