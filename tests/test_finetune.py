"""Fine-tuning in the page: the exporter's "train" program (forward, cross-entropy, backward, Adam on the last layer)
takes the same steps as tinygrad on both backends, and the page teaches a model a writer's handwriting, keeps it across
a reload, resets, cancels, and falls back to the shipped weights when what it kept is damaged."""
import base64, json
import numpy as np
import pytest
from tinygrad import Tensor
from tinygrad.nn.state import get_state_dict
from conftest import ROOT
from browser import floats
from test_export import build_model
import mnist_data
from exporter.programs import finetune_step

WEBAPP = ROOT / "webapp"
SHOTS = ROOT / "runs" / "screenshots"
MODELS = ["mnist_mlp", "mnist_convnet"]
STEPS = 10
LOSS_RTOL, WEIGHT_ATOL = 1e-4, 2e-5   # float32 sums in another order, on another device, through ten Adam steps

TRAIN_IN_PAGE = """async ({name, backend, images, labels, lr, steps, frozen}) => {
  const device = backend === "wasm" ? "wasm" : await (await navigator.gpu.requestAdapter()).requestDevice();
  const { openModel } = await import("./js/runtime/index.js");
  const model = await openModel(`${name}/${name}.json`);
  const run = await model.load(device);
  const batch = model.train.batch;
  const x = new Float32Array(Uint8Array.from(atob(images), (c) => c.charCodeAt(0)).buffer);
  const y = new Int32Array(Uint8Array.from(atob(labels), (c) => c.charCodeAt(0)).buffer);
  const b64 = (f) => { const u = new Uint8Array(f.buffer, f.byteOffset, f.byteLength); let s = ""; for (const v of u) s += String.fromCharCode(v); return btoa(s); };
  const losses = [], after = {};
  for (let i = 0; i < steps; i++) {
    losses.push(await run.train(x.slice(i * batch * 784, (i + 1) * batch * 784), y.slice(i * batch, (i + 1) * batch), lr));
    if (i === 0 || i === steps - 1) after[i + 1] = Object.fromEntries(Object.entries(await run.readWeights()).map(([k, v]) => [k, b64(v)]));
  }
  const kept = Object.fromEntries(Object.entries(frozen.length ? await run.readWeights(frozen) : {}).map(([k, v]) => [k, b64(v)]));
  return { losses, after, kept, trains: model.train.trains };
}"""

# the app in a browser without WebGPU (on this machine SwiftShader costs a page several CPU-seconds to bring up and time),
# and with it for the tests that need both backends
def _batches(meta, mnist_test_set, batch:int):
  images, labels = mnist_test_set
  x = ((images[:STEPS * batch].astype(np.float32) / 255 - meta["mean"]) / meta["std"]).reshape(STEPS, batch, 1, 28, 28)
  return x, labels[:STEPS * batch].astype(np.int32).reshape(STEPS, batch)

def _tinygrad_steps(name, x, y, lr):
  """tinygrad's own steps from the shipped weights: the loss of each and the trained tensors after the first and last."""
  model, meta = build_model(WEBAPP / name)
  step, _, _ = finetune_step(model, only=set(meta["finetune"]["trains"]))
  losses, after = [], {0: {k: get_state_dict(model)[k].numpy().reshape(-1) for k in meta["finetune"]["trains"]}}
  for i in range(STEPS):
    losses.append(step(Tensor(x[i]), Tensor(y[i]), Tensor([lr], dtype="float32"))["loss"].item())
    if i in (0, STEPS - 1):
      state = get_state_dict(model)
      after[i + 1] = {k: state[k].numpy().reshape(-1) for k in meta["finetune"]["trains"]}
  return losses, after

