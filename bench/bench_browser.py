"""In-browser speed of the app in headless Chromium, on both backends side by side (WebGPU on SwiftShader here, a real
GPU elsewhere; WebAssembly SIMD on the CPU). Prints tables and writes bench/last_run.json.

  python bench/bench_browser.py          # full run
  python bench/bench_browser.py --quick  # a few samples of each (CI: proves the harness works)

Measures, per model and backend: warm run() p50/p95 (one forward pass with readback) and pointer-up -> bars updated for a
drawn digit; per model: preprocessing alone (canvas read + crop/scale/centre/normalise), the backend the page picks by
itself, and the floor of a WebAssembly forward pass (one pass over as many bytes as its weights, FLOOR_C); and the page: shell size (HTML+CSS+JS, no weights), cold load -> first prediction possible (ready) and -> both
backends timed and chosen (settled).
"""
import argparse, json, platform, sys, time
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from browser import serve, chromium, open_app, wait_settled, draw_digit

MODELS = ["mnist_mlp", "mnist_convnet"]
BACKENDS = ["webgpu", "wasm"]

def pct(values, q): return float(np.percentile(values, q)) if values else float("nan")

# The floor of a forward pass that reads its weights once: one pass over as many float32 bytes as the model's weights
# (what its WebAssembly arena holds), four f32x4 sums, compiled with the exporter's own flags and timed like run()
FLOOR_C = """typedef float f4 __attribute__((vector_size(16)));
static f4 arena[%d];
// exported, as a model's arena is: the compiler cannot assume what it holds (all zeros, never written, it would fold the sum)
__attribute__((export_name("arena"))) f4* arena_address(void) { return arena; }
__attribute__((export_name("stream"))) float stream(void) {
  f4 a = {0}, b = {0}, c = {0}, d = {0};
  for (int i = 0; i < %d; i += 4) { a += arena[i]; b += arena[i + 1]; c += arena[i + 2]; d += arena[i + 3]; }
  f4 s = a + b + c + d;
  return s[0] + s[1] + s[2] + s[3];
}
"""

# Timed in groups of ten (the mean of ten back to back), as run() is for the ratio: Chromium's clock ticks in 0.1 ms
# here, the length of a run
FLOOR_LOOP = """async ([wasm, n]) => {
  const { instance } = await WebAssembly.instantiate(Uint8Array.from(atob(wasm), (c) => c.charCodeAt(0)));
  const values = new Float32Array(instance.exports.memory.buffer, instance.exports.arena(), %d);
  for (let i = 0; i < values.length; i++) values[i] = (i %% 97) / 97;
  for (let i = 0; i < 20; i++) instance.exports.stream();
  const times = [];
  for (let i = 0; i < n; i++) { const t = performance.now(); for (let k = 0; k < 10; k++) instance.exports.stream(); times.push((performance.now() - t) / 10); }
  return times;
}"""

