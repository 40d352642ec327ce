"""Training a network from scratch in the page: the exporter's "fit" step takes tinygrad's own steps on both backends
(loss, every weight, batch norm's running statistics), a fresh start has tinygrad's distributions, the page's
schedule and report are the scripts' and the exporter's, a short training in Chromium learns, shows its curves, pauses
and resumes exactly while the page keeps predicting, its download loads back into tinygrad with LOAD=, and bad input,
a broken download, full storage and a closed panel are handled."""
import base64, json, re, subprocess
import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.nn.state import get_state_dict
from conftest import ROOT, run_script
from browser import serve, Server, floats
import training
from exporter.programs import fit_step
import evaluation

WEBAPP = ROOT / "webapp"
TRAINERS = ["mnist_mlp_trainer", "mnist_convnet_trainer"]
SCRIPT = {"mnist_mlp_trainer": "mnist_mlp", "mnist_convnet_trainer": "mnist_convnet"}

def node(script:str) -> str:
  return subprocess.run(["node", "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout

def test_the_pages_schedule_is_the_scripts():
  cases = [(kind, warmup, total, step) for kind in ("constant", "cosine", "onecycle") for warmup, total in ((0.1, 500), (0.25, 37))
           for step in (0, 1, 5, total // 10, total // 4, total // 2, total - 1)]
  got = json.loads(node(f"""import {{ lrFactor }} from "./webapp/js/fit.js";
    console.log(JSON.stringify({json.dumps(cases)}.map(([kind, warmup, total, step]) => lrFactor(step, total, {{ kind, warmup }}))));"""))
  want = [training.lr_factor(Tensor([step]), {"steps": total, "warmup": warmup, "schedule": kind}).item() for kind, warmup, total, step in cases]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)

def test_the_pages_report_is_the_exporters(mnist_test_set):
  x, y = mnist_test_set
  rng = np.random.default_rng(3)
  logits = rng.standard_normal((500, 10)).astype(np.float32) + 4 * np.eye(10, dtype=np.float32)[y[:500]]
  want = evaluation.test_report(logits, y[:500])
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  got = json.loads(node(f"""import {{ reportFrom }} from "./webapp/js/report.js";
    const r = reportFrom({json.dumps(logits.argmax(1).tolist())}, {json.dumps(probs.max(1).tolist())}, {json.dumps(y[:500].tolist())}, () => null);
    console.log(JSON.stringify(r));"""))
  assert got["accuracy"] == want["accuracy"] and got["confusion"] == want["confusion"] and got["per_class"] == want["per_class"]
  assert {k: got["misread"][k] for k in ("index", "label", "pred")} == {k: want["misread"][k] for k in ("index", "label", "pred")}
  np.testing.assert_allclose(got["misread"]["confidence"], want["misread"]["confidence"], atol=1e-4)

# ---- the exporter's "fit" step in the page, against tinygrad's own

FIT_IN_PAGE = """async ({name, backend, weights, images, labels, lrs, steps, seeds}) => {
  const floats = (b64) => new Float32Array(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);
  const b64 = (f) => { const u = new Uint8Array(f.buffer, f.byteOffset, f.byteLength); let s = ""; for (const v of u) s += String.fromCharCode(v); return btoa(s); };
  const device = backend === "wasm" ? "wasm" : await (await navigator.gpu.requestAdapter()).requestDevice();
  const { openModel } = await import("./js/runtime/index.js");
  const model = await openModel(`${name}/${name}.json`);
  const run = await model.load(device, { weights: null }), names = model.weights.map((w) => w.name), batch = model.fit.batch;
  const inits = {};
  for (const seed of seeds) inits[seed] = Object.fromEntries(Object.entries(await run.init(seed)).map(([k, v]) => [k, b64(v)]));
  await run.writeWeights(Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, floats(v)])));
  await run.resetOptimizer();
  const x = floats(images), y = new Int32Array(Uint8Array.from(atob(labels), (c) => c.charCodeAt(0)).buffer), losses = [], correct = [], after = {};
  for (let i = 0; i < steps; i++) {
    const out = await run.fit(x.slice(i * batch * 784, (i + 1) * batch * 784), y.slice(i * batch, (i + 1) * batch), lrs[i]);
    losses.push(out.loss);
    correct.push(out.correct);
    if (i === 0 || i === steps - 1) after[i + 1] = Object.fromEntries(Object.entries(await run.readWeights(names)).map(([k, v]) => [k, b64(v)]));
  }
  return { losses, correct, after, inits, names };
}"""

def _b64(a:np.ndarray) -> str: return base64.b64encode(np.ascontiguousarray(a, dtype=a.dtype).tobytes()).decode()

def _fresh(name:str, seed:int=0):
  """The trainer's network as tinygrad starts it (its own initialisation), and the scripts' optimizer over it."""
  import mnist_mlp, mnist_convnet
  meta = json.loads((WEBAPP / name / f"{name}.json").read_text())
  Tensor.manual_seed(seed)
  model = {"mnist_mlp_trainer": mnist_mlp.MLP, "mnist_convnet_trainer": mnist_convnet.ConvNet}[name](**meta["config"]["model"])
  return model, training.make_optimizer(model, meta["config"]), meta

FIT_STEPS = 20
ONE_STEP_ATOL, LOSS_RTOL, PARITY_LR = 2e-5, 2e-2, 0.001

@pytest.mark.parametrize("name", ["mnist_mlp_trainer", pytest.param("mnist_convnet_trainer", marks=pytest.mark.slow)])
def test_fit_steps_match_tinygrad_and_a_fresh_start_has_its_distributions(app_url, chromium_browser, mnist_test_set, name):
  """On both backends (one reference run of tinygrad's own steps for the two)."""
  model, opt, meta = _fresh(name)
  batch = meta["fit"]["batch"]
  x, y = mnist_test_set
  images = ((x[:FIT_STEPS * batch].astype(np.float32) / 255 - meta["mean"]) / meta["std"]).reshape(FIT_STEPS, batch, 1, 28, 28)
  labels = y[:FIT_STEPS * batch].astype(np.int32).reshape(FIT_STEPS, batch)
  # a moderate rate (the one-cycle warm-up's): at the trainers' peak rates, float32 rounding differences between the
  # backends grow by a factor of ~10 over twenty steps of batch norm and Adam, which would measure chaos, not parity
  lrs = [PARITY_LR * (0.5 + i / FIT_STEPS) for i in range(FIT_STEPS)]
  state = {k: v.numpy() for k, v in get_state_dict(model).items() if v.dtype.name.startswith("float")}
  args = {"name": name, "weights": {k: _b64(v) for k, v in state.items()}, "images": _b64(images), "labels": _b64(labels), "lrs": lrs,
          "steps": FIT_STEPS, "seeds": [1, 1, 2]}
  page = chromium_browser.new_page()
  page.goto(app_url + "__blank.html")
  runs = {backend: page.evaluate(FIT_IN_PAGE, {**args, "backend": backend}) for backend in ("webgpu", "wasm")}
  # tinygrad's own steps, from the same start, batches and learning rates
  step, _, _ = fit_step(model, opt, batch)
  want_losses, want = [], {}
  for i in range(FIT_STEPS):
    out = step(Tensor(images[i]), Tensor(labels[i]), Tensor([lrs[i]], dtype="float32"))
    want_losses.append(out["loss"].item())
    if i in (0, FIT_STEPS - 1): want[i + 1] = {k: v.numpy().reshape(-1) for k, v in get_state_dict(model).items() if k in state}
  moved = max(np.abs(want[FIT_STEPS][k] - state[k].reshape(-1)).max() for k in state)
  assert moved > 100 * ONE_STEP_ATOL                                          # far past the one-step tolerance
  if any("running_mean" in k for k in state):                                 # batch norm: its running statistics follow the batches
    assert all(np.abs(want[FIT_STEPS][k] - state[k].reshape(-1)).max() > 1e-3 for k in state if "running_" in k)
  for backend, got in runs.items():
    assert sorted(got["names"]) == sorted(state)
    worst = {n: float(max(np.abs(floats(got["after"][str(n)][k]) - want[n][k]).max() for k in state)) for n in (1, FIT_STEPS)}
    print(f"{name} {backend}: loss within {max(abs(a / b - 1) for a, b in zip(got['losses'], want_losses)):.1e}, weights within {worst} "
          f"(moved {moved:.3f})")
    # one step: the same computation to float32 rounding
    assert abs(got["losses"][0] / want_losses[0] - 1) < 1e-5, backend
    for k in state: np.testing.assert_allclose(floats(got["after"]["1"][k]), want[1][k], atol=ONE_STEP_ATOL, err_msg=f"{backend}: {k} after 1 step")
    # twenty: rounding compounds (Adam divides by the root of tiny second moments, batch norm by the batch's spread; the
    # WebAssembly kernels that reassociate their sums round differently again), so the losses are held to 2 % and the
    # weights to a tenth of how far the steps moved them
    np.testing.assert_allclose(got["losses"], want_losses, rtol=LOSS_RTOL, err_msg=backend)
    assert worst[FIT_STEPS] < 0.1 * moved, (backend, worst, moved)
  # a fresh start: tinygrad's distribution for every tensor; the same seed repeats, another differs
  inits = runs["wasm"]["inits"]
  assert all(inits["1"][k] == runs["webgpu"]["inits"]["1"][k] for k in state) and any(inits["1"][k] != inits["2"][k] for k in state)
  for k, v in state.items():
    mine, spec = floats(inits["1"][k]), meta_init(name)[k]
    if "constant" in spec: assert (mine == spec["constant"]).all() and (v == spec["constant"]).all(), k; continue
    low, high = spec["uniform"]
    assert mine.min() >= low and mine.max() < high and v.min() >= low and v.max() <= high, k
    spread = (high - low) / np.sqrt(12)                                       # a uniform's standard deviation
    assert abs(mine.mean() - v.mean()) < 5 * spread / np.sqrt(v.size), k
    if v.size >= 100: assert abs(mine.std() / v.std() - 1) < 0.1, k

def meta_init(name:str) -> dict:
  return json.loads((WEBAPP / name / f"{name}.plan.json").read_text())["fit"]["init"]

@pytest.mark.parametrize("name", TRAINERS)
def test_the_exporters_initialisation_is_tinygrads(name):
  """init_spec (what the page draws from) against tinygrad's own layers: constants exact, uniforms in their bounds and
  spread as a uniform of those bounds is."""
  model, _, _ = _fresh(name, seed=3)
  for k, v in get_state_dict(model).items():
    if not v.dtype.name.startswith("float"): continue
    spec, values = meta_init(name)[k], v.numpy()
    if "constant" in spec: assert (values == spec["constant"]).all(), k
    else:
      low, high = spec["uniform"]
      assert values.min() >= low and values.max() <= high and (values.size < 100 or abs(values.std() - (high - low) / np.sqrt(12)) < 0.1 * (high - low)), k

# ---- the trainer panel in Chromium

def open_trainer(page):
  page.get_by_test_id("trainer").click()
  page.wait_for_function("['idle', 'error'].includes(document.querySelector('[data-testid=train-status]')?.dataset.state) && "
                         "document.querySelector('[data-testid=train-model]').options.length > 0", timeout=120_000)

def set_fields(page, **fields):
  for name, value in fields.items():
    if name in ("model", "backend"): page.get_by_test_id(f"train-{name}").select_option(str(value))
    else: page.get_by_test_id(f"train-{name}").fill(str(value))

def state(page): return page.get_by_test_id("train-status").get_attribute("data-state")

def wait_state(page, *states, timeout=300_000):
  page.wait_for_function("s => s.includes(document.querySelector('[data-testid=train-status]').dataset.state)", arg=list(states), timeout=timeout)

WEIGHTS_SUM = "() => Object.values(mnistApp.trainer().result.weights).map((w) => w.reduce((a, b) => a + b, 0))"

def test_a_short_training_learns_pauses_and_resumes_exactly_while_the_page_predicts(app_url, chromium_browser, mnist_test_set):
  x, y = mnist_test_set
  page = chromium_browser.new_page()
  errors = []
  page.on("pageerror", lambda e: errors.append(str(e)))
  page.goto(app_url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  open_trainer(page)
  batch = json.loads((WEBAPP / "mnist_mlp_trainer" / "mnist_mlp_trainer.json").read_text())["fit"]["batch"]
  set_fields(page, model="mnist_mlp_trainer", samples=4000, epochs=250 * batch / 4000, seed=11, backend="wasm")   # 250 steps
  page.get_by_test_id("train-start").click()
  wait_state(page, "training")
  # pressed from inside the page as soon as 40 steps are in (a round trip from the test could come after the 250th)
  page.evaluate("""() => new Promise((resolve) => { const poll = () => {
    if (document.querySelector('#trainer-panel progress').value >= 40) { document.querySelector('[data-testid=train-pause]').click(); resolve(); }
    else requestAnimationFrame(poll); }; poll(); })""")
  wait_state(page, "paused")
  page.wait_for_timeout(300)                                                  # a step in flight lands
  held = page.evaluate("document.querySelector('#trainer-panel progress').value")
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[0].reshape(-1).tolist())
  page.wait_for_function("document.body.dataset.busy === 'false'")
  assert page.get_by_test_id("prediction").text_content() == str(y[0])          # the page reads a drawing meanwhile
  page.wait_for_timeout(700)
  assert page.evaluate("document.querySelector('#trainer-panel progress').value") == held   # paused means paused
  page.get_by_test_id("train-pause").click()                                  # resume
  wait_state(page, "done")
  accuracy = float(page.get_by_test_id("train-accuracy").get_attribute("data-value"))
  curves = page.evaluate("mnistApp.trainer().result.curves")
  assert accuracy > 80, accuracy                                              # 250 steps on 4 000 digits: far past chance (10 %)
  assert len(curves["loss"]) == 250 and curves["loss"][-1][1] < curves["loss"][0][1] and curves["heldOut"], curves["heldOut"]
  assert page.evaluate("document.querySelectorAll('#trainer-panel [role=group] button').length") == 100   # its confusion matrix
  paused_weights = page.evaluate(WEIGHTS_SUM)
  page.get_by_test_id("train-start").click()                                  # the same seed again, without a pause
  wait_state(page, "training")
  wait_state(page, "done")
  assert page.evaluate(WEIGHTS_SUM) == paused_weights                         # a pause changes nothing
  assert float(page.get_by_test_id("train-accuracy").get_attribute("data-value")) == accuracy
  page.get_by_test_id("train-use").click()
  page.wait_for_function("document.querySelector('[data-testid=model-select]').value === 'trained' && document.body.dataset.ready === 'true'",
                         timeout=60_000)
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[1].reshape(-1).tolist())
  page.wait_for_function("document.body.dataset.busy === 'false'")
  assert page.get_by_test_id("prediction").text_content() == str(y[1])          # drawing runs on the model trained here
  assert f"{accuracy:.2f}%" in page.locator("#model-info").text_content()
  assert not errors, errors

def test_while_it_trains_a_drawing_gets_its_answer_and_the_curves_move(app_url, chromium_browser, mnist_test_set):
  """Not paused: the Worker trains flat out while the page reads drawings and draws the curves (the page out of the way
  must not mean the page asleep)."""
  x, y = mnist_test_set
  page = chromium_browser.new_page()
  page.goto(app_url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  open_trainer(page)
  set_fields(page, model="mnist_mlp_trainer", samples=60000, epochs=30, seed=3, backend="wasm")   # far longer than this test
  page.get_by_test_id("train-start").click()
  page.wait_for_function("document.querySelector('#trainer-panel progress').value > 0", timeout=120_000)
  chart = "() => [document.querySelector('[data-testid=train-loss-chart]').toDataURL(), document.querySelector('#trainer-panel progress').value]"
  before, step_before = page.evaluate(chart)
  for k in (4, 5):
    page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[k].reshape(-1).tolist())
    page.wait_for_function("document.body.dataset.busy === 'false'", timeout=30_000)
    assert page.get_by_test_id("prediction").text_content() == str(y[k])
  page.wait_for_timeout(600)
  after, step_after = page.evaluate(chart)
  assert state(page) == "training" and step_after > step_before and after != before
  page.get_by_test_id("train-stop").click()
  wait_state(page, "done")

def train_briefly(page, **fields):
  open_trainer(page)
  set_fields(page, **{"model": "mnist_mlp_trainer", "samples": 3000, "epochs": 2, "seed": 5, "backend": "wasm", **fields})
  page.get_by_test_id("train-start").click()
  wait_state(page, "done", "error")
  assert state(page) == "done", page.get_by_test_id("train-status").text_content()
  return float(page.get_by_test_id("train-accuracy").get_attribute("data-value"))

@pytest.mark.slow
def test_the_download_loads_back_into_tinygrad_with_the_accuracy_the_page_reported(app_url, chromium_browser, tmp_path):
  page = chromium_browser.new_page(accept_downloads=True)
  page.goto(app_url)
  accuracy = train_briefly(page)
  with page.expect_download() as download: page.get_by_test_id("train-download").click()
  path = tmp_path / download.value.suggested_filename
  download.value.save_as(path)
  assert path.name == "mnist_mlp_trained_here.safetensors"
  from safetensors.numpy import load_file
  tensors = load_file(path)                                                   # the reference reader, and tinygrad's names
  width = json.loads((WEBAPP / "mnist_mlp_trainer" / "mnist_mlp_trainer.json").read_text())["config"]["model"]["width"]
  assert set(tensors) == {"layers.1.weight", "layers.1.bias", "layers.4.weight", "layers.4.bias"} and tensors["layers.1.weight"].shape == (width, 784)
  proc = run_script("mnist_mlp.py", LOAD=path, EXPORT=0)
  assert proc.returncode == 0, proc.stderr[-1500:]
  reported = float(re.search(r"test accuracy: ([\d.]+)% on all 10000", proc.stdout).group(1))
  print(f"page {accuracy:.2f}%, tinygrad {reported:.2f}%")
  assert abs(reported - accuracy) <= 0.01                                     # the same network: at most one digit read otherwise

@pytest.mark.parametrize("fields, message", [
  ({"samples": 500}, "Training digits must be a whole number from 1,000 to 60,000"),
  pytest.param({"samples": 1500.5}, "Training digits must be a whole number", marks=pytest.mark.slow),
  ({"epochs": 0}, "Epochs must be a number from 0.1 to 30"),
  ({"epochs": 31}, "Epochs must be a number from 0.1 to 30"),
  ({"lr": "2"}, "The learning rate must be a number from 0.00001 to 0.1"),
  ({"lr": ""}, "The learning rate must be a number"),
  ({"seed": -1}, "The seed must be a whole number"),
])
def test_bad_settings_are_refused_with_a_message(app_url, chromium_browser, fields, message):
  page = chromium_browser.new_page()
  page.goto(app_url)
  open_trainer(page)
  set_fields(page, **fields)
  page.get_by_test_id("train-start").click()
  wait_state(page, "error")
  assert page.get_by_test_id("train-status").text_content().startswith(message)

@pytest.mark.slow
def test_a_data_download_that_breaks_off_is_retried(chromium_browser):
  server = Server()
  server.break_after["train-1.bin.gz"] = 200_000
  server.break_once.add("train-1.bin.gz")
  with serve(WEBAPP, server=server) as url:
    page = chromium_browser.new_page()
    page.goto(url)
    open_trainer(page)
    page.wait_for_function("mnistApp.trainer()?.digits?.train === 60000 && mnistApp.trainer().digits.test === 10000",
                           timeout=120_000)
    assert server.requests.count("/samples/mnist/train-1.bin.gz") == 2        # broken off once, then whole
    assert "could not" not in page.get_by_test_id("train-status").text_content().lower()

def test_the_training_digits_are_kept_for_a_second_visit_offline(app_url, chromium_browser):
  """MNIST for the trainer goes into the offline cache as it arrives (verified): offline, the trainer has all of it."""
  context = chromium_browser.new_context()
  page = context.new_page()
  page.goto(app_url)
  page.wait_for_function("document.body.dataset.offline === 'ready'", timeout=120_000)
  all_digits = "mnistApp.trainer()?.digits?.train === 60000 && mnistApp.trainer().digits.test === 10000"
  open_trainer(page)
  page.wait_for_function(all_digits, timeout=120_000)
  context.set_offline(True)
  page.reload()
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  open_trainer(page)
  page.wait_for_function(f"({all_digits}) || mnistApp.trainer().digits === null", timeout=120_000)   # null: it gave up, with a message
  assert page.evaluate(all_digits), page.locator("#trainer-panel").text_content()
  context.close()

FULL_STORAGE = """(() => {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    if (this.name === "trained") throw new DOMException("the quota has been exceeded", "QuotaExceededError");
    return put.apply(this, args);
  };
})();"""

@pytest.mark.slow
def test_full_storage_keeps_the_model_for_this_visit_with_a_message(app_url, chromium_browser, mnist_test_set):
  context = chromium_browser.new_context()
  context.add_init_script(FULL_STORAGE)
  page = context.new_page()
  page.goto(app_url)
  train_briefly(page)
  assert "kept for this visit only" in page.get_by_test_id("train-status").text_content()
  page.get_by_test_id("train-use").click()
  page.wait_for_function("document.querySelector('[data-testid=model-select]').value === 'trained' && document.body.dataset.ready === 'true'",
                         timeout=60_000)

@pytest.mark.slow
def test_closing_the_panel_stops_the_training_cleanly(app_url, chromium_browser):
  page = chromium_browser.new_page()
  errors = []
  page.on("pageerror", lambda e: errors.append(str(e)))
  page.goto(app_url)
  open_trainer(page)
  set_fields(page, model="mnist_convnet_trainer", samples=60000, epochs=3, backend="wasm")
  page.get_by_test_id("train-start").click()
  page.wait_for_function("document.querySelector('#trainer-panel progress').value >= 2", timeout=180_000)
  page.get_by_test_id("trainer").click()                                      # the panel closes
  wait_state(page, "idle", timeout=10_000)
  assert "Stopped" in page.get_by_test_id("train-status").text_content() and page.evaluate("mnistApp.trainer().worker") is False
  at = page.evaluate("document.querySelector('#trainer-panel progress').value")
  page.wait_for_timeout(1500)
  assert page.evaluate("document.querySelector('#trainer-panel progress').value") == at
  open_trainer(page)                                                          # and it can start again
  assert not page.get_by_test_id("train-start").is_disabled()
  assert not errors, errors
