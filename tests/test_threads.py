"""WebAssembly on several threads and with relaxed SIMD, through the one runtime in Node (worker_threads): the threaded
module gives the same bits on 2 and 4 threads (the same kernels, split into the same parts) and stays within tolerance
of one thread and of tinygrad; relaxed SIMD's fused multiply-add within tolerance of tinygrad; training on 2 threads
ends 20 steps within tolerance of one thread's weights, with FMA its first losses; a thread that stops leaves the model on one thread, saying why."""
import json, shutil, subprocess, time
import numpy as np
import pytest
from conftest import ROOT
from browser import serve, Server, draw_digit, wait_settled, floats

def _probe(what:str, name:str, images:np.ndarray|None=None) -> dict:
  proc = subprocess.run(["node", "--experimental-wasm-relaxed-simd", str(ROOT / "tests" / "threads_probe.mjs"), what, name,
                         str(0 if images is None else len(images))],
                        input=b"" if images is None else images.astype(np.float32).tobytes(), capture_output=True, timeout=600)
  assert proc.returncode == 0, proc.stderr.decode()[-3000:]
  return json.loads(proc.stdout)

@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_convnet"])
def test_threads_give_the_same_bits_and_fma_stays_within_tolerance_of_tinygrad(name, mnist_test_set, shipped_logits):
  x, _ = mnist_test_set
  meta = json.loads((ROOT / "webapp" / name / f"{name}.json").read_text())
  images = ((x[:16].astype(np.float32) / 255 - meta["mean"]) / meta["std"]).reshape(16, -1)
  got = _probe("forward", name, images)
  assert set(got.pop("alone")) <= {"forward", "taps"}                                  # never a training step: they write the weights
  assert got["2"] == got["4"] == got["timed"]                                          # 2 and 4 threads, or here alone: the same bits
  want = shipped_logits(name)[:16]
  taps = len(got["1"]) // 16
  for variant, values in got.items():
    logits = np.stack([floats(values[i * taps]) for i in range(16)])
    assert np.abs(logits - want).max() < 1e-4, variant                                   # every build, tinygrad's logits
    for a, b in zip(values, got["1"]): assert np.abs(floats(a) - floats(b)).max() < 1e-4, variant   # and one thread's layers

@pytest.mark.parametrize("name", ["mnist_mlp_trainer", "mnist_convnet_trainer"])
def test_training_on_threads_matches_one_thread(name):
  got = _probe("fit", name)
  assert got["two"] == got["four"]                                                       # the same kernels: the same bits
  assert len(set(got["one"]["losses"])) == 20                                             # every step moved the weights
  for k, v in got["two"]["weights"].items():                                              # 20 Adam steps, 2 threads against 1
    one, two = floats(got["one"]["weights"][k]), floats(v)
    assert np.abs(two - one).max() <= 1e-5 * max(1.0, np.abs(one).max()), k
  # FMA rounds each multiply-add once, and Adam turns the last bit of a near-zero gradient into a whole step: its weights
  # part from plain SIMD's within a few steps, so it is held to the losses of the first three
  assert np.allclose(got["twoFma"]["losses"], got["one"]["losses"][:3], rtol=2e-4, atol=0), (got["twoFma"]["losses"], got["one"]["losses"][:3])

def test_a_thread_that_stops_leaves_the_model_on_one_thread_saying_why():
  got = _probe("stopped", "mnist_convnet")
  assert got["threadsBefore"] == 2 and got["threadsAfter"] == 1 and "thread 1 stopped" in got["lost"] and got["same"], got

def _second_visit(browser, url:str, mnist_test_set, **context_options):
  """Visit the app (its service worker installs), visit it again and draw a digit: the page of the second visit."""
  context = browser.new_context(**context_options)
  page = context.new_page()
  page.goto(url)
  blocked = context_options.get("service_workers") == "block"                # then it never says it is installed
  page.wait_for_function("() => document.body.dataset.settled === 'true'" if blocked else "() => document.body.dataset.offline === 'ready'", timeout=120_000)
  page.reload()
  page.wait_for_function("() => document.body.dataset.settled === 'true'", timeout=120_000)
  x, y = mnist_test_set
  draw_digit(page, x[3], 0.7, np.random.default_rng(3))
  wait_settled(page)
  assert page.get_by_test_id("prediction").text_content() == str(y[3])
  return page

def test_a_second_visit_is_isolated_by_the_service_worker_and_runs_on_threads(chromium_no_webgpu, mnist_test_set):
  with serve(ROOT / "webapp") as url:                                      # no COOP/COEP from the server, as on Pages
    page = _second_visit(chromium_no_webgpu, url + "?threads=2", mnist_test_set)
    assert page.evaluate("() => crossOriginIsolated") and page.evaluate("() => document.body.dataset.threads") == "2"
    assert page.get_by_test_id("status").text_content() == "Ready · WebAssembly · 2 threads"
    assert "Running on WebAssembly · 2 threads · FMA" in page.get_by_test_id("backend").text_content()
    assert "one thread" not in page.get_by_test_id("backend").text_content()
    page.context.close()

