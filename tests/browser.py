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
  `break_after` is sent with its full Content-Length but only that many bytes before the connection is closed."""
  def __init__(self): self.requests, self.break_after = [], {}

@contextlib.contextmanager
def serve(folder:Path, mount:str="/", cache_control:str="no-store", server:Server|None=None):
  """Serve `folder` at http://127.0.0.1:PORT{mount}; yields the base URL (ending in '/'). `cache_control` "max-age=600"
  answers like GitHub Pages."""
  mount, seen = "/" + mount.strip("/"), server or Server()
  class Handler(_QuietHandler):
    def translate_path(self, path):
      if mount != "/" and not path.startswith(mount + "/"): return str(Path(folder) / "__not_found__")
      return super().translate_path(path[len(mount):] if mount != "/" else path)
    def end_headers(self):
      self.send_header("Cache-Control", cache_control)
      http.server.SimpleHTTPRequestHandler.end_headers(self)
    def do_GET(self):
      path = self.path.split("?")[0]
      seen.requests.append(path)
      name = path.rsplit("/", 1)[-1]
      if name not in seen.break_after: return super().do_GET()
      data = Path(self.translate_path(path)).read_bytes()
      self.send_response(200)
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data[:seen.break_after[name]])
      self.wfile.flush()
      self.close_connection = True
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

@contextlib.contextmanager
def chromium(webgpu:bool=True):
  browser = _playwright().chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS if webgpu else NO_WEBGPU_ARGS)
  try: yield browser
  finally: browser.close()

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

def draw_digit(page, digit, height_frac:float, rng):
  """Paint a 28x28 uint8 MNIST digit on the canvas with real mouse strokes, one per run of inked pixels in each row,
  scaled so that the digit's ink spans `height_frac` of the canvas height, at a random place where it fits."""
  import numpy as np
  box = page.get_by_test_id("canvas").bounding_box()
  ink = digit.reshape(28, 28) >= 128
  rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
  h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
  cell = height_frac * box["height"] / h
  left = box["x"] + rng.uniform(0.02, 0.98 - w * cell / box["width"]) * box["width"] if w * cell < 0.96 * box["width"] else box["x"]
  top = box["y"] + rng.uniform(0.02, 0.98 - height_frac) * box["height"]
  set_brush(page, cell * 1.25 * 280 / box["width"])
  for r in range(rows[0], rows[-1] + 1):
    y = top + (r - rows[0] + 0.5) * cell
    c = cols[0]
    while c <= cols[-1]:
      if not ink[r, c]: c += 1; continue
      start = c
      while c <= cols[-1] and ink[r, c]: c += 1
      x0, x1 = left + (start - cols[0] + 0.5) * cell, left + (c - 1 - cols[0] + 0.5) * cell
      page.mouse.move(x0, y)
      page.mouse.down()
      page.mouse.move(x1, y, steps=max(1, int((x1 - x0) // 12)))
      page.mouse.up()