def floor_module(name:str) -> tuple[str, int]:
  """The floor module for `name` (base64) and the bytes it streams: the model's parameters as float32."""
  import base64
  from exporter.wasm import compile_wasm
  meta = json.loads((ROOT / "webapp" / name / f"{name}.json").read_text())
  vectors = -(-meta["params"] // 4 // 4) * 4   # float4s, a multiple of the four sums
  return base64.b64encode(compile_wasm(FLOOR_C % (vectors, vectors))).decode(), vectors * 16

# run() timed one at a time (p50/p95 of single runs), or in groups (the mean of `group` back to back, as the floor is)
RUN_LOOP = """async ([name, n, group]) => {
  const run = mnistApp.run(name);
  if (!run) throw new Error(`${name} has no backend`);
  const x = new Float32Array(784).map((_, i) => ((i * 7919) % 255) / 255 - 0.4);
  const times = [];
  for (let i = 0; i < n; i++) { const t = performance.now(); for (let k = 0; k < group; k++) await run(x); times.push((performance.now() - t) / group); }
  return times;
}"""

PREPROCESS_LOOP = """async ([name, n]) => {
  const { preprocess } = await import("./js/preprocess.js");
  const contract = mnistApp.run(name).meta;
  const times = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    preprocess(mnistApp.pixels(), 280, 280, contract);
    times.push(performance.now() - t);
  }
  return times;
}"""

# Arm a one-shot timer: from the stroke's pointerup to the moment the prediction for the final drawing is on the page
# (main.js sets body[data-busy] to "false" right after updating the text and the bars; a MutationObserver hears it at once)
ARM_POINTER_UP = """() => new Promise((armed) => {
  window.__latency = new Promise((resolve) => {
    const canvas = document.querySelector('[data-testid=canvas]');
    canvas.addEventListener('pointerup', () => {
      const t0 = performance.now();
      const observer = new MutationObserver(() => {
        if (document.body.dataset.busy !== 'false') return;
        observer.disconnect();
        resolve(performance.now() - t0);
      });
      observer.observe(document.body, { attributes: true, attributeFilter: ['data-busy'] });
    }, { once: true, capture: true });
  });
  armed();
})"""

def shell_bytes() -> dict:
  files = [ROOT / "webapp" / "index.html", *sorted((ROOT / "webapp" / "css").glob("app.css")), *sorted((ROOT / "webapp" / "js").glob("*.js")), ROOT / "webapp" / "sw.js"]
  return {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}

def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--json", type=Path, default=ROOT / "bench" / "last_run.json")
  args = ap.parse_args()
  n_run, n_pre, n_draw = (20, 10, 2) if args.quick else (300, 100, 20)
  from mnist_data import load_mnist_numpy
  x_test = load_mnist_numpy()[2]
  report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, headless Chromium", "quick": args.quick, "models": {},
            "shell": shell_bytes()}
  with serve(ROOT / "webapp") as url, chromium() as browser:
    loads, settles = [], []
    for _ in range(1 if args.quick else 5):
      t = time.perf_counter()
      page = open_app(browser, url)
      loads.append((time.perf_counter() - t) * 1000)
      page.wait_for_function("document.body.dataset.settled === 'true'", timeout=120_000)
      settles.append((time.perf_counter() - t) * 1000)
      page.close()
    report["cold_load_ms"] = {"ready_p50": pct(loads, 50), "settled_p50": pct(settles, 50)}
    page = open_app(browser, url)
    page.wait_for_function("document.body.dataset.settled === 'true'", timeout=120_000)
    report["adapter"] = page.evaluate("mnistApp.adapter()")
    report["auto_choice"] = dict(page.evaluate("mnistApp.models().map(m => [m.name, m.backend])"))
    rng = np.random.default_rng(0)
    for name in MODELS:
      page.get_by_test_id("model-select").select_option(name)
      page.wait_for_function("document.body.dataset.ready === 'true'")
      page.get_by_test_id("clear").click()
      draw_digit(page, x_test[0], 0.7, rng)
      wait_settled(page)
      result = {"preprocess": page.evaluate(PREPROCESS_LOOP, [name, n_pre])}
      for backend in BACKENDS:
        page.get_by_test_id("backend-select").select_option(backend)
        page.wait_for_function(f"document.body.dataset.backend === '{backend}'")
        result[f"{backend}_run"] = page.evaluate(RUN_LOOP, [name, n_run, 1])
        if backend == "wasm": result["wasm_run10"] = page.evaluate(RUN_LOOP, [name, n_run, 10])   # against the floor below
        result[f"{backend}_pointer_up_to_bars"] = latency = []
        box = page.get_by_test_id("canvas").bounding_box()
        for i in range(n_draw):
          page.get_by_test_id("clear").click()
          draw_digit(page, x_test[i + 1], rng.uniform(0.5, 0.8), rng)
          wait_settled(page)
          page.evaluate(ARM_POINTER_UP)                  # then one more stroke across the digit, timed from its pointerup
          page.mouse.move(box["x"] + 0.4 * box["width"], box["y"] + 0.5 * box["height"])
          page.mouse.down()
          page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.5 * box["height"], steps=4)
          page.mouse.up()
          latency.append(page.evaluate("window.__latency"))
      page.get_by_test_id("backend-select").select_option("auto")
      floor, streamed = floor_module(name)
      result["floor"] = page.evaluate(FLOOR_LOOP % (streamed // 4), [floor, n_run])
      report["models"][name] = {k: {"p50": pct(v, 50), "p95": pct(v, 95), "n": len(v)} for k, v in result.items()}
      report["models"][name]["floor_bytes"] = streamed
  print(f"headless Chromium; WebGPU adapter: {report['adapter']}; WebAssembly: SIMD, one thread\n")
  print("| model | backend | run() p50 | run() p95 | pointer-up → bars p50 | p95 | auto picks |\n|---|---|---|---|---|---|---|")
  for name, m in report["models"].items():
    for backend in BACKENDS:
      run, bars = m[f"{backend}_run"], m[f"{backend}_pointer_up_to_bars"]
      print(f"| {name} | {backend} | {run['p50']:.2f} ms | {run['p95']:.2f} ms | {bars['p50']:.1f} ms | {bars['p95']:.1f} ms | "
            f"{'yes' if report['auto_choice'][name] == backend else ''} |")
  print("\n| model | weights streamed once (floor) p50 | WebAssembly run() p50 | run() / floor |\n|---|---|---|---|")
  for name, m in report["models"].items():
    floor, run = m["floor"]["p50"], m["wasm_run10"]["p50"]   # (a floor under Chromium's 0.1 ms clock reads 0: small weights)
    speed, ratio = (f"{m['floor_bytes'] / floor / 1e6:.0f} GB/s", f"{run / floor:.2f}") if floor > 0 else ("under the clock's tick", "—")
    print(f"| {name} | {floor:.3f} ms ({m['floor_bytes'] / 1e6:.2f} MB, {speed}) | {run:.3f} ms | {ratio} |")
  print("\n| model | preprocess p50 | preprocess p95 |\n|---|---|---|")
  for name, m in report["models"].items(): print(f"| {name} | {m['preprocess']['p50']:.2f} ms | {m['preprocess']['p95']:.2f} ms |")
  print(f"\npage shell (HTML+CSS+JS, no weights): {report['shell']['bytes'] / 1024:.1f} KB in {report['shell']['files']} files")
  print(f"cold load -> ready (first backend): p50 {report['cold_load_ms']['ready_p50']:.0f} ms; -> both timed and chosen: "
        f"p50 {report['cold_load_ms']['settled_p50']:.0f} ms")
  if not args.quick: args.json.write_text(json.dumps(report, indent=1) + "\n")

if __name__ == "__main__":
  main()
