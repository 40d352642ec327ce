"""A first visit on a phone-like link, and a second one: how long until the page can read a drawn digit.

  python bench/bench_load.py            # 5 cold visits per link profile, 5 second visits; writes bench/load.json
  python bench/bench_load.py --quick    # one of each, 4G only (CI: proves the harness works)
  python bench/bench_load.py --site DIR # another copy of the app (e.g. an older commit), for a before/after table

Each cold visit is a fresh browser context (no HTTP cache, no service worker) whose network Chromium throttles through
DevTools (added round-trip latency and download bandwidth). The server answers like GitHub Pages (tests/browser.py
serve_like_pages): the app under a subpath (/repo/), text and WebAssembly gzip-compressed, the weights as they are,
`Cache-Control: max-age=600`, Last-Modified, no custom headers. Measured from navigation start:
  ready       the selected model (the default, the CNN) can read a drawing: body[data-ready] turns true
  prediction  a digit drawn at that moment is on the screen: ready + pointer-up -> bars (the first, cold, run)
  bytes       received before ready: on the wire (Resource Timing transfer sizes, compressed, headers included, the page
              included) and as files (decoded body sizes)
  all models  every model downloaded (the runtime's "downloaded" event)
A second visit reloads the page once its service worker is installed: online on the same link, and offline.
"""
import argparse, json, os, platform, statistics, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from browser import chromium, serve_like_pages, throttle, LINKS

# Installed before the page's own scripts. It draws an MNIST digit as soon as the drawing pad exists (a visitor who
# draws while the page loads) and notes, in ms since navigation start, when body[data-ready] first turns true and when
# the first prediction is on the screen.
WATCH = """
window.__drawAtOnce = (pixels) => {
  const wait = setInterval(() => { if (window.mnistApp) { clearInterval(wait); mnistApp.drawImage(new Uint8Array(pixels)); } }, 5);
};
new MutationObserver(() => {
  if (document.body?.dataset.ready === 'true') window.__readyAt ??= performance.now();
  const shown = document.querySelector('[data-testid=prediction]')?.textContent;
  if (shown) { window.__predictedAt ??= performance.now(); window.__predicted ??= shown; }
}).observe(document, { attributes: true, childList: true, characterData: true, subtree: true });
"""

BYTES_BEFORE = """([t, size]) => {
  const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
  return entries.filter((e) => e.responseEnd <= t).reduce((sum, e) => sum + e[size], 0);
}"""
WIRE, FILES = "transferSize", "decodedBodySize"

def visit(page, url:str, digit, label:int, reload:bool=False) -> dict:
  """Open (or reload) the app with a digit drawn at once; wait for its prediction."""
  page.add_init_script(WATCH + f"__drawAtOnce({json.dumps(digit.reshape(-1).tolist())});")
  if reload: page.reload(wait_until="commit")
  else: page.goto(url, wait_until="commit")
  page.wait_for_function("window.__predictedAt !== undefined", timeout=600_000, polling=10)
  ready, predicted, shown = page.evaluate("[window.__readyAt, window.__predictedAt, window.__predicted]")
  if shown != str(label): raise SystemExit(f"the page read the digit as {shown}, not {label}")
  return {"ready_ms": round(ready, 1), "prediction_ms": round(predicted, 1), "bytes_before_ready": page.evaluate(BYTES_BEFORE, [ready, WIRE]),
          "file_bytes_before_ready": page.evaluate(BYTES_BEFORE, [ready, FILES])}

# (an older page without the runtime's event log: until it has settled, which it did only once every model was in)
DOWNLOADED = "mnistApp.events().find((e) => e.event === 'downloaded')?.t ?? (document.body.dataset.settled === 'true' && performance.now())"

def cold_visit(browser, url:str, profile:str, digit, label:int) -> dict:
  context = browser.new_context(viewport={"width": 412, "height": 915})
  page = context.new_page()
  throttle(page, profile)
  result = visit(page, url, digit, label)
  # (an older page without the runtime's event log: until it has settled, which it did only once every model was in)
  result["all_models_ms"] = round(page.wait_for_function(DOWNLOADED, timeout=600_000, polling=100).json_value(), 1)
  result["bytes_total"] = page.evaluate(BYTES_BEFORE, [1e12, WIRE])
  result["file_bytes_total"] = page.evaluate(BYTES_BEFORE, [1e12, FILES])
  context.close()
  return result

