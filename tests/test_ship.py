"""Shipping: workflows lint clean, the README's commands are the ones CI runs, the site works from a sub-path,
weights are real files (not Git LFS pointers)."""
import json, re, subprocess, sys
from pathlib import Path
import numpy as np
from conftest import ROOT
from browser import serve, open_app, wait_settled, draw_digit

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))

def test_workflows_validate_against_the_schema():
  proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stdout + proc.stderr

def test_workflows_pass_zizmor():
  # the one next to this Python (the project's .venv), never one that happens to be on the machine
  zizmor = Path(sys.executable).with_name("zizmor")
  assert zizmor.exists(), f"zizmor is not installed in {Path(sys.executable).parent}: run make deps"
  proc = subprocess.run([str(zizmor), "--offline", "--min-severity", "low", *map(str, WORKFLOWS)], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stdout + proc.stderr

def test_pages_deploys_webapp_only_after_the_tests():
  pages = (ROOT / ".github" / "workflows" / "pages.yml").read_text()
  assert "needs: test" in pages and "uses: ./.github/workflows/ci.yml" in pages and "path: webapp" in pages
  for action in ("configure-pages", "upload-pages-artifact", "deploy-pages"): assert f"actions/{action}@" in pages
  assert "permissions: {}" in pages                              # least privilege: each job asks for what it needs

def _readme_setup_commands() -> list[str]:
  readme = (ROOT / "README.md").read_text()
  block = re.search(r"## Set-up.*?```sh\n(.*?)```", readme, re.S).group(1)
  return [line.split("#")[0].strip() for line in block.strip().splitlines()]

def test_readme_commands_are_what_ci_runs():
  serve_cmd, test_cmd = _readme_setup_commands()
  ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
  assert ci[-1].strip() == test_cmd == "make test"
  assert "make test" in (ROOT / ".github" / "workflows" / "ci.yml").read_text()
  assert serve_cmd.startswith("python3 -m http.server") and serve_cmd.endswith("--directory webapp")

def test_weights_are_real_files_not_lfs_pointers():
  assert not (ROOT / ".gitattributes").exists() or "lfs" not in (ROOT / ".gitattributes").read_text()
  for f in (ROOT / "webapp").glob("*/*.safetensors"):
    raw = f.read_bytes()
    assert not raw.startswith(b"version https://git-lfs"), f
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert "__metadata__" in header and len(raw) == 8 + n + max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), f

def test_the_site_works_from_a_project_sub_path(chromium_browser, mnist_test_set):
  x, y = mnist_test_set
  with serve(ROOT / "webapp", mount="/some-repo/") as url:
    assert url.endswith("/some-repo/")
    page = open_app(chromium_browser, url)
    draw_digit(page, x[5], 0.7, np.random.default_rng(5))
    wait_settled(page)
    assert page.get_by_test_id("prediction").text_content() == str(y[5])
    assert not page.errors

