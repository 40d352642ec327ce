"""The sweep's wall time on this machine: the same MLP configurations of the real sweep run through Ray at several GPU
shares per run, and through the sweep's earlier thread pool (`--jobs N`, every run on GPU 0), from the same results file
with those runs left out (so each mode runs exactly them); and the quick sweep through Ray.

  DEV=CUDA python bench/bench_sweep.py --old /path/to/old/sweep.py         # on a GPU machine; writes bench/sweep_gpu.json
  python bench/bench_sweep.py --quick-only                                 # any machine: the quick sweep through Ray

`--old` is sweep.py as it was before Ray (git show df1e282:sweep.py), run from a copy of this checkout. MNIST comes from
MNIST_DIR, or is rebuilt from the page's own copy (webapp/samples/mnist) where there is none (a machine with no data).
"""
import argparse, gzip, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["baseline", "lr 1e-2", "lr 1e-4", "bs 512", "one-cycle", "gelu", "batch norm", "dropout 0.2"]   # 8000 steps each

def mnist_from_page(folder:Path) -> Path:
  """The four idx files of MNIST, written from webapp/samples/mnist (labels, then 28x28 images, per gzip file)."""
  index = json.loads((ROOT / "webapp" / "samples" / "mnist" / "index.json").read_text())
  parts = {"train": ([], []), "test": ([], [])}
  for entry in index["files"]:
    raw = gzip.decompress((ROOT / "webapp" / "samples" / "mnist" / entry["file"]).read_bytes())
    parts[entry["split"]][0].append(raw[:entry["count"]])
    parts[entry["split"]][1].append(raw[entry["count"]:])
  folder.mkdir(parents=True, exist_ok=True)
  for split, prefix in (("train", "train"), ("test", "t10k")):
    labels, images = b"".join(parts[split][0]), b"".join(parts[split][1])
    n = len(labels)
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress((2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels))
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"".join(x.to_bytes(4, "big") for x in (2051, n, 28, 28)) + images))
  return folder

def timed(cmd:list[str], results:Path, cwd:Path) -> dict:
  """Run one sweep command to the end; its wall time, and where its runs ran (from the results it wrote)."""
  before = set(json.loads(results.read_text())) if results.exists() else set()
  start = time.perf_counter()
  proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
  wall = time.perf_counter() - start
  new = {k: v for k, v in json.loads(results.read_text()).items() if k not in before} if results.exists() else {}
  if proc.returncode not in (0, 1) or not new: raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
  where = [v.get("where", {"device": v["device"]}) for v in new.values()]
  return {"command": " ".join(cmd[1:]), "wall_seconds": round(wall, 1), "runs": len(new),
          "train_seconds": [v["train_seconds"] for v in new.values()], "where": where}

def without(runs:list[str], folder:Path) -> Path:
  """A copy of results/sweep.json without the MLP configurations in `runs`: a sweep from it runs exactly those."""
  sys.path.insert(0, str(ROOT))
  import sweep
  results = json.loads((ROOT / "results" / "sweep.json").read_text())
  options = {name: o for name, o, _ in sweep.CONFIGS["mnist_mlp"]}
  for name in runs: results.pop(sweep.run_key("mnist_mlp", sweep.run_env("mnist_mlp", options[name], False)), None)
  path = folder / "sweep.json"
  path.write_text(json.dumps(results))
  return path

def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--old", type=Path, help="sweep.py before Ray (its --jobs thread pool)")
  ap.add_argument("--shares", default="1,0.5,0.25,0.125", help="GPU shares per run to time through Ray")
  ap.add_argument("--jobs", default="4,8", help="--jobs values to time through the old thread pool")
  ap.add_argument("--quick-only", action="store_true")
  ap.add_argument("--json", type=Path, default=ROOT / "bench" / "sweep_gpu.json")
  args = ap.parse_args()
  work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
  if not Path(os.environ.get("MNIST_DIR", "/nonexistent"), "t10k-labels-idx1-ubyte.gz").exists():
    os.environ["MNIST_DIR"] = str(mnist_from_page(work / "mnist"))
  gpu = os.environ.get("DEV", "").upper() == "CUDA"
  report = {"machine": _machine(), "dev": os.environ.get("DEV", "CPU"), "configs": CONFIGS, "modes": {}}
  quick = work / "quick"
  report["modes"]["quick, Ray"] = timed([sys.executable, "sweep.py", "--quick", "--results", str(quick / "sweep.json"), "--out", str(quick / "H.md")],
                                        quick / "sweep.json", ROOT)
  print(json.dumps(report["modes"]["quick, Ray"])[:400], flush=True)
  if not args.quick_only:
    for share in (args.shares.split(",") if gpu else []):
      folder = work / f"share-{share}"
      folder.mkdir()
      results = without(CONFIGS, folder)
      report["modes"][f"Ray, {share} GPU per run"] = timed([sys.executable, "sweep.py", "--only", "mnist_mlp", "--gpus-per-run", share, "--results", str(results),
                                                            "--out", str(folder / "H.md")], results, ROOT)
      print(share, report["modes"][f"Ray, {share} GPU per run"]["wall_seconds"], flush=True)
    for jobs in (args.jobs.split(",") if args.old else []):
      folder = work / f"jobs-{jobs}"
      folder.mkdir()
      results = without(CONFIGS, folder)
      shutil.copy(args.old, ROOT / ".old_sweep.py")
      try: report["modes"][f"thread pool, --jobs {jobs}"] = timed([sys.executable, ".old_sweep.py", "--only", "mnist_mlp", "--jobs", jobs, "--results", str(results),
                                                                    "--out", str(folder / "H.md")], results, ROOT)
      finally: (ROOT / ".old_sweep.py").unlink()
      print("jobs", jobs, report["modes"][f"thread pool, --jobs {jobs}"]["wall_seconds"], flush=True)
  args.json.write_text(json.dumps(report, indent=1) + "\n")
  for mode, r in report["modes"].items(): print(f"| {mode} | {r['runs']} | {r['wall_seconds']:.0f} s |")

def _machine() -> str:
  try: gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip().replace("\n", ", ")
  except FileNotFoundError: gpu = "no GPU"
  return f"{os.cpu_count()} CPU threads, {gpu or 'no GPU'}"

if __name__ == "__main__":
  main()
