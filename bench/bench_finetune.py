"""Fine-tuning speed: training steps per second in the page (headless Chromium) per model and backend, next to
tinygrad's own step on this machine's CPU for the same batch (the same step the exporter captured, run by TinyJit).

  python bench/bench_finetune.py          # 30 timed steps each; writes bench/finetune.json
  python bench/bench_finetune.py --quick  # 3 steps each (CI: proves the harness works)

A step is the exporter's "train" program: forward of a batch, cross-entropy, backward and Adam on the last layer
(metadata "finetune"). In the page it includes writing the batch and reading the loss back, as the page does.
"""
import argparse, json, platform, statistics, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from browser import serve, chromium

MODELS = ["mnist_mlp", "mnist_convnet"]
WARMUP = 3

STEPS_IN_PAGE = """async ({name, backend, n, warmup}) => {
  const device = backend === "wasm" ? "wasm" : await (await navigator.gpu.requestAdapter()).requestDevice();
  const { openModel } = await import("./js/runtime/index.js");
  const model = await openModel(`${name}/${name}.json`);
  const run = await model.load(device);
  const { batch, lr } = model.train;
  const images = Float32Array.from({ length: batch * 784 }, (_, i) => Math.sin(i * 0.37)), labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  for (let i = 0; i < warmup; i++) await run.train(images, labels, lr);   // pipelines compile, the extras module loads
  const times = [];
  for (let i = 0; i < n; i++) { const t = performance.now(); await run.train(images, labels, lr); times.push(performance.now() - t); }
  return times;
}"""

def tinygrad_step_ms(name:str, n:int) -> float:
  from tinygrad import Tensor, TinyJit
  from test_export import build_model
  from exporter.programs import finetune_step
  model, meta = build_model(ROOT / "webapp" / name)
  ft = meta["finetune"]
  step, example, _ = finetune_step(model, only=set(ft["trains"]))
  jitted = TinyJit(lambda x, y, lr: step(x, y, lr)["loss"].realize())
  args = [Tensor(example["images"]).realize(), Tensor(example["labels"]).realize(), Tensor(example["lr"]).realize()]
  for _ in range(WARMUP): jitted(*args)
  times = []
  for _ in range(n):
    t = time.perf_counter()
    jitted(*args).item()
    times.append((time.perf_counter() - t) * 1000)
  return statistics.median(times)

def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--quick", action="store_true")
  ap.add_argument("--json", type=Path, default=ROOT / "bench" / "finetune.json")
  args = ap.parse_args()
  n = 3 if args.quick else 30
  report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, headless Chromium", "quick": args.quick, "steps": n, "models": {}}
  with serve(ROOT / "webapp") as url, chromium() as browser:
    for name in MODELS:
      meta = json.loads((ROOT / "webapp" / name / f"{name}.json").read_text())
      row = report["models"][name] = {"batch": meta["finetune"]["batch"], "trains": meta["finetune"]["trains"]}
      for backend in ("webgpu", "wasm"):
        page = browser.new_page()
        page.goto(url + "__blank.html")   # the app itself would load and time its models meanwhile
        times = page.evaluate(STEPS_IN_PAGE, {"name": name, "backend": backend, "n": n, "warmup": WARMUP})
        page.close()
        row[f"{backend}_step_ms"] = statistics.median(times)
      row["tinygrad_cpu_step_ms"] = tinygrad_step_ms(name, n)
  print(f"{report['machine']}; batch of {report['models'][MODELS[0]]['batch']}, Adam on the last layer; median of {n} steps\n")
  print("| model | WebGPU (page) | WebAssembly (page) | tinygrad CPU (clang, TinyJit) |")
  print("|---|---|---|---|")
  for name, r in report["models"].items():
    cell = lambda ms: f"{ms:.1f} ms · {1000 / ms:.0f} steps/s"
    print(f"| {name} | {cell(r['webgpu_step_ms'])} | {cell(r['wasm_step_ms'])} | {cell(r['tinygrad_cpu_step_ms'])} |")
  if not args.quick: args.json.write_text(json.dumps(report, indent=1) + "\n")

if __name__ == "__main__":
  main()
