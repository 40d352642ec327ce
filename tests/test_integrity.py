"""Trust nothing that arrives, keep nothing bad: a bad answer for a model file (changed bytes, or a proxy's error page
with status 200) is refused and never kept by the offline cache, so the model loads once the server is right again; in
an insecure context (no crypto.subtle) the hash is still checked, in JavaScript; a changed generated module never runs;
a changed plan or WGSL file is refused before it is read; the page works under its strict Content-Security-Policy with
no violation; no HTML is ever built from strings."""
import base64, hashlib, json, re, shutil
import pytest
from conftest import ROOT
from browser import serve, chromium, Server, wait_settled, wait_in_page

WEBAPP = ROOT / "webapp"


def _open(browser, url, select:str|None=None):
  page = browser.new_page()
  page.errors = []
  page.on("pageerror", lambda e: page.errors.append(str(e)))
  page.goto(url)
  if select:
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
    page.get_by_test_id("model-select").select_option(select)
  return page

MLP_STATE = "mnistApp.model('mnist_mlp')"

@pytest.mark.slow
@pytest.mark.parametrize("bad", ["flipped", "html"])
def test_a_bad_answer_is_refused_never_cached_and_the_model_loads_once_the_server_is_right(chromium_no_webgpu, bad):
  server = Server()
  server.bad["mnist_mlp.safetensors"] = bad
  with serve(WEBAPP, server=server) as url:
    page = _open(chromium_no_webgpu, url)
    page.wait_for_function("document.body.dataset.offline === 'ready'", timeout=180_000)   # the service worker installed meanwhile
    page.get_by_test_id("model-select").select_option("mnist_mlp")
    page.wait_for_function(f"{MLP_STATE}.error", timeout=60_000)
    state = page.evaluate(MLP_STATE)
    assert "mnist_mlp.safetensors" in state["error"], state                # named, whatever the answer was
    assert state["retryable"] and page.get_by_test_id("retry-mnist_mlp").is_visible()
    assert page.get_by_test_id("prediction").text_content() == ""             # no other model's answer stays on screen
    assert not page.evaluate("""caches.open('mnist-app-v2@/').then((c) => c.keys()).then((ks) => ks.some((r) => r.url.includes('mnist_mlp.safetensors')))""")
    del server.bad["mnist_mlp.safetensors"]                                    # the server is right again
    before = server.requests.count("/mnist_mlp/mnist_mlp.safetensors")
    page.get_by_test_id("retry-mnist_mlp").click()                            # Retry, without a reload
    page.wait_for_function(f"{MLP_STATE}.ready", timeout=60_000)
    assert server.requests.count("/mnist_mlp/mnist_mlp.safetensors") == before + 1
    page.reload()                                                             # and a reload, through the service worker, loads it too
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
    page.get_by_test_id("model-select").select_option("mnist_mlp")
    page.wait_for_function(f"{MLP_STATE}.ready", timeout=60_000)
    page.get_by_test_id("sample").click()
    wait_settled(page)
    assert page.get_by_test_id("prediction").text_content().isdigit() and not page.errors
    page.close()

@pytest.mark.slow
def test_the_service_worker_drops_a_cached_copy_that_no_longer_matches_and_fetches_it_again(chromium_no_webgpu):
  server = Server()
  with serve(WEBAPP, server=server) as url:
    page = _open(chromium_no_webgpu, url)
    page.wait_for_function("document.body.dataset.offline === 'ready'", timeout=180_000)
    # a copy in the cache is damaged (a disk error, a bug of an earlier version): served from it, it would break the model
    key = page.evaluate("""async () => { const c = await caches.open('mnist-app-v2@/'), ks = await c.keys();
      const r = ks.find((r) => r.url.includes('mnist_mlp.safetensors'));
      const bytes = new Uint8Array(await (await c.match(r)).arrayBuffer()); bytes[bytes.length - 1] ^= 0xff;
      await c.put(r, new Response(bytes)); return r.url; }""")
    before = server.requests.count("/mnist_mlp/mnist_mlp.safetensors")
    page.reload()
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
    page.get_by_test_id("model-select").select_option("mnist_mlp")
    page.wait_for_function(f"{MLP_STATE}.ready", timeout=60_000)
    assert server.requests.count("/mnist_mlp/mnist_mlp.safetensors") == before + 1 and key.endswith("v=" + _meta("mnist_mlp")["files"]["weights"]["sha256"])
    page.close()