@pytest.mark.parametrize("name, backend", [("mnist_mlp", "wasm"), *(pytest.param(*p, marks=pytest.mark.slow) for p in [("mnist_mlp", "webgpu"), ("mnist_convnet", "webgpu"), ("mnist_convnet", "wasm")])])
def test_training_steps_match_tinygrad(gpu_app, mnist_test_set, name, backend):
  url, browser = gpu_app
  meta = json.loads((WEBAPP / name / f"{name}.json").read_text())
  ft = meta["finetune"]
  assert ft["optimizer"] == "adam" and ft["dropout"] == "off" and ft["trains"]
  x, y = _batches(meta, mnist_test_set, ft["batch"])
  page = browser.new_page()
  page.goto(url + "__blank.html")
  shipped = {k: v.numpy().reshape(-1) for k, v in get_state_dict(build_model(WEBAPP / name)[0]).items()}
  # batch norm as at inference: its running statistics are read, never updated (the page trains on a handful of digits)
  frozen = [k for k in shipped if "running_" in k]
  assert bool(frozen) == (ft["batch_norm"] is not None)
  got = page.evaluate(TRAIN_IN_PAGE, {"name": name, "backend": backend, "images": base64.b64encode(x.tobytes()).decode(),
                                      "labels": base64.b64encode(y.tobytes()).decode(), "lr": ft["lr"], "steps": STEPS, "frozen": frozen})
  page.close()
  want_losses, want_after = _tinygrad_steps(name, x, y, ft["lr"])
  assert sorted(got["trains"]) == sorted(ft["trains"])
  np.testing.assert_allclose(got["losses"], want_losses, rtol=LOSS_RTOL)
  for k in frozen: assert np.array_equal(floats(got["kept"][k]), shipped[k]), k
  worst = max(np.abs(floats(got["after"][str(n)][k]) - want).max() for n in (1, STEPS) for k, want in want_after[n].items())
  print(f"{name} {backend}: loss within {max(abs(a / b - 1) for a, b in zip(got['losses'], want_losses)):.1e} relative, weights within {worst:.1e}")
  for steps in (1, STEPS):
    for k, want in want_after[steps].items():
      np.testing.assert_allclose(floats(got["after"][str(steps)][k]), want, atol=WEIGHT_ATOL, err_msg=f"{k} after {steps} steps")
      assert np.abs(want - want_after[0][k]).max() > 20 * WEIGHT_ATOL   # the steps moved the weights well past the tolerance

# ---- the page: teach it a writer, keep it, reset it, cancel, survive a damaged store

N_TAUGHT, N_WRITER_HELD_OUT = 8, 40

@pytest.fixture(scope="module")
def writer(mnist_test_set):
  """A writer whose 3s are mirrored (Ɛ): the shipped CNN does not read them as 3. Taken from test digits the page's
  held-out MNIST set (the last 1 000) does not contain: (digits to teach, held-out digits of the same writer)."""
  images, labels = mnist_test_set
  threes = [i for i in np.nonzero(labels[:mnist_data.FINETUNE_HELD_OUT.start] == 3)[0]]
  mirrored = images[threes][:, :, :, ::-1].reshape(-1, 784)
  return mirrored[:N_TAUGHT], mirrored[N_TAUGHT:N_TAUGHT + N_WRITER_HELD_OUT]

WRITER_ACCURACY = """async ({images, label, backend}) => {
  const run = mnistApp.run(document.getElementById("model-select").value, backend), pixels = Uint8Array.from(atob(images), (c) => c.charCodeAt(0));
  let right = 0;
  for (let i = 0; i < pixels.length / 784; i++) {
    const logits = await run(Float32Array.from(pixels.subarray(i * 784, (i + 1) * 784), (p) => (p / 255 - run.meta.mean) / run.meta.std));
    if (logits.indexOf(Math.max(...logits)) === label) right++;
  }
  return 100 * right / (pixels.length / 784);
}"""

def writer_accuracy(page, digits, backend=None) -> float:
  return page.evaluate(WRITER_ACCURACY, {"images": base64.b64encode(np.ascontiguousarray(digits).tobytes()).decode(), "label": 3, "backend": backend})