def second_visits(browser, url:str, profile:str, digit, label:int, runs:int) -> dict:
  """Visit once, wait for the service worker, then reload `runs` times online (same link) and `runs` times offline."""
  context = browser.new_context(viewport={"width": 412, "height": 915})
  page = context.new_page()
  throttle(page, profile)
  visit(page, url, digit, label)
  page.wait_for_function("document.body.dataset.offline === 'ready'", timeout=600_000, polling=100)
  page.wait_for_function(DOWNLOADED, timeout=600_000, polling=100)   # and every model's builds stashed
  page.wait_for_timeout(1000)
  result = {"online": [], "offline": [], "offline_bytes": page.evaluate(OFFLINE_BYTES)}
  for mode in ("online", "offline"):
    context.set_offline(mode == "offline")
    for _ in range(runs): result[mode].append(visit(page, url, digit, label, reload=True))
  context.close()
  return result

GOALS = {"4G": 0.5, "3G": 1.5}   # seconds to ready on a first visit
BYTES_GOAL, ALL_MODELS_GOAL, OFFLINE_GOAL = 120e3, {"3G": 8.0}, 2e6   # on the wire before ready; s to every model on 3G; offline copy
# what this browser keeps for offline use: every response in the site's caches, as stored (decoded)
OFFLINE_BYTES = """async () => { let n = 0;
  for (const name of await caches.keys()) { const cache = await caches.open(name);
    for (const request of await cache.keys()) n += (await (await cache.match(request)).arrayBuffer()).byteLength; }
  return n; }"""

def met(ok:bool) -> str: return "met" if ok else "not met"

def p50(visits:list, key:str) -> float: return statistics.median(v[key] for v in visits)

def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--site", type=Path, default=ROOT / "webapp", help="the app's folder (default: webapp/)")
  ap.add_argument("--json", type=Path, default=ROOT / "bench" / "load.json")
  args = ap.parse_args()
  from mnist_data import load_mnist_numpy
  _, _, x_test, y_test = load_mnist_numpy()
  digit, label = x_test[0], int(y_test[0])
  runs = 1 if args.quick else 5
  report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores, headless Chromium",
            "quick": args.quick, "site": str(args.site), "profiles": LINKS, "cold": {}, "second_visit": {}}
  with serve_like_pages(args.site) as url, chromium() as browser:
    for profile in (["4G"] if args.quick else LINKS): report["cold"][profile] = [cold_visit(browser, url, profile, digit, label) for _ in range(runs)]
    report["second_visit"] = second_visits(browser, url, "4G", digit, label, runs)
  print(f"cold first visit, default model (CNN), p50 of {runs}; {report['machine']}\n")
  print("| link | ready | first prediction | before ready: on the wire (files) | every model downloaded | in all: on the wire (files) | goal |\n|---|---|---|---|---|---|---|")
  for profile, visits in report["cold"].items():
    latency, down = LINKS[profile]
    ready = p50(visits, 'ready_ms') / 1000
    before, every = p50(visits, 'bytes_before_ready'), p50(visits, 'all_models_ms') / 1000
    goals = [f"ready <= {GOALS[profile]} s: {met(ready <= GOALS[profile])}", f"<= {BYTES_GOAL / 1e3:.0f} KB before: {met(before <= BYTES_GOAL)}"]
    if profile in ALL_MODELS_GOAL: goals.append(f"every model <= {ALL_MODELS_GOAL[profile]:g} s: {met(every <= ALL_MODELS_GOAL[profile])}")
    print(f"| {profile} ({down / 1e6:g} Mbit/s, {latency} ms) | {ready:.2f} s | {p50(visits, 'prediction_ms') / 1000:.2f} s | "
          f"{before / 1e3:.0f} KB ({p50(visits, 'file_bytes_before_ready') / 1e3:.0f} KB) | {every:.1f} s | "
          f"{p50(visits, 'bytes_total') / 1e6:.2f} MB ({p50(visits, 'file_bytes_total') / 1e6:.2f} MB) | {'; '.join(goals)} |")
  offline = report["second_visit"].pop("offline_bytes")
  for mode, visits in report["second_visit"].items():
    print(f"| second visit, {mode} | {p50(visits, 'ready_ms') / 1000:.2f} s | {p50(visits, 'prediction_ms') / 1000:.2f} s | "
          f"{p50(visits, 'bytes_before_ready') / 1e3:.0f} KB | | | |")
  print(f"\noffline copy (every response in the site's caches after the first visit): {offline / 1e6:.2f} MB; "
        f"goal <= {OFFLINE_GOAL / 1e6:g} MB: {met(offline <= OFFLINE_GOAL)}")
  report["second_visit"]["offline_bytes"] = offline
  if not args.quick: args.json.write_text(json.dumps(report, indent=1) + "\n")

if __name__ == "__main__":
  main()
