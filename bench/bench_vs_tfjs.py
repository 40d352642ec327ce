"""Our exported models against TensorFlow.js and ONNX Runtime Web, same weights, same inputs, in the same headless
Chromium run.

  python bench/bench_vs_tfjs.py          # full run; writes bench/vs_tfjs.json
  python bench/bench_vs_tfjs.py --quick  # a few runs of each (CI: proves the harness works)

For each model: warm p50/p95 of one forward pass with readback on our two backends (the exporter's WebGPU and
WebAssembly modules), on TF.js 4's webgpu, webgl, cpu and wasm backends and on ONNX Runtime Web 1.30's wasm and webgpu
execution providers, every WebAssembly on the same threads (--threads, default 2: served cross-origin isolated, as the
app is on every visit after the first; ours with FMA where Chromium has it), the same weights as ONNX graphs (bench/onnx_models.py; npm and pip
dev dependencies, used only here); each result checked against ours (max |Δlogit|), and the ratio of the backend our
page picks (the faster of ours) to the fastest TF.js backend and to ORT's wasm: below 1 means we answer sooner.
"""
import argparse, json, platform, sys
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from browser import serve, chromium

MODELS = ["mnist_mlp", "mnist_convnet"]
OURS, TFJS, ORT = ["ours-webgpu", "ours-wasm"], ["tfjs-webgpu", "tfjs-webgl", "tfjs-cpu", "tfjs-wasm"], ["ort-wasm", "ort-webgpu"]

def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--json", type=Path, default=ROOT / "bench" / "vs_tfjs.json")
  ap.add_argument("--threads", type=int, default=2, help="WebAssembly threads for every side (ours, TF.js wasm, ORT wasm); default 2")
  args = ap.parse_args()
  if not 1 <= args.threads <= 16: ap.error("--threads must be 1 to 16")
  if not (ROOT / "node_modules" / "@tensorflow" / "tfjs-core").is_dir(): sys.exit("error: TF.js is missing; run `npm ci` first")
  if not (ROOT / "node_modules" / "onnxruntime-web").is_dir(): sys.exit("error: ONNX Runtime Web is missing; run `npm ci` first")
  from onnx_models import write
  onnx = {name: "../" + path.relative_to(ROOT).as_posix() for name, path in write(ROOT / "bench" / "out").items()}
  from mnist_data import load_mnist_numpy
  images = load_mnist_numpy()[2][:16].reshape(16, 784)
  n = 10 if args.quick else 200
  with serve(ROOT, isolate=True) as url, chromium() as browser:   # isolated, as the app is on every visit after the first
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "bench/compare.html")
    page.wait_for_function("globalThis.compareReady === true", timeout=60_000)
    got = page.evaluate("(args) => compare(args)", {"names": MODELS, "n": n, "images": images.tolist(), "onnx": onnx, "threads": args.threads})
    raw, wasm = got["results"], got["wasm"]
    if wasm["threads"] != args.threads: sys.exit(f"error: the comparison page could not run {args.threads} threads (not cross-origin isolated?)")
    browser_version = browser.version
  if errors: sys.exit(f"error: the comparison page failed: {errors[0]}")
  report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {cpu_name()}", "browser": f"headless Chromium {browser_version}",
            "quick": args.quick, "runs": n, "wasm": wasm, "models": {}}
  for name, results in raw.items():
    ours_logits = np.array(results["ours-wasm"]["logits"])
    rows = {}
    for backend, r in results.items():
      if "error" in r: rows[backend] = {"error": r["error"]}; continue
      rows[backend] = {"p50": float(np.percentile(r["times"], 50)), "p95": float(np.percentile(r["times"], 95)),
                       "max_abs_diff_vs_ours": float(np.abs(np.array(r["logits"]) - ours_logits).max())}
    ok = {k: v for k, v in rows.items() if "p50" in v}
    ours = min((k for k in OURS if k in ok), key=lambda k: ok[k]["p50"])
    best_tfjs = min((k for k in TFJS if k in ok), key=lambda k: ok[k]["p50"], default=None)
    report["models"][name] = {"backends": rows, "ours_chosen": ours, "fastest_tfjs": best_tfjs,
                              "ratio_p50": ok[ours]["p50"] / ok[best_tfjs]["p50"] if best_tfjs else None,
                              "ratio_p95": ok[ours]["p95"] / ok[best_tfjs]["p95"] if best_tfjs else None,
                              "ours_wasm_over_ort_wasm_p50": ok["ours-wasm"]["p50"] / ok["ort-wasm"]["p50"] if "ort-wasm" in ok else None,
                              "ours_wasm_over_tfjs_wasm_p50": ok["ours-wasm"]["p50"] / ok["tfjs-wasm"]["p50"] if "tfjs-wasm" in ok else None}
  print(f"{report['browser']} on {report['machine']}; {n} warm runs each, one forward pass with readback; WebAssembly on "
        f"{wasm['threads']} thread(s) for every side (ours{' with FMA' if wasm['fma'] else ''}, TF.js, ORT)\n")
  print("| model | backend | p50 | p95 | max abs diff vs ours |\n|---|---|---|---|---|")
  for name, m in report["models"].items():
    for backend, r in m["backends"].items():
      if "error" in r: print(f"| {name} | {backend} | failed: {r['error'].splitlines()[0][:120]} | | |"); continue
      print(f"| {name} | {backend}{' (page picks)' if backend == m['ours_chosen'] else ''} | {r['p50']:.2f} ms | {r['p95']:.2f} ms | "
            f"{r['max_abs_diff_vs_ours']:.1e} |")
  print("\n| model | ours (page's pick) | fastest TF.js | ratio p50 | ratio p95 | ours wasm / TF.js wasm p50 | ours wasm / ORT wasm p50 |\n|---|---|---|---|---|---|---|")
  for name, m in report["models"].items():
    ort = f"{m['ours_wasm_over_ort_wasm_p50']:.2f}" if m["ours_wasm_over_ort_wasm_p50"] else "ORT did not run"
    tfw = f"{m['ours_wasm_over_tfjs_wasm_p50']:.2f}" if m["ours_wasm_over_tfjs_wasm_p50"] else "TF.js wasm did not run"
    if m["fastest_tfjs"] is None: print(f"| {name} | {m['ours_chosen']} | none ran | | | {tfw} | {ort} |")
    else: print(f"| {name} | {m['ours_chosen']} | {m['fastest_tfjs']} | {m['ratio_p50']:.2f} | {m['ratio_p95']:.2f} | {tfw} | {ort} |")
  bad = [(name, b, r["max_abs_diff_vs_ours"]) for name, m in report["models"].items() for b, r in m["backends"].items()
         if r.get("max_abs_diff_vs_ours", 0) > 1e-2]
  if bad: sys.exit(f"error: results disagree with ours (not the same model?): {bad}")
  if not args.quick: args.json.write_text(json.dumps(report, indent=1) + "\n")

def cpu_name() -> str:
  try: return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
  except (OSError, StopIteration): return "unknown CPU"

if __name__ == "__main__":
  main()
