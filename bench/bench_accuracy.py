"""The committed models on all 10 000 MNIST test images in headless Chromium, on both backends: accuracy against the
metadata's (tinygrad's, at export) and how often the two backends disagree. On this machine WebGPU is SwiftShader, a
CPU implementation, so its 10 000 take minutes: the tests prove WebGPU by parity on a few hundred images and the
10 000 on WebAssembly (tests/test_browser_parity.py); this is where SwiftShader's full run lives.

  python bench/bench_accuracy.py           # all 10 000, both models, both backends; writes bench/accuracy.json
  python bench/bench_accuracy.py --quick   # the first 200 (make test: proves the harness works)
"""
import argparse, json, platform, sys, tempfile, time
from pathlib import Path
import numpy as np
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from browser import serve, chromium, RUN_IN_PAGE

MODELS, BACKENDS = ["mnist_mlp", "mnist_convnet"], ["webgpu", "wasm"]

def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--json", type=Path, default=ROOT / "bench" / "accuracy.json")
  args = ap.parse_args()
  from mnist_data import load_mnist_numpy
  _, _, x, y = load_mnist_numpy()
  count = 200 if args.quick else len(x)
  report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, headless Chromium", "quick": args.quick, "images": count, "models": {}}
  with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
    site = Path(tmp)
    for name in [*MODELS, "js"]: (site / name).symlink_to(ROOT / "webapp" / name)   # the models, and the runtime that runs them
    (site / "mnist_test_images.bin").write_bytes(x[:count].tobytes())
    with serve(site) as url:
      for name in MODELS:
        row = report["models"][name] = {}
        predictions = {}
        for backend in BACKENDS:
          page = browser.new_page()
          page.goto(url)
          start = time.perf_counter()
          result = page.evaluate(RUN_IN_PAGE, {"name": name, "count": count, "verify": True, "weights": None, "backend": backend})
          seconds = time.perf_counter() - start
          page.close()
          if "error" in result: sys.exit(f"error: {name} on {backend}: {result['error']}")
          predictions[backend] = np.array(result["logits"]).reshape(count, 10).argmax(1)
          row[backend] = {"accuracy": float((predictions[backend] == y[:count]).mean() * 100), "seconds": round(seconds, 1)}
          row["metadata_accuracy"] = result["accuracy"]
        row["backends_disagree"] = int((predictions["webgpu"] != predictions["wasm"]).sum())
  print(f"{report['machine']}; the first {count} MNIST test images\n")
  print("| model | WebGPU accuracy | WebAssembly accuracy | metadata (all 10 000) | backends disagree | WebGPU time | WebAssembly time |")
  print("|---|---|---|---|---|---|---|")
  for name, r in report["models"].items():
    print(f"| {name} | {r['webgpu']['accuracy']:.2f} % | {r['wasm']['accuracy']:.2f} % | {r['metadata_accuracy']:.2f} % | "
          f"{r['backends_disagree']} | {r['webgpu']['seconds']} s | {r['wasm']['seconds']} s |")
  bad = [name for name, r in report["models"].items() if r["backends_disagree"] or
         (not args.quick and any(abs(r[b]["accuracy"] - r["metadata_accuracy"]) > 1e-6 for b in BACKENDS))]
  if bad: sys.exit(f"error: the page does not compute the advertised results for {', '.join(bad)}")
  if not args.quick: args.json.write_text(json.dumps(report, indent=1) + "\n")

if __name__ == "__main__":
  main()
