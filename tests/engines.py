"""The page in the other browser engines, behind one small interface that the cross-engine tests share: Firefox (Gecko:
Debian's firefox-esr, headless, driven over WebDriver BiDi by puppeteer-core in tests/firefox_driver.mjs) and WebKit
(Safari's engine: WebKitGTK's MiniBrowser, driven by Selenium through WebKitWebDriver, on a private Xvfb display).

  with engine("firefox") as browser:
    page = browser.open(390, 844)
    page.goto(url)
    page.wait_for("document.body.dataset.ready === 'true'")
    page.evaluate("(x) => x + 1", 41)          # a JS function of one JSON argument, sync or async -> its JSON value
"""
import contextlib, json, os, queue, shutil, subprocess, threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("firefox", "webkit")
FIREFOX = "/usr/bin/firefox-esr"
WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
PAGE_LOAD_S = 90
HTTP_GRACE_S = 30   # how much longer than the command's own timeout a WebDriver request may take

class EngineError(Exception):
  """The page threw, a wait timed out, or the browser went away."""

# Polls a condition inside the page (one round trip per wait, not one per poll)
WAIT = """new Promise((resolve, reject) => {
  const test = (%s), arg = %s, started = performance.now();
  const tick = () => {
    let value;
    try { value = test(arg); } catch (e) { reject(e); return; }
    if (value) resolve(value);
    else if (performance.now() - started > %d) reject(new Error("timed out after %d ms waiting for: " + %s));
    else setTimeout(tick, 20);
  };
  tick();
})"""

class Page:
  """One tab: `_eval(expression)` is the engine's; the rest is shared."""
  def evaluate(self, fn:str, arg=None):
    return self._eval(f"({fn})({json.dumps(arg)})")

  def reload(self):
    """Reload the page from inside it, and wait until the new one has loaded."""
    self.evaluate("() => { window.__beforeReload = true; location.reload(); }")
    self.wait_for("!window.__beforeReload && document.readyState === 'complete'", timeout=120)

  def wait_for(self, condition:str, timeout:float=60):
    """Until the JS expression `condition` is truthy in the page; returns its value."""
    ms = int(timeout * 1000)
    return self._eval(WAIT % (f"() => ({condition})", "null", ms, ms, json.dumps(condition)), timeout=timeout + 10)

class _FirefoxPage(Page):
  def __init__(self, browser, handle): self.browser, self.handle = browser, handle
  def goto(self, url): self.browser.call("goto", page=self.handle, url=url)
  def _eval(self, expression, timeout=60): return self.browser.call("evaluate", timeout=timeout, page=self.handle, expression=expression)
  @property
  def errors(self): return self.browser.call("errors", page=self.handle)
  def close(self): self.browser.call("close", page=self.handle)

class Firefox:
  """tests/firefox_driver.mjs in a Node process, one JSON line per command."""
  name = "firefox"
  def __init__(self):
    if not Path(FIREFOX).exists(): raise EngineError(f"{FIREFOX} is missing: run make deps (Debian firefox-esr)")
    self.proc = subprocess.Popen(["node", str(ROOT / "tests" / "firefox_driver.mjs")], cwd=ROOT, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env={**os.environ, "FIREFOX": FIREFOX})
    self.lines, self.next_id = queue.Queue(), 1
    threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout] + [self.lines.put(None)], daemon=True).start()
    self.version = self._answer(0, 120)

  def _answer(self, id_, timeout):
    try: line = self.lines.get(timeout=timeout)
    except queue.Empty: raise EngineError(f"Firefox did not answer in {timeout} s") from None
    if line is None: raise EngineError(f"the Firefox driver exited ({self.proc.wait()})")
    message = json.loads(line)
    assert message["id"] == id_, message
    if "error" in message: raise EngineError(message["error"])
    return message["result"]

  def call(self, op, timeout=60, **args):
    id_, self.next_id = self.next_id, self.next_id + 1
    self.proc.stdin.write(json.dumps({"id": id_, "op": op, **args}) + "\n")
    self.proc.stdin.flush()
    return self._answer(id_, timeout)

  def open(self, width=1280, height=900) -> Page: return _FirefoxPage(self, self.call("open", width=width, height=height))

  def quit(self):
    self.proc.stdin.close()
    try: self.proc.wait(30)
    except subprocess.TimeoutExpired: self.proc.kill()