def _meta(name): return json.loads((WEBAPP / name / f"{name}.json").read_text())

def _site_copy(tmp_path):
  """A copy of the app to damage (the shipped models; the trainers left out, the digit files linked, not copied)."""
  site = tmp_path / "site"
  shutil.copytree(WEBAPP, site, ignore=shutil.ignore_patterns("mnist_*_trainer", "samples"))
  (site / "samples").symlink_to(WEBAPP / "samples")
  return site

@pytest.mark.parametrize("file", ["mnist_mlp.plan.json", "mnist_mlp.wgsl.json"])
def test_a_changed_plan_or_wgsl_is_refused_and_retry_loads_the_right_one(chromium_browser, tmp_path, file):
  """One edited number in the plan (a workgroup count) or in a WGSL kernel: the bytes no longer hash to what the metadata
  names, so the file is refused before it is parsed or compiled, on a model the visitor picks; named, with Retry, which
  loads the model once the file is right again. (The WGSL is read when WebGPU comes up: the browser has it.)"""
  site = _site_copy(tmp_path)
  path = site / "mnist_mlp" / file
  good = path.read_bytes()
  flip = lambda m: m.group(1) + str((int(m.group(2)) + 1) % 10).encode()                   # one digit, so the size stays
  path.write_bytes(re.sub(rb'("workgroups":\[)(\d)', flip, good, count=1) if file.endswith("plan.json") else good.replace(b"0.0f", b"1.0f", 1))
  assert path.read_bytes() != good
  with serve(site) as url:
    page = _open(chromium_browser, url, select="mnist_mlp")
    page.wait_for_function(f"{MLP_STATE}.error", timeout=120_000)
    state = page.evaluate(MLP_STATE)
    assert file in state["error"] and "sha256 mismatch" in state["error"] and state["retryable"], state
    path.write_bytes(good)
    page.wait_for_function("!document.querySelector('[data-testid=retry-mnist_mlp]').hidden", timeout=10_000)
    page.get_by_test_id("retry-mnist_mlp").click()
    page.wait_for_function(f"{MLP_STATE}.ready && Object.keys(mnistApp.model('mnist_mlp').timings).length === 2", timeout=120_000)
    assert not page.errors, page.errors
    page.close()

@pytest.mark.slow
def test_without_crypto_subtle_the_hash_is_still_checked(mnist_test_set, tmp_path):
  """Served as http://insecure.test (not localhost: an insecure context, as a LAN address would be): no crypto.subtle,
  no service worker, no WebGPU; a weights file with one value changed is refused, the right one predicts."""
  site = _site_copy(tmp_path)
  weights = site / "mnist_mlp" / "mnist_mlp.safetensors"
  data = bytearray(weights.read_bytes())
  data[-3] ^= 0x10                                                          # a well-formed file: only its hash tells it apart
  weights.write_bytes(bytes(data))
  x, y = mnist_test_set
  with serve(site) as url, chromium(webgpu=False, extra_args=("--host-resolver-rules=MAP insecure.test 127.0.0.1",)) as browser:
    insecure = url.replace("127.0.0.1", "insecure.test")
    page = _open(browser, insecure)
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
    assert page.evaluate("[isSecureContext, Boolean(globalThis.crypto?.subtle), 'serviceWorker' in navigator]") == [False, False, False]
    page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[0].reshape(-1).tolist())
    wait_settled(page)
    assert page.get_by_test_id("prediction").text_content() == str(y[0])    # the CNN, checked in JavaScript, predicts
    page.get_by_test_id("model-select").select_option("mnist_mlp")
    page.wait_for_function(f"{MLP_STATE}.error", timeout=60_000)
    assert "sha256 mismatch" in page.evaluate(MLP_STATE)["error"]
    page.close()

CSP_WATCH = "addEventListener('securitypolicyviolation', (e) => (window.__csp ??= []).push(`${e.violatedDirective} ${e.blockedURI}`));"

def test_the_policy_allows_the_one_inline_script_by_its_hash_and_nothing_else_inline():
  """The theme's script runs before the first paint, inline: its SHA-256 in the policy must be its own (a changed script
  with a stale hash would be blocked, and dark-mode visitors would see a white page until main.js ran)."""
  html = (WEBAPP / "index.html").read_text()
  csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
  assert "default-src 'self'" in csp and "script-src 'self' 'wasm-unsafe-eval'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
  inline = re.findall(r"<script>(.*?)</script>", html, re.S)
  pinned = re.findall(r"'sha256-([A-Za-z0-9+/=]+)'", csp)
  assert len(inline) == 1 and pinned == [base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()], (pinned, inline)

