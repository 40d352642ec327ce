"""The hyperparameter sweep behind HYPERPARAMETERS.md: every configuration in one place, each run by calling the real
training script with env vars, so that each row of the log is a command a reader can rerun.

  python sweep.py                     # run what is missing from results/sweep.json, then rewrite HYPERPARAMETERS.md
  python sweep.py --quick             # a tiny sweep (CI): results and report go to runs/quick/
  python sweep.py --report            # only regenerate HYPERPARAMETERS.md and the plots from the results file
  DEV=CUDA python sweep.py --jobs 4   # on a GPU machine, several runs side by side

Resumable: results are saved after every run, keyed by the exact environment, and a rerun skips what is done.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
from tinygrad.helpers import trange

ROOT = Path(__file__).resolve().parent
SCRIPTS = {"mnist_mlp": "mnist_mlp.py", "mnist_convnet": "mnist_convnet.py"}

# name, what it changes (env vars on top of the model's base), why it is in the sweep
MLP_BASE = {"STEPS": "8000", "WIDTH": "512", "DEPTH": "2", "DROPOUT": "0", "AFFINE": "0", "THICKEN": "0", "THIN": "0",
            "SCHEDULE": "constant", "OPT": "adam", "LR": "0.001", "BS": "128"}
CNN_BASE = {"STEPS": "4000", "CHANNELS": "32", "BN": "0", "DROPOUT": "0", "AFFINE": "0", "THICKEN": "0", "THIN": "0",
            "SCHEDULE": "constant", "OPT": "adam", "LR": "0.001", "BS": "128"}
AUGMENT = {"AFFINE": "1", "THICKEN": "0.3", "THIN": "0.15"}
CONFIGS = {
  "mnist_mlp": [
    ("baseline", {}, "plain 784-512-512-10, Adam 1e-3, constant LR, no regularisation"),
    ("lr 1e-2", {"LR": "0.01"}, "learning rate ten times higher"),
    ("lr 1e-4", {"LR": "0.0001"}, "learning rate ten times lower"),
    ("bs 512", {"BS": "512"}, "four times the batch, same steps"),
    ("one-cycle", {"SCHEDULE": "onecycle"}, "warm-up then cosine decay"),
    ("sgd momentum", {"OPT": "sgd", "LR": "0.05", "SCHEDULE": "onecycle"}, "Nesterov SGD, momentum 0.9"),
    ("adamw wd", {"OPT": "adamw", "WD": "0.05", "SCHEDULE": "onecycle"}, "decoupled weight decay"),
    ("muon", {"OPT": "muon", "LR": "0.02", "SCHEDULE": "onecycle"}, "tinygrad's Muon on weight matrices"),
    ("gelu", {"ACT": "gelu", "SCHEDULE": "onecycle"}, "smooth activation"),
    ("batch norm", {"BN": "1", "SCHEDULE": "onecycle"}, "batch norm after each hidden layer"),
    ("dropout 0.2", {"DROPOUT": "0.2", "SCHEDULE": "onecycle"}, "dropout regularisation"),
    ("augment", {**AUGMENT, "SCHEDULE": "onecycle"}, "random affine + stroke thickness, on the device"),
    ("augment+dropout", {**AUGMENT, "DROPOUT": "0.2", "SCHEDULE": "onecycle"}, "both regularisers"),
    ("wide 1024 aug+drop", {**AUGMENT, "WIDTH": "1024", "DROPOUT": "0.2", "SCHEDULE": "onecycle"}, "twice the width"),
    ("wide long", {**AUGMENT, "WIDTH": "1024", "DROPOUT": "0.2", "SCHEDULE": "onecycle", "STEPS": "30000"}, "the same, 3.75x longer"),
    ("wide long muon", {**AUGMENT, "WIDTH": "1024", "DROPOUT": "0.2", "OPT": "muon", "LR": "0.02", "SCHEDULE": "onecycle", "STEPS": "30000"},
     "Muon on the long run"),
    ("deep wide long", {**AUGMENT, "WIDTH": "1024", "DEPTH": "3", "DROPOUT": "0.2", "SCHEDULE": "onecycle", "STEPS": "30000"},
     "a third hidden layer"),
  ],
  "mnist_convnet": [
    ("baseline", {}, "beautiful_mnist layout, no batch norm, Adam 1e-3, constant LR, no augmentation"),
    ("lr 1e-2", {"LR": "0.01"}, "learning rate ten times higher"),
    ("bs 512", {"BS": "512"}, "four times the batch, same steps"),
    ("batch norm", {"BN": "1"}, "batch norm after each block"),
    ("bn one-cycle", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002"}, "warm-up then cosine decay"),
    ("sgd momentum", {"BN": "1", "SCHEDULE": "onecycle", "OPT": "sgd", "LR": "0.05"}, "Nesterov SGD"),
    ("muon", {"BN": "1", "SCHEDULE": "onecycle", "OPT": "muon", "LR": "0.02"}, "tinygrad's Muon"),
    ("adamw wd", {"BN": "1", "SCHEDULE": "onecycle", "OPT": "adamw", "LR": "0.002", "WD": "0.05"}, "decoupled weight decay"),
    ("silu", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", "ACT": "silu"}, "smooth activation"),
    ("channels 16", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", "CHANNELS": "16"}, "half the channels"),
    ("augment", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT}, "random affine + stroke thickness"),
    ("augment+dropout", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT, "DROPOUT": "0.3"}, "dropout before the classifier"),
    ("augment+smoothing", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT, "LABEL_SMOOTHING": "0.1"}, "label smoothing 0.1"),
    ("channels 48 aug", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT, "CHANNELS": "48"}, "1.5x the channels"),
    ("aug long", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT, "STEPS": "15000"}, "augmented, 3.75x longer"),
    ("channels 48 aug long", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT, "CHANNELS": "48", "STEPS": "15000"},
     "wider and longer"),
    ("channels 48 aug smooth long", {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT, "CHANNELS": "48", "STEPS": "15000",
                                     "LABEL_SMOOTHING": "0.1"}, "wider and longer, label smoothing"),
  ],
}
BASES = {"mnist_mlp": MLP_BASE, "mnist_convnet": CNN_BASE}
# CI's sweep: the same machinery on a toy budget
QUICK = {"mnist_mlp": [("baseline", {"STEPS": "20", "WIDTH": "32"}, ""), ("one-cycle", {"STEPS": "20", "WIDTH": "32", "SCHEDULE": "onecycle"}, "")],
         "mnist_convnet": [("baseline", {"STEPS": "6", "CHANNELS": "4"}, ""), ("augment", {"STEPS": "6", "CHANNELS": "4", **AUGMENT}, "")]}

def run_env(model:str, overrides:dict, quick:bool) -> dict:
  env = {**BASES[model], **overrides}
  env["EVAL_EVERY"] = str(max(int(env["STEPS"]) // 20, 1))
  env["LOG_EVERY"] = str(max(int(env["STEPS"]) // 200, 1))
  if quick: env["EVAL_EVERY"] = "0"
  return env

def run_key(model:str, env:dict) -> str: return model + " " + " ".join(f"{k}={v}" for k, v in sorted(env.items()))

def run_one(model:str, env:dict, checkpoint:Path|None=None) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    metrics = Path(tmp) / "metrics.json"
    full_env = {**os.environ, **env, "EXPORT": "0", "METRICS": str(metrics), **({"CHECKPOINT": str(checkpoint)} if checkpoint else {})}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / SCRIPTS[model])], env=full_env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0: raise RuntimeError(f"{model} {env}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(metrics.read_text())
  steps = int(env["STEPS"])
  return {"model": model, "env": env, "test_accuracy": result["test_accuracy"], "final_loss": result["final_loss"],
          "loss": result["loss"], "accuracy_curve": result["accuracy_curve"], "wall_seconds": round(wall, 1),
          "train_seconds": round(result["train_seconds"], 2), "steps_per_second": round(steps / max(result["train_seconds"], 1e-9), 1),
          "params": result["params"], "device": result["device"], "confusion": result["confusion"]}

def load_results(path:Path) -> dict:
  return json.loads(path.read_text()) if path.exists() else {}

def save_results(path:Path, results:dict):
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
  os.replace(tmp, path)   # a sweep killed mid-write keeps the previous results

def sweep(configs:dict, quick:bool, results_path:Path, jobs:int, only:str|None, checkpoints:Path|None=None):
  results = load_results(results_path)
  todo = [(m, name, run_env(m, o, quick)) for m, rows in configs.items() for name, o, _ in rows if only in (None, m, name)]
  todo = [(m, name, env) for m, name, env in todo if run_key(m, env) not in results]
  todo.sort(key=lambda r: -int(r[2]["STEPS"]) * (4 if r[0] == "mnist_convnet" else 1))   # longest first: the tail finishes sooner
  print(f"{len(todo)} runs to do, {len(results)} already in {results_path}")
  if not todo: return results
  from concurrent.futures import ThreadPoolExecutor, as_completed
  with ThreadPoolExecutor(max(jobs, 1)) as pool:
    if checkpoints: checkpoints.mkdir(parents=True, exist_ok=True)
    ckpt = lambda m, name: checkpoints / f"{m}-{name.replace(' ', '_')}.safetensors" if checkpoints else None
    futures = {pool.submit(run_one, m, env, ckpt(m, name)): (m, name, env) for m, name, env in todo}
    bar = trange(len(todo))
    for fut in as_completed(futures):
      m, name, env = futures[fut]
      try: results[run_key(m, env)] = fut.result()
      except RuntimeError as e: print(f"\nrun failed: {e}", file=sys.stderr)
      else: save_results(results_path, results)
      bar.update(1)
      bar.set_description(f"{m}/{name}: {results.get(run_key(m, env), {}).get('test_accuracy', float('nan')):.2f}%")
  return results

def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--quick", action="store_true", help="tiny configurations; writes under runs/quick/ unless told otherwise")
  ap.add_argument("--report", action="store_true", help="only regenerate the report from the results file")
  ap.add_argument("--results", type=Path, help="results file (default results/sweep.json, or runs/quick/sweep.json)")
  ap.add_argument("--out", type=Path, help="report file (default HYPERPARAMETERS.md, or runs/quick/HYPERPARAMETERS.md)")
  ap.add_argument("--jobs", type=int, default=1, help="runs side by side (useful on a GPU)")
  ap.add_argument("--only", help="a model (mnist_mlp, mnist_convnet) or one configuration name")
  ap.add_argument("--checkpoints", type=Path, help="keep each run's trained weights in this folder (for LOAD=)")
  args = ap.parse_args()
  base = ROOT / ("runs/quick" if args.quick else "")
  results_path = args.results or (base / "sweep.json" if args.quick else ROOT / "results" / "sweep.json")
  out = args.out or base / "HYPERPARAMETERS.md"
  configs = QUICK if args.quick else CONFIGS
  results = load_results(results_path) if args.report else sweep(configs, args.quick, results_path, args.jobs, args.only, args.checkpoints)
  if "write_report" in globals():
    write_report(configs, results, out, lambda m, o: run_key(m, run_env(m, o, args.quick)))
    print(f"wrote {out}")

if __name__ == "__main__":
  main()