def test_committed_css_is_the_tailwind_build_of_the_sources(tmp_path):
  out = tmp_path / "app.css"
  proc = subprocess.run(["npx", "--no-install", "tailwindcss", "-c", "tailwind.config.js", "-i", "webapp/css/input.css", "-o", str(out), "--minify"],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert out.read_text() == (ROOT / "webapp" / "css" / "app.css").read_text(), "run `make css` and commit webapp/css/app.css"

def test_the_page_requests_nothing_from_other_origins(app_url, chromium_browser, mnist_test_set):
  x, _ = mnist_test_set
  url = app_url
  page = chromium_browser.new_page()
  requested = []
  page.on("request", lambda r: requested.append(r.url))
  page.goto(url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  draw_digit(page, x[0], 0.6, np.random.default_rng(0))
  wait_settled(page)
  origin = url.rstrip("/")
  assert requested and all(u.startswith(origin) or u.startswith("data:") for u in requested), [u for u in requested if not u.startswith(origin)]
  shell = sum((ROOT / "webapp" / p).stat().st_size for p in ("index.html", "css/app.css"))
  js = lambda modules: sum((ROOT / "webapp" / "js" / m).stat().st_size for m in modules)
  # what a first visit loads before any model's own files: 165 KB with the one model runtime (the reader that decodes
  # safetensors files as the reference does, the SHA-256 for pages without crypto.subtle), which every model's module
  # carried before models were data (the CNN's module was 81 KB); WebGPU's and the threads' code load only when used
  assert shell + js(_static_modules()) <= 165 * 1024
  # and with every panel's code, loaded on demand: the trainer brought its own (trainer, fit, its worker, the data, the
  # charts: 40 KB); the runtime and the page as modules of one idea each (a header apiece), int8 weights' reader 250 KB
  assert shell + js(_page_modules()) <= 250 * 1024

def test_the_offline_cache_holds_every_file_the_page_needs(chromium_no_webgpu, app_url):
  """sw.js lists no file of the page: it follows index.html's links and each module's imports. Installed, its cache holds
  exactly the page, every module, the manifest and the sample digits, and of each model only what this browser runs: the
  plan, the weights, the WebAssembly module this visit ran and the one the next (isolated, so threaded) visit runs, of one
  build (Chromium: relaxed SIMD); no WebGPU kernels where WebGPU is off, and nothing only fine-tuning and training use."""
  page = chromium_no_webgpu.new_page()
  page.goto(app_url)
  page.wait_for_function("document.body.dataset.offline === 'ready'", timeout=180_000)
  cache = page.evaluate("""async () => {
    const names = await caches.keys(), own = names.filter((n) => n.endsWith('@' + new URL('.', location.href).pathname));
    const keys = own.length === 1 ? await (await caches.open(own[0])).keys() : [];
    return { names, files: keys.map((r) => new URL(r.url).pathname.slice(1) + (new URL(r.url).search.startsWith('?v=') ? '?v' : '')) };
  }""")
  page.close()
  webapp = ROOT / "webapp"
  linked = set(re.findall(r'(?:href|src)="((?!#)[^":]+)"', (webapp / "index.html").read_text()))
  manifest = json.loads((webapp / "models.json").read_text())["models"]
  sw = (webapp / "sw.js").read_text()
  samples = {f"samples/{name}?v" for name in re.findall(r'"([^"]+)"', re.search(r"const SAMPLES = \[(.*?)\];", sw).group(1))}
  want = {"", *linked, *(f"js/{m}" for m in _page_modules()), "models.json", "samples/index.json", *samples}
  assert len(cache["names"]) == 1 and want <= set(cache["files"]), (cache["names"], want - set(cache["files"]))
  for m in (m for m in manifest if m["role"] == "predict"):
    by_name = {f["name"]: key for key, f in m["meta"]["files"].items()}
    kept = {by_name[f.split("/", 1)[1][:-2]] for f in cache["files"] if f.startswith(m["name"] + "/")}
    modules = {x["file"]: x for x in m["meta"]["wasm_modules"]}
    assert kept - set(modules) == {"plan", "weights"}, (m["name"], kept)
    built = [modules[k] for k in kept & set(modules)]
    assert sorted(x["threads"] > 1 for x in built) == [False, True] and {x["fma"] for x in built} == {True}, (m["name"], kept)
  assert set(cache["files"]) - want == {f for f in cache["files"] if f.startswith(tuple(m["name"] + "/" for m in manifest))}

def _page_modules() -> set[str]:
  """The page's own modules: main.js and every module it imports, statically or on demand (or starts as a worker)."""
  return _modules(r'(?:from|import\(|new URL\()\s*"\./([\w/-]+\.js)"')

def _modules(pattern:str) -> set[str]:
  """main.js and the modules it reaches by `pattern` (a path relative to the module), directly or through another."""
  found, todo = set(), ["main.js"]
  while todo:
    name = todo.pop()
    if name not in found:
      found.add(name)
      folder = Path(name).parent
      todo += [str(folder / m) for m in re.findall(pattern, (ROOT / "webapp" / "js" / name).read_text())]
  return found

def _static_modules() -> set[str]:
  """main.js and the modules it imports statically, directly or through another (paths under webapp/js/): what a first
  visit loads."""
  return _modules(r'from\s*"\./([\w/-]+\.js)"')

def test_index_preloads_every_module_main_imports():
  html = (ROOT / "webapp" / "index.html").read_text()
  preloaded = set(re.findall(r'<link rel="modulepreload" href="js/([\w/-]+\.js)">', html))
  assert preloaded == _static_modules() - {"main.js"}