@pytest.mark.slow
def test_everything_works_under_the_content_security_policy(chromium_browser, app_url, mnist_test_set):
  """Predict on both backends, the inside view, the report, fine-tuning, dark mode and the offline cache, with the
  page's own policy in force (every other test's pages bypass it: Playwright's waits evaluate strings) and not one
  violation reported."""
  test_the_policy_allows_the_one_inline_script_by_its_hash_and_nothing_else_inline()
  x, y = mnist_test_set
  context = chromium_browser.unwrapped.new_context()
  context.add_init_script(CSP_WATCH)
  page = context.new_page()
  errors = []
  page.on("pageerror", lambda e: errors.append(str(e)))
  page.goto(app_url)
  wait = lambda expression, timeout=120, arg=None: wait_in_page(page, expression, timeout, arg)
  settled = lambda: wait("document.body.dataset.busy === 'false'", 30)
  # the policy is in force: an inline script added to the page does not run, and is reported
  page.evaluate("() => document.head.append(Object.assign(document.createElement('script'), { textContent: 'window.__inlineRan = true' }))")
  assert page.evaluate("() => window.__inlineRan === undefined") and wait("(window.__csp ?? []).some((v) => v.startsWith('script-src'))", 10)
  page.evaluate("() => { window.__csp = []; }")
  wait("document.body.dataset.settled === 'true'")
  for backend in ("webgpu", "wasm"):
    page.get_by_test_id("backend-select").select_option(backend)
    wait("document.body.dataset.backend === arg", 60, backend)
    page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[1].reshape(-1).tolist())
    settled()
    assert page.get_by_test_id("prediction").text_content() == str(y[1]), backend
  page.get_by_test_id("inside").click()
  wait("[...document.querySelectorAll('[data-testid=activations] > [data-layer]')].every((f) => f.dataset.mean !== '')", 60)
  page.get_by_test_id("report").click()
  wait("document.querySelectorAll('[data-testid=confusion-cell]').length === 100", 60)
  page.get_by_test_id("theme").click()
  assert page.evaluate("() => document.documentElement.classList.contains('dark')")
  page.get_by_test_id("model-select").select_option("mnist_mlp")
  wait("document.body.dataset.ready === 'true'", 60)
  # fine-tuning on WebGPU loads its training step's WGSL (it came from a data: module before the policy); on WebAssembly
  # its module is compiled under 'wasm-unsafe-eval', as every model's is
  page.get_by_test_id("backend-select").select_option("webgpu")
  wait("document.body.dataset.backend === 'webgpu'", 60)
  page.evaluate("(p) => mnistApp.drawImage(Uint8Array.from(p))", x[2].reshape(-1).tolist())
  settled()
  page.get_by_test_id(f"correct-{y[2]}").click()
  page.get_by_test_id("finetune").click()
  wait("['done', 'error'].includes(document.querySelector('[data-testid=finetune-status]').dataset.state)", 300)
  assert page.get_by_test_id("finetune-status").get_attribute("data-state") == "done", page.get_by_test_id("finetune-status").text_content()
  wait("document.body.dataset.offline === 'ready'", 180)
  assert page.evaluate("() => window.__csp ?? []") == [] and not errors, (page.evaluate("() => window.__csp"), errors)
  context.close()

