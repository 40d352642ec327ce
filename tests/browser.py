"""Helpers shared by the browser tests and benchmarks: serve a folder on 127.0.0.1, start headless Chromium."""
import contextlib, functools, http.server, threading
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# WebGPU runs on SwiftShader headless with the unsafe flag; the rest keeps Chromium off a network it cannot reach
WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-default-apps"]
NO_WEBGPU_ARGS = [a for a in WEBGPU_ARGS if a != "--enable-unsafe-webgpu"] + ["--disable-webgpu"]

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args): pass

class _Server(http.server.ThreadingHTTPServer):
  def handle_error(self, request, client_address):
    import sys
    # a browser closed mid-download (e.g. the service worker still caching): not an error of the page
    if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)): super().handle_error(request, client_address)

class Server:
  """What the test server saw and how it misbehaves: `requests` lists every GET path (no query); a file named in
  `break_after` is sent with its full Content-Length but only that many bytes before the connection is closed (once,
  for a name also in `break_once`); a file named in `bad` (or a name with its query: that URL only) is answered with other bytes: "flipped" (its own, one byte
  changed, status 200), "html" (an error page with status 200, as a proxy or a captive portal sends) or "500" (a server
  error); while `offline` is set, every request is dropped unanswered (as if the network were gone: in any browser
  engine)."""
  def __init__(self): self.requests, self.break_after, self.break_once, self.bad, self.offline = [], {}, set(), {}, False

from evaluation import PAGES_GZIP as COMPRESSED   # what GitHub Pages compresses (gzip): text and WebAssembly, not the weights

@contextlib.contextmanager
def serve_like_pages(folder:Path, mounts:tuple=("/repo/",), server:Server|None=None):
  """As GitHub Pages serves a project site: under a subpath, gzip for text and WebAssembly, `max-age=600`, no custom
  headers. Several `mounts` serve the same folder on one origin (a site and its fork). Yields the first mount's URL."""
  with serve(folder, mount=mounts, cache_control="max-age=600", server=server, gzip=True) as url: yield url

@contextlib.contextmanager
def serve(folder:Path, mount:str|tuple="/", cache_control:str="no-store", server:Server|None=None, isolate:bool=False, gzip:bool=False):
  """Serve `folder` at http://127.0.0.1:PORT{mount} (or at each of several mounts); yields the (first) base URL, ending in
  '/'. `cache_control` "max-age=600" and `gzip` answer like GitHub Pages. `isolate`: with the COOP/COEP headers that make
  a page cross-origin isolated (as the app's service worker adds them on every visit after the first), for benchmarks of
  WebAssembly on threads."""
  mounts, seen = ["/" + m.strip("/") for m in ((mount,) if isinstance(mount, str) else mount)], server or Server()
  mount = mounts[0]
  packed = {}
  class Handler(_QuietHandler):
    def translate_path(self, path):
      if "/" in mounts: return super().translate_path(path)
      at = next((m for m in mounts if path.startswith(m + "/")), None)
      return super().translate_path(path[len(at):]) if at else str(Path(folder) / "__not_found__")
    def end_headers(self):
      self.send_header("Cache-Control", cache_control)
      if isolate: self.send_header("Cross-Origin-Opener-Policy", "same-origin"); self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
      http.server.SimpleHTTPRequestHandler.end_headers(self)
    def do_GET(self):
      if seen.offline:
        self.close_connection = True
        return
      path = self.path.split("?")[0]
      if path.endswith("/__viewport.html"): return self.viewport_page()
      if path.endswith("/__blank.html"): return self.page(b'<!doctype html><meta charset="utf-8"><title>blank</title>')
      seen.requests.append(path)
      name = path.rsplit("/", 1)[-1]
      if self.path.rsplit("/", 1)[-1] in seen.bad: name = self.path.rsplit("/", 1)[-1]   # "x.json?v=...": that URL only
      if name in seen.bad:
        data = Path(self.translate_path(path)).read_bytes()
        data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1:] if seen.bad[name] == "flipped" \
          else b"<!doctype html><title>502</title><p>Bad gateway</p>"
        return self.send_error(500) if seen.bad[name] == "500" else self.page(data)
      limit = seen.break_after.pop(name, None) if name in seen.break_once else seen.break_after.get(name)
      file = Path(self.translate_path(path))
      file = file / "index.html" if path.endswith("/") else file
      if limit is None and gzip and "gzip" in self.headers.get("Accept-Encoding", "") and file.suffix in COMPRESSED:
        return self.gzipped(file)
      if limit is None: return super().do_GET()
      data = Path(self.translate_path(path)).read_bytes()
      self.send_response(200)
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data[:limit])
      self.wfile.flush()
      self.close_connection = True
    def gzipped(self, file:Path):
      if not file.is_file(): return self.send_error(404)
      import gzip as gz
      key = (file, file.stat().st_mtime_ns, file.stat().st_size)   # a file rewritten by a test is packed again
      if key not in packed: packed[key] = gz.compress(file.read_bytes(), compresslevel=6, mtime=0)
      self.send_response(200)
      self.send_header("Content-Type", self.guess_type(str(file)))
      self.send_header("Content-Encoding", "gzip")
      self.send_header("Vary", "Accept-Encoding")
      self.send_header("Content-Length", str(len(packed[key])))
      self.send_header("Last-Modified", self.date_time_string(int(file.stat().st_mtime)))
      self.end_headers()
      self.wfile.write(packed[key])
    def viewport_page(self):
      """The page next to this one in an iframe of ?w= x ?h= CSS px: a viewport smaller than a browser's window can be
      (WebKitGTK's MiniBrowser is at least 447 px wide). Same origin, so the page works in it as it does on its own."""
      from urllib.parse import parse_qs, urlsplit
      q = {k: int(v[0]) for k, v in parse_qs(urlsplit(self.path).query).items()}
      self.page((f'<!doctype html><meta charset="utf-8"><style>html,body{{margin:0}}iframe{{display:block;border:0}}</style>'
                 f'<iframe src="./" width="{q["w"]}" height="{q["h"]}"></iframe>').encode())
    def page(self, body:bytes):
      """A 200 answer of `body` as HTML: __blank.html (an empty page of the site's origin, for tests that load a model's
      module themselves; the app would load and time every model meanwhile), the viewport frame, and bad answers."""
      self.send_response(200)
      self.send_header("Content-Type", "text/html")
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)
  httpd = _Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  try: yield f"http://127.0.0.1:{httpd.server_address[1]}{mount.rstrip('/')}/"
  finally:
    httpd.shutdown()
    httpd.server_close()

