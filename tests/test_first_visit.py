"""A first visit on a slow link: the selected model predicts before the others have arrived, downloads show their
progress, a download that breaks off is reported with a retry that works, and no file is downloaded twice (the
service worker's install included)."""
import json
from collections import Counter
import numpy as np
import pytest
from conftest import ROOT
from browser import serve, serve_like_pages, throttle, wait_settled, draw_digit, Server

WEBAPP = ROOT / "webapp"

def _events(page): return page.evaluate("mnistApp.events()")

def _first(events, event, model=None):
  return next((e["t"] for e in events if e["event"] == event and (model is None or e.get("model") == model)), None)

@pytest.mark.slow
def test_the_selected_model_predicts_before_the_other_has_downloaded_and_progress_is_shown(app_url, chromium_browser, mnist_test_set):
  x, y = mnist_test_set
  url, browser = app_url, chromium_browser
  page = browser.new_page()
  throttle(page, "4G")
  page.goto(url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=60_000)
  draw_digit(page, x[0], 0.7, np.random.default_rng(0))
  wait_settled(page)
  assert page.get_by_test_id("prediction").text_content() == str(y[0])
  events = _events(page)
  predicted, mlp_weights = _first(events, "prediction", "mnist_convnet"), _first(events, "weights-downloaded", "mnist_mlp")
  assert predicted is not None and mlp_weights is None, events          # the MLP's 5.8 MB are still on their way
  assert _first(events, "ready", "mnist_convnet") < _first(events, "start", "mnist_mlp")   # nothing else started before
  # the MLP, asked for while it downloads: its progress, in the status and as a progress bar, then a prediction
  page.get_by_test_id("model-select").select_option("mnist_mlp")
  assert page.evaluate("document.body.dataset.ready") == "false"
  page.wait_for_function("document.querySelector('[data-testid=download-mnist_mlp] progress')?.value > 0", timeout=30_000)
  assert page.get_by_test_id("status").text_content().startswith("Downloading the MLP")
  bar = page.locator("[data-testid=download-mnist_mlp] progress")
  meta = json.loads((WEBAPP / "mnist_mlp" / "mnist_mlp.json").read_text())
  assert float(bar.get_attribute("max")) == sum(meta["files"][key]["bytes"] for key in ("plan", "weights", "wasm_fma"))   # Chromium: FMA, one thread
  assert bar.get_attribute("aria-label") and page.get_by_test_id("downloads").is_visible()
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  wait_settled(page)
  assert page.get_by_test_id("prediction").text_content() == str(y[0])
  assert bar.evaluate("b => b.value === b.max")                          # reached 100 %
  page.wait_for_function("document.querySelector('[data-testid=downloads]').hidden")

def test_the_first_models_files_are_asked_for_before_the_pages_modules_are_all_in(chromium_browser):
  """early.js: on a slow link the default model's plan, weights and WebAssembly are requested while the page's own
  modules are still arriving (not once main.js has run), each downloaded once."""
  manifest = json.loads((WEBAPP / "models.json").read_text())["models"]
  first = max((m for m in manifest if m["role"] == "predict"), key=lambda m: m["meta"]["test_accuracy"])
  with serve_like_pages(WEBAPP) as url:
    page = chromium_browser.new_page()
    throttle(page, "3G")
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
    entries = page.evaluate("() => performance.getEntriesByType('resource').map((e) => [new URL(e.name).pathname, e.startTime, e.responseEnd])")
    page.close()
  modules_in = max(end for path, _, end in entries if path.endswith(".js"))
  asked = [(path, start) for path, start, _ in entries if path.startswith(f"/repo/{first['name']}/")]
  names = sorted(path.rsplit("/", 1)[1] for path, _ in asked)
  assert len(names) == len(set(names)) and {first["meta"]["files"][k]["name"] for k in ("plan", "weights")} <= set(names), names
  assert any(n.endswith(".wasm") for n in names) and all(start < modules_in for _, start in asked), (asked, modules_in)

@pytest.mark.slow
def test_a_download_that_breaks_off_is_reported_with_a_retry_that_works(chromium_browser, mnist_test_set):
  x, y = mnist_test_set
  server = Server()
  weights = json.loads((WEBAPP / "mnist_mlp" / "mnist_mlp.json").read_text())["files"]["weights"]["bytes"]
  server.break_after["mnist_mlp.safetensors"] = weights // 2                 # then the server closes the connection
  with serve(WEBAPP, server=server) as url:
    page = chromium_browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=60_000)
    page.get_by_test_id("model-select").select_option("mnist_mlp")
    row = page.get_by_test_id("download-mnist_mlp")
    page.wait_for_function("document.querySelector('[data-testid=download-mnist_mlp]')?.dataset.state === 'error'", timeout=60_000)
    assert "mnist_mlp.safetensors" in row.text_content() and page.get_by_test_id("status").text_content().startswith("Error")
    # the CNN keeps working meanwhile
    page.get_by_test_id("model-select").select_option("mnist_convnet")
    draw_digit(page, x[1], 0.7, np.random.default_rng(1))
    wait_settled(page)
    assert page.get_by_test_id("prediction").text_content() == str(y[1])
    del server.break_after["mnist_mlp.safetensors"]
    page.get_by_test_id("model-select").select_option("mnist_mlp")
    page.get_by_test_id("retry-mnist_mlp").click()
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=60_000)
    wait_settled(page)
    assert page.get_by_test_id("prediction").text_content() == str(y[1])
    page.wait_for_function("document.querySelector('[data-testid=downloads]').hidden")
    assert not errors

def test_no_file_is_downloaded_twice_on_a_first_visit(chromium_browser):
  """Both backends share one download of each model file, and the service worker, installed after the models, finds
  them in its cache (served like GitHub Pages: cacheable, no compression). Of each model only what this browser runs
  is downloaded: the plan, the weights, the WGSL of the forward, the WebAssembly module this visit runs and the one the
  next (isolated) visit runs; no other build, nothing only the panels use."""
  server = Server()
  with serve(WEBAPP, cache_control="max-age=600", server=server) as url:
    page = chromium_browser.new_page()
    page.goto(url)
    page.wait_for_function("document.body.dataset.settled === 'true' && document.body.dataset.offline === 'ready'", timeout=120_000)
    backends = page.evaluate("mnistApp.models().map((m) => Object.keys(m.timings).length)")
    assert backends == [2, 2]                                              # both models on both backends
  counts = Counter(server.requests)
  manifest = json.loads((WEBAPP / "models.json").read_text())["models"]
  for m in (m for m in manifest if m["role"] == "predict"):
    files = m["meta"]["files"]
    fetched = {key for key, f in files.items() if counts[f"/{m['name']}/{f['name']}"]}
    assert fetched == {"plan", "weights", "wgsl", "wasm_fma", "threads_wasm_fma"}, (m["name"], fetched)   # Chromium: FMA
    assert all(counts[f"/{m['name']}/{files[key]['name']}"] == 1 for key in fetched), counts
  # the page and the manifest are fetched fresh (no-cache) by the page and once more by the service worker, nothing else twice
  assert all(n == 1 for p, n in counts.items() if p not in ("/", "/models.json", "/samples/index.json")), counts