def test_no_html_is_built_from_strings():
  """Text from a file or the visitor can never become markup: no innerHTML, outerHTML, insertAdjacentHTML or
  document.write anywhere in the page's code (dom.js builds nodes), so a Trusted Types policy could be switched on."""
  found = [(f.name, m.group(0)) for f in sorted((WEBAPP / "js").glob("*.js")) for m in re.finditer(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b", f.read_text())]
  assert not found, found
  # the theme's inline script aside (its hash pinned in the policy: the test above), no script, style or handler inline
  html = re.sub(r"<script>.*?</script>", "", (WEBAPP / "index.html").read_text(), count=1, flags=re.S)
  assert not re.search(r"<script>|\sstyle=|\son[a-z]+=|data:", html)

SOAK = """async ({ images, n }) => {
  const settled = () => new Promise((resolve) => {
    if (document.body.dataset.busy === "false") return resolve();
    const observer = new MutationObserver(() => { if (document.body.dataset.busy === "false") { observer.disconnect(); resolve(); } });
    observer.observe(document.body, { attributes: true, attributeFilter: ["data-busy"] });
  });
  const pixels = Uint8Array.from(atob(images), (c) => c.charCodeAt(0));
  for (let i = 0; i < n; i++) {
    mnistApp.drawImage(pixels.subarray((i % 100) * 784, (i % 100 + 1) * 784));
    await settled();
  }
  return { actions: mnistApp.strokes(), events: mnistApp.events().length };
}"""

@pytest.mark.slow
def test_ten_thousand_predictions_keep_memory_bounded(chromium_no_webgpu, app_url, mnist_test_set):
  """The undo history and every per-prediction record are bounded: after 1 000 and after 10 000 drawn digits, the JS heap
  (after a garbage collection) and the page's DOM are the same within 2 MB and 50 nodes."""
  import base64
  page = chromium_no_webgpu.new_page()
  page.goto(app_url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  cdp = page.context.new_cdp_session(page)
  def measure():
    cdp.send("HeapProfiler.collectGarbage")
    return cdp.send("Runtime.getHeapUsage")["usedSize"], cdp.send("Memory.getDOMCounters")["nodes"]
  images = base64.b64encode(mnist_test_set[0][:100].tobytes()).decode()
  page.evaluate(SOAK, {"images": images, "n": 1000})
  heap0, nodes0 = measure()
  counts = page.evaluate(SOAK, {"images": images, "n": 9000})
  heap1, nodes1 = measure()
  print(f"10 000 predictions: JS heap {heap0 / 1e6:.2f} -> {heap1 / 1e6:.2f} MB, DOM nodes {nodes0} -> {nodes1}, {counts}")
  assert counts["actions"] <= 102 and counts["events"] <= 1000, counts
  assert heap1 - heap0 < 2e6 and nodes1 - nodes0 < 50
  page.close()

@pytest.mark.parametrize("file, bad", [("mnist_mlp.plan.json", "500"), ("mnist_mlp.plan.json", "html"), ("mnist_mlp.plan.json", "flipped"),
                                       ("mnist_mlp.fma.wasm", "flipped"), ("mnist_mlp.safetensors", "500")])   # Chromium runs the FMA build
def test_every_file_of_a_model_that_fails_is_named_offers_retry_and_loads_when_the_server_recovers(chromium_no_webgpu, file, bad):
  server = Server()
  server.bad[file] = bad
  with serve(WEBAPP, server=server) as url:
    page = _open(chromium_no_webgpu, url, select="mnist_mlp")
    page.wait_for_function(f"{MLP_STATE}.error", timeout=60_000)
    state = page.evaluate(MLP_STATE)
    assert file in state["error"] and state["retryable"], state
    page.wait_for_function("!document.querySelector('[data-testid=retry-mnist_mlp]').hidden", timeout=10_000)
    assert file in page.get_by_test_id("download-mnist_mlp").text_content()
    del server.bad[file]
    page.get_by_test_id("retry-mnist_mlp").click()
    page.wait_for_function(f"{MLP_STATE}.ready", timeout=60_000)
    page.get_by_test_id("sample").click()
    wait_settled(page)
    assert page.get_by_test_id("prediction").text_content().isdigit() and not page.errors, page.errors
    page.close()

@pytest.mark.parametrize("bad", ["500", "html"])
def test_a_manifest_that_fails_is_named_with_a_retry_that_loads_the_models(chromium_no_webgpu, bad):
  """models.json is the one list of models: when it cannot be read the page says so (no model can load), and Retry,
  once the server is right, brings the page up without a reload."""
  server = Server()
  server.bad["models.json"] = bad
  with serve(WEBAPP, server=server) as url:
    page = _open(chromium_no_webgpu, url)
    page.wait_for_function("document.querySelector('[data-testid=retry-manifest]')", timeout=60_000)
    assert "models.json" in page.get_by_test_id("download-manifest").text_content()
    assert page.get_by_test_id("status").text_content().startswith("Error") and page.evaluate("document.body.dataset.ready") != "true"
    del server.bad["models.json"]
    page.get_by_test_id("retry-manifest").click()
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
    page.get_by_test_id("sample").click()
    wait_settled(page)
    assert page.get_by_test_id("prediction").text_content().isdigit() and not page.errors, page.errors
    page.close()