def test_with_the_service_worker_blocked_it_runs_one_thread_and_says_why(chromium_no_webgpu, mnist_test_set):
  with serve(ROOT / "webapp") as url:
    page = _second_visit(chromium_no_webgpu, url + "?threads=2", mnist_test_set, service_workers="block")
    assert not page.evaluate("() => crossOriginIsolated") and page.evaluate("() => document.body.dataset.threads") == "1"
    assert page.get_by_test_id("status").text_content() == "Ready · WebAssembly"
    assert "Running on WebAssembly · 1 thread · FMA" in page.get_by_test_id("backend").text_content()
    assert "one thread: the page is not cross-origin isolated" in page.get_by_test_id("backend").text_content()
    page.context.close()

def test_a_thread_worker_that_cannot_start_leaves_the_page_on_one_thread_with_a_message(chromium_no_webgpu, mnist_test_set):
  server = Server()
  server.bad["thread.js"] = "500"                                          # the Workers' script, and only it
  with serve(ROOT / "webapp", server=server) as url:
    page = _second_visit(chromium_no_webgpu, url + "?threads=2", mnist_test_set)
    assert page.evaluate("() => crossOriginIsolated") and page.evaluate("() => document.body.dataset.threads") == "1"
    assert "one thread: " in page.get_by_test_id("backend").text_content(), page.get_by_test_id("backend").text_content()
    page.context.close()

RELOADS_AFTER_UPDATE = 20
# the site's service worker changes (a new deployment) while its page is busy fetching (as a page still loading is): the
# page asks for the update and waits until the new worker has installed
UPDATE_WHILE_FETCHING = """async () => {
  const registration = await navigator.serviceWorker.getRegistration(), until = performance.now() + 1000;
  const fetching = (async () => {
    for (let i = 0; performance.now() < until; i++) { fetch(`favicon.svg?n=${i}`).catch(() => {}); await new Promise((r) => setTimeout(r, 10)); }
  })();
  const before = registration.active;
  await registration.update();
  const worker = registration.installing ?? registration.waiting ?? (registration.active !== before ? registration.active : null);
  if (worker) await new Promise((resolve) => { const installed = () => worker.state !== "installing" && resolve(); worker.onstatechange = installed; installed(); });
  await fetching;
  return worker?.state ?? "no new worker";
}"""

@pytest.mark.slow
def test_an_isolated_page_on_threads_reloads_right_after_its_service_worker_updates(tmp_path, chromium_no_webgpu):
  """A page on two threads whose site deploys a new service worker while the page fetches, reloaded at once, 20 times:
  every reload loads, isolated, on two threads; the newest worker takes over once no page of the site is open. (With
  skipWaiting(), Chromium stopped the worker in use to activate the new one, the page's fetches started it again, and the
  activation was left undone: the next reload got no load event, from the second update on.)"""
  site = tmp_path / "site"
  shutil.copytree(ROOT / "webapp", site, ignore=shutil.ignore_patterns("mnist_*", "samples"))
  for folder in [*(ROOT / "webapp").glob("mnist_*"), ROOT / "webapp" / "samples"]: (site / folder.name).symlink_to(folder)
  worker = (site / "sw.js").read_text()
  with serve(site) as url:
    context = chromium_no_webgpu.new_context()
    page = context.new_page()
    page.goto(url + "?threads=2")
    page.wait_for_function("() => document.body.dataset.offline === 'ready'", timeout=120_000)
    page.reload()                                                            # the second visit: isolated, on threads
    page.wait_for_function("() => document.body.dataset.threads === '2' && crossOriginIsolated", timeout=60_000)
    # a first update check with nothing new (Chromium answered the first one that found a new worker only after ~60 s)
    page.evaluate("async () => { await (await navigator.serviceWorker.getRegistration()).update(); }")
    took = []
    for n in range(RELOADS_AFTER_UPDATE):
      (site / "sw.js").write_text(worker + f"// deployment {n}\n")
      assert page.evaluate(UPDATE_WHILE_FETCHING) in ("installed", "activating", "activated"), n
      start = time.monotonic()
      page.reload(wait_until="load", timeout=30_000)
      took.append(time.monotonic() - start)
      page.wait_for_function("() => document.body.dataset.threads === '2' && crossOriginIsolated", timeout=60_000)
    page.close()
    time.sleep(2)                                          # no page of the site open: the newest worker takes over meanwhile
    page = context.new_page()
    page.goto(url + "?threads=2")
    page.wait_for_function("""async () => { const r = await navigator.serviceWorker.getRegistration();
                                            return !r.waiting && !r.installing && r.active?.state === "activated" && crossOriginIsolated; }""", timeout=60_000)
    print(f"reloads after an update: {len(took)}, load event after {min(took):.2f}-{max(took):.2f} s")
    context.close()