# Errors thrown outside an evaluate (event handlers, promises nobody awaited) are collected in the page itself: WebKit's
# WebDriver has no event for them. Installed after each navigation.
WEBKIT_ERRORS = """window.__errors ??= [];
addEventListener("error", (e) => __errors.push(String(e.message)));
addEventListener("unhandledrejection", (e) => __errors.push(String(e.reason?.message ?? e.reason)));"""

class _WebKitPage(Page):
  """A viewport narrower than the window can be (MiniBrowser keeps a minimum width) is an iframe of exactly that size
  on a page of the same origin (browser.py's __viewport.html): the app runs in it as in a window of that size."""
  def __init__(self, driver, width, height):
    self.driver, self.size = driver, (width, height)
    driver.switch_to.default_content()
    driver.get("about:blank")
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [innerWidth, innerHeight]")     # the window's frame takes some of it
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    inner = driver.execute_script("return [innerWidth, innerHeight]")
    self.framed = tuple(inner) != (width, height)
    if self.framed: driver.set_window_size(max(1024, width + 100), max(1000, height + 100))

  def goto(self, url):
    self.driver.switch_to.default_content()
    if not self.framed: self.driver.get(url)
    else:
      self.driver.get(f"{url.rsplit('/', 1)[0]}/__viewport.html?w={self.size[0]}&h={self.size[1]}")
      self.driver.switch_to.frame(0)
      self.wait_for("document.readyState !== 'loading' && location.href !== 'about:blank'")
    self.driver.execute_script(WEBKIT_ERRORS)

  def reload(self):
    # WebDriver's own refresh, which waits for the load within the page-load timeout: a script sent while the page
    # reloaded from inside (Page.reload) sometimes never came back under load, offline (1 in 3 runs on 2 busy cores)
    if self.framed: return super().reload()
    self.driver.refresh()
    self.driver.execute_script(WEBKIT_ERRORS)

  def _eval(self, expression, timeout=60):
    self.driver.set_script_timeout(timeout)
    http = self.driver.command_executor.client_config
    http.timeout = max(timeout, PAGE_LOAD_S) + HTTP_GRACE_S   # a driver that never answers fails too
    try:
      done = self.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"Promise.resolve().then(() => {expression}).then((value) => done({{ value: value === undefined ? null : value }}),"
        " (e) => done({ error: String(e?.message ?? e) }));")
    finally: http.timeout = PAGE_LOAD_S + HTTP_GRACE_S
    if "error" in done: raise EngineError(done["error"])
    return done["value"]

  @property
  def errors(self): return self.driver.execute_script("return window.__errors ?? []")
  def close(self):
    self.driver.switch_to.default_content()
    self.driver.get("about:blank")

class WebKit:
  """WebKitGTK's MiniBrowser through WebKitWebDriver (Selenium), on an Xvfb display of its own. One window: each test
  gets a fresh origin from its own server (storage, caches and service workers are per origin)."""
  name = "webkit"
  def __init__(self):
    from selenium import webdriver
    from selenium.webdriver.webkitgtk.options import Options
    from selenium.webdriver.webkitgtk.service import Service
    for path, package in ((WEBKIT_DRIVER, "webkit2gtk-driver"), (MINIBROWSER, "webkit2gtk-driver"), (shutil.which("Xvfb") or "/usr/bin/Xvfb", "xvfb")):
      if not Path(path).exists(): raise EngineError(f"{path} is missing: run make deps (Debian {package})")
    read, write = os.pipe()
    self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1200x24", "-nolisten", "tcp"], pass_fds=(write,),
                                 stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f: display = f.readline().strip()
    options = Options()
    options.binary_location = MINIBROWSER
    options.add_argument("--automation")
    self.driver = webdriver.WebKitGTK(options=options, service=Service(WEBKIT_DRIVER, env={**os.environ, "DISPLAY": f":{display}"}))
    self.driver.set_page_load_timeout(PAGE_LOAD_S)   # a navigation that never loads fails instead of waiting (WebDriver's 300 s)
    # and every command's HTTP request is bounded (Selenium's default waits for ever: once a script in a page that was
    # reloading offline never came back, and only pytest's 600 s ended the test)
    self.driver.command_executor.client_config.timeout = PAGE_LOAD_S + HTTP_GRACE_S
    self.version = self.driver.capabilities.get("browserVersion", "")

  def open(self, width=1280, height=900) -> Page: return _WebKitPage(self.driver, width, height)

  def quit(self):
    try: self.driver.quit()
    finally:
      self.xvfb.terminate()
      self.xvfb.wait(10)

@contextlib.contextmanager
def engine(name:str):
  browser = {"firefox": Firefox, "webkit": WebKit}[name]()
  try: yield browser
  finally: browser.quit()
