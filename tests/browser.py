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
  def end_headers(self):
    self.send_header("Cache-Control", "no-store")
    super().end_headers()

@contextlib.contextmanager
def serve(folder:Path, mount:str="/"):
  """Serve `folder` at http://127.0.0.1:PORT{mount}; yields the base URL (ending in '/')."""
  mount = "/" + mount.strip("/")
  class Handler(_QuietHandler):
    def translate_path(self, path):
      if mount != "/" and not path.startswith(mount + "/"): return str(Path(folder) / "__not_found__")
      return super().translate_path(path[len(mount):] if mount != "/" else path)
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try: yield f"http://127.0.0.1:{server.server_address[1]}{mount.rstrip('/')}/"
  finally:
    server.shutdown()
    server.server_close()

@contextlib.contextmanager
def chromium(webgpu:bool=True):
  from playwright.sync_api import sync_playwright
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS if webgpu else NO_WEBGPU_ARGS)
    try: yield browser
    finally: browser.close()