@functools.cache
def _playwright():
  # one driver per process: the sync API refuses to nest, and tests hold browsers with and without WebGPU at once
  import atexit
  from playwright.sync_api import sync_playwright
  driver = sync_playwright().start()
  atexit.register(driver.stop)
  return driver

class CSPBypassing:
  """A browser whose pages ignore the app's Content-Security-Policy: Playwright's in-page waits (wait_for_function)
  evaluate strings, which the policy forbids ('unsafe-eval'). The app itself runs the same either way; the tests of
  the policy use `unwrapped` (test_integrity.py), and wait from outside the page (wait_in_page)."""
  def __init__(self, browser): self.unwrapped = browser
  def new_page(self, **options): return self.unwrapped.new_page(bypass_csp=True, **options)
  def new_context(self, **options): return self.unwrapped.new_context(bypass_csp=True, **options)
  def __getattr__(self, name): return getattr(self.unwrapped, name)

@contextlib.contextmanager
def chromium(webgpu:bool=True, extra_args:tuple=()):
  browser = _playwright().chromium.launch(executable_path=CHROMIUM, args=[*(WEBGPU_ARGS if webgpu else NO_WEBGPU_ARGS), *extra_args])
  try: yield CSPBypassing(browser)
  finally: browser.close()

def floats(b64:str):
  """Float32 values a page sent back as base64 (the exact bits, which JSON numbers would not keep)."""
  import base64
  import numpy as np
  return np.frombuffer(base64.b64decode(b64), dtype=np.float32)

def wait_in_page(page, expression:str, timeout:float=60, arg=None):
  """Until the JS `expression` (a function of `arg`) is truthy, polled from outside the page: under the app's CSP,
  where Playwright's wait_for_function cannot evaluate a string. Returns its value."""
  import time
  end = time.monotonic() + timeout
  while True:
    value = page.evaluate(f"(arg) => ({expression})", arg)
    if value: return value
    if time.monotonic() > end: raise TimeoutError(f"timed out after {timeout} s waiting for: {expression}")
    time.sleep(0.05)

def open_app(browser, url:str, viewport=(1440, 900), wait_ready:bool=True):
  page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
  errors = []
  page.on("pageerror", lambda e: errors.append(str(e)))
  page.goto(url)
  if wait_ready: page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  page.errors = errors
  return page

# DevTools network throttling: (round-trip latency ms, download bits/s); the profiles of bench/bench_load.py
LINKS = {"4G": (40, 10e6), "3G": (150, 1.6e6)}

def throttle(page, link:str):
  latency, bits = LINKS[link]
  cdp = page.context.new_cdp_session(page)
  cdp.send("Network.enable")
  cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": latency, "downloadThroughput": bits / 8, "uploadThroughput": bits / 16})

def wait_settled(page):
  """Until the prediction for the current drawing has landed (main.js keeps body[data-busy])."""
  page.wait_for_function("document.body.dataset.busy === 'false'", timeout=30_000)

def set_brush(page, ink_px:float):
  page.get_by_test_id("brush").evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(round(ink_px)))