def teach(page, digits, label:int):
  """Put each digit on the canvas (as the report's gallery does) and say which it is, by button and by key."""
  for i, d in enumerate(digits):
    page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", d.tolist())
    page.wait_for_function("document.body.dataset.busy === 'false'")
    if i % 2: page.keyboard.press(str(label))
    else: page.get_by_test_id(f"correct-{label}").click()
    page.wait_for_function("n => document.querySelector('[data-testid=examples-count]').textContent.startsWith(String(n))", arg=i + 1)

def wait_status(page, state:str, timeout=240_000):
  page.wait_for_function("s => document.querySelector('[data-testid=finetune-status]').dataset.state === s", arg=state, timeout=timeout)

@pytest.mark.slow
def test_the_page_learns_a_writers_handwriting_keeps_it_and_resets(gpu_app, writer):
  url, browser = gpu_app
  taught, held_out = writer
  context = browser.new_context(viewport={"width": 375, "height": 667})   # a phone
  page = context.new_page()
  page.goto(url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  assert page.get_by_test_id("model-select").input_value() == "mnist_convnet"
  assert page.get_by_test_id("finetune-status").get_attribute("data-state") == "idle"
  assert page.evaluate("document.body.dataset.finetuned") == "false"
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", taught[0].tolist())
  page.wait_for_function("document.body.dataset.busy === 'false'")
  assert page.get_by_test_id("prediction").text_content() != "3"          # the model reads this writer's 3 wrong
  before = writer_accuracy(page, held_out)
  teach(page, taught, 3)
  assert page.get_by_test_id("examples-count").text_content() == f"{N_TAUGHT} examples"
  page.get_by_test_id("finetune").click()
  wait_status(page, "running", 30_000)
  wait_status(page, "done")
  summary = page.evaluate("mnistApp.model('mnist_convnet').finetuned")
  after = writer_accuracy(page, held_out)
  print(f"writer's held-out 3s {before:.1f}% -> {after:.1f}%; held-out MNIST {summary['before']['mnist']:.2f}% -> {summary['after']['mnist']:.2f}%; "
        f"taught digits {summary['before']['yours']:.1f}% -> {summary['after']['yours']:.1f}%; {summary['steps']} steps on {summary['backend']} in {summary['seconds']:.1f} s")
  assert after >= before + 30 and after >= 60
  assert summary["after"]["mnist"] >= summary["before"]["mnist"] - 0.5
  assert summary["after"]["yours"] > summary["before"]["yours"]
  assert page.evaluate("document.body.dataset.finetuned") == "true"
  assert "Fine-tuned here on 8 digits" in page.locator("#model-info").text_content()
  assert page.evaluate("document.documentElement.scrollWidth") <= 375              # the loss curve and results fit a phone
  page.add_script_tag(path=str(ROOT / "node_modules" / "axe-core" / "axe.min.js"))
  violations = page.evaluate("axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations)")
  assert not [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
  SHOTS.mkdir(parents=True, exist_ok=True)
  page.locator("[aria-labelledby=result-title]").screenshot(path=str(SHOTS / "finetune-phone.png"))
  # the other backend runs the same fine-tuned weights
  page.wait_for_function("document.body.dataset.settled === 'true'", timeout=120_000)
  other = {"wasm": "webgpu", "webgpu": "wasm"}[page.evaluate("document.body.dataset.backend")]
  assert abs(writer_accuracy(page, held_out, other) - after) <= 100 / N_WRITER_HELD_OUT

  page.reload()
  page.wait_for_function("document.body.dataset.ready === 'true' && document.body.dataset.finetuned === 'true'", timeout=120_000)
  assert writer_accuracy(page, held_out) == after                         # kept across the reload, examples too
  assert page.get_by_test_id("examples-count").text_content() == f"{N_TAUGHT} examples"
  page.get_by_test_id("reset-model").click()
  page.wait_for_function("document.body.dataset.finetuned === 'false'")
  assert writer_accuracy(page, held_out) == before
  page.get_by_test_id("forget-examples").click()
  page.wait_for_function("document.querySelector('[data-testid=examples-count]').textContent === '0 examples'")
  page.reload()
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  page.wait_for_function("document.body.dataset.settled === 'true'", timeout=120_000)
  assert page.evaluate("document.body.dataset.finetuned") == "false" and writer_accuracy(page, held_out) == before
  assert page.get_by_test_id("examples-count").text_content() == "0 examples"
  context.close()

@pytest.mark.slow
def test_it_predicts_while_it_trains_and_cancel_leaves_the_model_as_it_was(app, writer, mnist_test_set):
  url, browser = app
  context = browser.new_context()
  page = context.new_page()
  page.goto(url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  before = writer_accuracy(page, writer[1])
  teach(page, writer[0][:2], 3)
  page.get_by_test_id("finetune").click()
  page.wait_for_function("document.querySelector('[data-testid=finetune-status]').textContent.includes('step')", timeout=120_000)
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", mnist_test_set[0][1].reshape(-1).tolist())
  page.wait_for_function("document.body.dataset.busy === 'false'")                # drawing is read while it trains
  assert page.get_by_test_id("prediction").text_content() == str(mnist_test_set[1][1])
  assert page.get_by_test_id("finetune-status").get_attribute("data-state") == "running"
  page.get_by_test_id("finetune-cancel").click()
  wait_status(page, "idle")
  assert "Cancelled" in page.get_by_test_id("finetune-status").text_content()
  assert page.evaluate("document.body.dataset.finetuned") == "false" and writer_accuracy(page, writer[1]) == before
  context.close()

DAMAGE = """async (base) => {
  const site = new URL(".", location.href).pathname;   // the page's names are its site's (js/settings.js)
  const db = await new Promise((resolve, reject) => {
    const r = indexedDB.open(`mnist-app@${site}`, 1);
    r.onupgradeneeded = () => { r.result.createObjectStore("examples", { autoIncrement: true }); r.result.createObjectStore("weights"); };
    r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error);
  });
  await new Promise((resolve, reject) => {
    const tx = db.transaction("weights", "readwrite");
    tx.objectStore("weights").put({ base, weights: { "layers.13.weight": new ArrayBuffer(12) } }, "mnist_convnet");
    tx.oncomplete = resolve; tx.onerror = () => reject(tx.error);
  });
  db.close();
  localStorage.setItem(`teach@${site}`, "1");
}"""

def test_damaged_fine_tuned_weights_fall_back_to_the_shipped_model(app, mnist_test_set):
  url, browser = app
  context = browser.new_context()
  page = context.new_page()
  page.goto(url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  page.evaluate(DAMAGE, json.loads((WEBAPP / "mnist_convnet" / "mnist_convnet.json").read_text())["files"]["weights"]["sha256"])
  page.reload()
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  wait_status(page, "error", 30_000)
  assert "could not be read" in page.get_by_test_id("finetune-status").text_content()
  assert page.evaluate("document.body.dataset.finetuned") == "false"
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", mnist_test_set[0][0].reshape(-1).tolist())
  page.wait_for_function("document.body.dataset.busy === 'false'")
  assert page.get_by_test_id("prediction").text_content() == str(mnist_test_set[1][0])
  context.close()

def test_the_pages_fine_tuning_digits_are_what_mnist_data_writes():
  """samples/finetune.bin is generated (python mnist_data.py): replay digits from the training set, the last 1 000 test
  digits held out; the page's file is exactly that."""
  data = mnist_data.load_mnist_numpy()
  shipped = (WEBAPP / "samples" / "finetune.bin").read_bytes()
  assert shipped == mnist_data.finetune_samples(*data)
  n_replay, n_held = np.frombuffer(shipped[:8], dtype="<u4")
  assert (n_replay, n_held) == (mnist_data.FINETUNE_REPLAY, len(mnist_data.FINETUNE_HELD_OUT))
  held_labels = np.frombuffer(shipped, dtype=np.uint8, count=n_held, offset=8 + n_replay * 785)
  assert np.array_equal(held_labels, data[3][mnist_data.FINETUNE_HELD_OUT.start:])