def digit_strokes(digit, height_frac:float, rng, aspect:float=1.0) -> dict:
  """How a person would paint a 28x28 uint8 MNIST digit: one horizontal stroke per run of inked pixels in each row, the
  digit's ink spanning `height_frac` of the canvas height at a random place where it fits. Returns {"brush": width in
  ink-canvas pixels, "strokes": [[x, y, x, y, ...], ...] with every point as a fraction of the canvas}, points at most
  12/280 of the canvas apart (as mouse moves come). `aspect` is the canvas's width over its height."""
  import numpy as np
  ink = digit.reshape(28, 28) >= 128
  rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
  h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
  cell_y = height_frac / h                       # one MNIST pixel, as a fraction of the canvas height
  cell_x = cell_y / aspect
  left = rng.uniform(0.02, 0.98 - w * cell_x) if w * cell_x < 0.96 else 0.0
  top = rng.uniform(0.02, 0.98 - height_frac)
  strokes = []
  for r in range(rows[0], rows[-1] + 1):
    y = top + (r - rows[0] + 0.5) * cell_y
    c = cols[0]
    while c <= cols[-1]:
      if not ink[r, c]: c += 1; continue
      start = c
      while c <= cols[-1] and ink[r, c]: c += 1
      x0, x1 = left + (start - cols[0] + 0.5) * cell_x, left + (c - 1 - cols[0] + 0.5) * cell_x
      steps = max(1, int((x1 - x0) * 280 // 12))
      points = [x0, y]
      for k in range(1, steps + 1): points += [x0 + (x1 - x0) * k / steps, y]
      strokes.append(points)
  return {"brush": round(cell_x * 1.25 * 280), "strokes": strokes}

# In the page, in one call: the brush set through its slider, then every stroke as pointer events on the canvas
# (pointerdown, pointermove for each further point, pointerup), so that a digit costs one round trip to the browser
# instead of one per mouse move. The same script drives Chromium, Firefox and WebKit.
DISPATCH_STROKES = """({brush, strokes, pointerType = "mouse"}) => {
  const canvas = document.querySelector("[data-testid=canvas]"), slider = document.querySelector("[data-testid=brush]");
  slider.value = String(brush);
  slider.dispatchEvent(new Event("input"));
  const box = canvas.getBoundingClientRect();
  const fire = (type, x, y) => canvas.dispatchEvent(new PointerEvent(type, {
    bubbles: true, cancelable: true, composed: true, pointerId: 7, pointerType, isPrimary: true, button: type === "pointermove" ? -1 : 0,
    buttons: type === "pointerup" ? 0 : 1, clientX: box.left + x * box.width, clientY: box.top + y * box.height }));
  for (const points of strokes) {
    fire("pointerdown", points[0], points[1]);
    for (let i = 2; i < points.length; i += 2) fire("pointermove", points[i], points[i + 1]);
    fire("pointerup", points[points.length - 2], points[points.length - 1]);
  }
}"""

def draw_digit(page, digit, height_frac:float, rng):
  """Paint a 28x28 uint8 MNIST digit on the canvas with pointer strokes (digit_strokes), dispatched in the page."""
  box = page.get_by_test_id("canvas").bounding_box()
  page.evaluate(DISPATCH_STROKES, digit_strokes(digit, height_frac, rng, box["width"] / box["height"]))

# In a page served next to mnist_test_images.bin and the app's js/ folder (the raw test images): open a model with the
# runtime, normalise the first `count` images with the metadata's mean/std (as the app does) and run them all on one
# backend; `weights` (a URL) and `verify` replace the model's own weights file and its check
RUN_IN_PAGE = """async ({name, count, verify, weights, backend}) => {
  const { openModel } = await import(new URL("js/runtime/index.js", location.href));
  const device = backend === "wasm" ? "wasm" : await (await navigator.gpu.requestAdapter()).requestDevice();
  let run, meta;
  try {
    const model = await openModel(new URL(`${name}/${name}.json`, location.href));
    meta = model.meta;
    run = await model.load(device, weights || !verify ? { weights: new URL(weights || `${name}/${meta.files.weights.name}`, location.href), verify } : undefined);
  } catch (e) { return { error: e.message }; }
  const pixels = new Uint8Array(await (await fetch("mnist_test_images.bin")).arrayBuffer());
  const logits = [];
  for (let i = 0; i < count; i++) {
    const x = new Float32Array(784);
    for (let j = 0; j < 784; j++) x[j] = (pixels[i * 784 + j] / 255 - meta.mean) / meta.std;
    logits.push(...(await run(x)));
  }
  return { logits, accuracy: meta.test_accuracy };
}"""

# Where the answer is after drawing, from getBoundingClientRect(): whether the canvas, the best guess, every bar (and,
# with the inside view open, its compact strip of the first layer) lie wholly inside the viewport, the canvas's share
# of the viewport's width, and how far the page has scrolled.
ON_SCREEN = """() => {
  const inside = (el) => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5; };
  const $ = (s) => document.querySelector(s);
  return { viewport: [innerWidth, innerHeight], width: document.documentElement.scrollWidth, scroll: [scrollX, scrollY], canvas: inside($("[data-testid=canvas]")),
           canvasShare: $("[data-testid=canvas]").getBoundingClientRect().width / innerWidth, guess: inside($("[data-testid=prediction]")),
           confidence: inside($("[data-testid=confidence]")), bars: [...Array(10).keys()].map((d) => inside($(`[data-testid=prob-${d}]`))),
           strip: !$("#inside-strip").hidden && inside($("#strip-first")), prediction: $("[data-testid=prediction]").textContent };
}"""
