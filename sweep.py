"""The hyperparameter sweep behind HYPERPARAMETERS.md: every configuration in one place, each run by calling the real
training script with env vars, so that each row of the log is a command a reader can rerun. The runs are Ray tasks
(sweep_cluster.py): on this machine's CPUs and GPUs, or on a cluster of machines.

  python sweep.py                          # run what is missing from results/sweep.json, then rewrite HYPERPARAMETERS.md
  python sweep.py --quick                  # a tiny sweep (CI): results and report go to runs/quick/
  python sweep.py --report                 # only regenerate HYPERPARAMETERS.md and the plots from the results file
  python sweep.py --trainers               # the page trainers' family instead: timed in the page's loop on this CPU
  DEV=CUDA python sweep.py                 # on every GPU of this machine, each run pinned to a share of one
  RAY_ADDRESS=auto DEV=CUDA python sweep.py   # on every GPU of a Ray cluster (ray start --head, then ray start --address=...)

Resumable: results are saved after every run, keyed by the exact environment, and a rerun (or a sweep stopped with
Ctrl-C and started again) runs only what is missing.
"""
import argparse, json, os, signal, sys
from pathlib import Path
from sweep_report import ReportError, write_report, update_readme
from sweep_cluster import SweepError
import sweep_trainers

# the share of one GPU each run asks for when it trains on a GPU: measured fastest for this sweep's runs on one GPU
GPUS_PER_RUN = 0.25

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
# Accuracy per byte: what the page ships is what every visitor downloads, so these configurations trade accuracy against
# the weights' bytes on the wire. Stored as int8 with a scale per output channel (the accuracy measured on exactly that),
# with the compact networks' tools (a width per convolution, global average pooling) and distillation from the 48-channel
# CNN (results/teacher/: the shipped CNN of the sweep above, kept so that these runs can be repeated).
TEACHER = {"TEACHER": "results/teacher/mnist_convnet.safetensors", "KD_T": "4", "KD_WEIGHT": "0.7"}
MLP_BYTES = {**AUGMENT, "DROPOUT": "0.2", "SCHEDULE": "onecycle", "STEPS": "20000", "WEIGHTS": "int8"}
CNN_BYTES = {"BN": "1", "SCHEDULE": "onecycle", "LR": "0.002", **AUGMENT, "STEPS": "6000", "WEIGHTS": "int8"}
CONFIGS["mnist_mlp"] += [
  ("int8 2x1024", {**MLP_BYTES, "WIDTH": "1024"}, "the wide long MLP, two layers, int8"),
  ("int8 2x512", {**MLP_BYTES}, "half the width"),
  ("int8 2x512 kd", {**MLP_BYTES, **TEACHER}, "distilled from the 48-channel CNN"),
  ("int8 2x640 kd", {**MLP_BYTES, "WIDTH": "640", **TEACHER}, "a little wider, distilled"),
  ("int8 2x800 kd", {**MLP_BYTES, "WIDTH": "800", **TEACHER}, "Hinton's 784-800-800, distilled"),
  ("int8 3x512 kd", {**MLP_BYTES, "DEPTH": "3", **TEACHER}, "a third layer, distilled"),
]
CONFIGS["mnist_convnet"] += [
  ("int8 c32", {**CNN_BYTES}, "32 channels, int8"),
  ("int8 w12-12-24-24 kd", {**CNN_BYTES, "WIDTHS": "12,12,24,24", **TEACHER}, "far narrower, distilled"),
  ("int8 w16-16-32-32", {**CNN_BYTES, "WIDTHS": "16,16,32,32"}, "half the channels"),
  ("int8 w16-16-32-32 kd", {**CNN_BYTES, "WIDTHS": "16,16,32,32", **TEACHER}, "half the channels, distilled"),
  ("int8 w24-24-48-48", {**CNN_BYTES, "WIDTHS": "24,24,48,48"}, "three quarters of the channels"),
  ("int8 w24-24-48-48 kd", {**CNN_BYTES, "WIDTHS": "24,24,48,48", **TEACHER}, "three quarters, distilled"),
  ("int8 w16-32-32-64 gap kd", {**CNN_BYTES, "WIDTHS": "16,32,32,64", "GAP": "1", **TEACHER}, "global average pooling, distilled"),
  ("int8 w32-32-64-64 gap kd", {**CNN_BYTES, "WIDTHS": "32,32,64,64", "GAP": "1", **TEACHER}, "32 channels, pooled, distilled"),
]
BASES = {"mnist_mlp": MLP_BASE, "mnist_convnet": CNN_BASE}
# Seed noise: these configurations also run with other seeds (their first run uses SEED=42, the scripts' default), so
# that the report can say which differences are larger than what a different seed alone changes. Each comparison is
# (from, to, what it measures); the best configuration of each model is seeded too.
SEEDS = ["1", "2"]
COMPARISONS = {
  "mnist_mlp": [("baseline", "one-cycle", "the one-cycle schedule"), ("one-cycle", "dropout 0.2", "dropout"),
                ("one-cycle", "augment", "augmentation"), ("wide long", "deep wide long", "a third hidden layer"),
                ("int8 2x512", "int8 2x512 kd", "distillation")],
  "mnist_convnet": [("baseline", "batch norm", "batch norm"), ("batch norm", "bn one-cycle", "the one-cycle schedule"),
                    ("bn one-cycle", "augment", "augmentation"), ("aug long", "channels 48 aug long", "1.5x the channels"),
                    ("int8 w24-24-48-48", "int8 w24-24-48-48 kd", "distillation"),
                    ("int8 w12-12-24-24 kd", "int8 w24-24-48-48 kd", "twice the shipped CNN's channels")],
}
QUICK_COMPARISONS = {"mnist_mlp": [("baseline", "one-cycle", "the one-cycle schedule")], "mnist_convnet": [("baseline", "augment", "augmentation")]}
# the runs each paragraph of the analysis talks about: drawn in colour on the curves, the rest in grey
HIGHLIGHT = {"mnist_mlp": ["baseline", "one-cycle", "augment+dropout", "deep wide long"],
             "mnist_convnet": ["baseline", "bn one-cycle", "augment", "channels 48 aug long"]}
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

def load_results(path:Path) -> dict:
  try: results = json.loads(path.read_text()) if path.exists() else {}
  except (OSError, ValueError) as e: raise SweepError(f"{path} is not a readable results file ({e}): fix it, or move it away to start afresh") from None
  if not isinstance(results, dict): raise SweepError(f"{path} is not a results file (its JSON is not an object)")
  return results

def save_results(path:Path, results:dict):
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
  os.replace(tmp, path)   # a sweep killed mid-write keeps the previous results

def with_seeds(configs:dict, comparisons:dict, seeds:list[str]) -> dict:
  """The configurations, plus those in a comparison once more per extra seed (named "<name> seed <n>")."""
  compared = {m: {n for a, b, _ in rows for n in (a, b)} for m, rows in comparisons.items()}
  return {m: rows + [(f"{name} seed {seed}", {**o, "SEED": seed}, why) for name, o, why in rows if name in compared.get(m, ()) for seed in seeds]
          for m, rows in configs.items()}

results_failed: list[str] = []   # the runs of this sweep that failed on their own: the exit code says so

def sweep(configs:dict, quick:bool, results:dict, results_path:Path, only:str|None, checkpoints:Path|None=None, **cluster) -> dict:
  """Every run of `configs` not yet in `results` (read from `results_path`), on Ray; each result added and saved there
  as it returns. `cluster`: address, gpus_per_run, cpus_per_run, cap (see sweep_cluster.run_all)."""
  from sweep_cluster import run_all
  from tinygrad.helpers import tqdm
  todo = [(m, name, run_env(m, o, quick)) for m, rows in configs.items() for name, o, _ in rows if only in (None, m, name)]
  todo = [(m, name, env) for m, name, env in todo if run_key(m, env) not in results]
  todo.sort(key=lambda r: -int(r[2]["STEPS"]) * (4 if r[0] == "mnist_convnet" else 1))   # longest first: the tail finishes sooner
  print(f"{len(todo)} runs to do, {len(results)} already in {results_path}", flush=True)
  if not todo: return results
  if checkpoints: checkpoints.mkdir(parents=True, exist_ok=True)
  runs = {f"{m}/{name}": (m, env) for m, name, env in todo}
  bar, failed = None, []
  def progress() -> tqdm:   # made once the cluster is up and can run them (a refusal is then one line, with no bar before it)
    nonlocal bar
    bar = bar or tqdm(total=len(todo))
    return bar
  def started(label:str, where:dict):
    progress().write(f"started {label} on {_where(where)}")
  def finished(label:str, result:dict):
    m, env = runs[label]
    results[run_key(m, env)] = {"model": m, "env": env, **result}
    save_results(results_path, results)   # the driver alone writes the results, as each run returns
    progress().set_description(f"{label}: {result['test_accuracy']:.2f}% on {_where(result['where'])}")
    bar.update(1)
  def failure(label:str, why:str):
    failed.append(label)
    progress().write(f"run failed: {label}: {why}")
    bar.update(1)
  todo = [(label, ROOT / SCRIPTS[m], env, checkpoints / f"{label.replace('/', '-').replace(' ', '_')}.safetensors" if checkpoints else None)
          for label, (m, env) in runs.items()]
  run_all(todo, on_start=started, on_result=finished, on_failure=failure, **cluster)
  if bar: bar.update(close=True)
  if failed: print(f"{len(failed)} of {len(todo)} runs failed (each said why above); the others are in {results_path}", file=sys.stderr)
  results_failed.extend(failed)
  return results

def _where(where:dict) -> str:
  return f"{where['host']} (node {where['node'][:6]})" + (f" GPU {','.join(where['gpu_ids'])}" if where.get("gpu_ids") else "")

def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--quick", action="store_true", help="tiny configurations; writes under runs/quick/ unless told otherwise")
  ap.add_argument("--report", action="store_true", help="only regenerate the report from the results file")
  ap.add_argument("--results", type=Path, help="results file (default results/sweep.json, or runs/quick/sweep.json)")
  ap.add_argument("--out", type=Path, help="report file (default HYPERPARAMETERS.md, or runs/quick/HYPERPARAMETERS.md)")
  ap.add_argument("--address", help="a Ray cluster's address (default RAY_ADDRESS; neither: a cluster on this machine)")
  ap.add_argument("--gpus-per-run", type=float, default=GPUS_PER_RUN, help=f"share of a GPU each run asks for when it trains on one (DEV=CUDA; default {GPUS_PER_RUN}: measured fastest)")
  ap.add_argument("--cpus-per-run", type=int, default=1, help="cores each run asks for (and tinygrad threads on the CPU); default 1")
  ap.add_argument("--jobs", type=int, default=0, help="at most this many runs in flight (default: as many as the cluster fits)")
  ap.add_argument("--only", help="a model (mnist_mlp, mnist_convnet) or one configuration name (with --trainers: one candidate's)")
  ap.add_argument("--checkpoints", type=Path, help="keep each run's trained weights in this folder (for LOAD=)")
  ap.add_argument("--trainers", action="store_true", help="run the page trainers' family (sweep_trainers.py: results/trainers.json), not the rest")
  args = ap.parse_args()
  signal.signal(signal.SIGINT, signal.default_int_handler)   # Ctrl-C stops the sweep even if started with SIGINT ignored
  if not 0 < args.gpus_per_run <= 8 or args.cpus_per_run < 1 or args.jobs < 0: ap.error("--gpus-per-run must be in (0, 8], --cpus-per-run >= 1, --jobs >= 0")
  base = ROOT / ("runs/quick" if args.quick else "")
  results_path = args.results or (base / "sweep.json" if args.quick else ROOT / "results" / "sweep.json")
  out = args.out or base / "HYPERPARAMETERS.md"
  configs, comparisons, seeds = (QUICK, QUICK_COMPARISONS, SEEDS[:1]) if args.quick else (CONFIGS, COMPARISONS, SEEDS)
  trainers, trainer_seeds = (sweep_trainers.QUICK, sweep_trainers.SEEDS[:1]) if args.quick else (sweep_trainers.CANDIDATES, sweep_trainers.SEEDS)
  trainers_path = results_path.with_name("trainers.json")
  try: results, trainer_results = load_results(results_path), load_results(trainers_path)
  except SweepError as e: sys.exit(f"error: {e}")
  if args.trainers and not args.report:
    exports = trainers_path.parent / "trainer_exports" if args.quick else ROOT / "runs" / "trainers"   # made once, reused by reruns
    try: sweep_trainers.sweep(trainers, trainer_seeds, trainer_results, lambda r: save_results(trainers_path, r), exports, args.only)
    except sweep_trainers.TrainerSweepError as e: sys.exit(f"error: {e}")
    except KeyboardInterrupt: sys.exit(f"\nerror: interrupted; the finished runs are in {trainers_path}, and a rerun does the rest")
  elif not args.report:
    try: results = sweep(with_seeds(configs, comparisons, seeds), args.quick, results, results_path, args.only, args.checkpoints, address=args.address,
                         gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run, cap=args.jobs)
    except SweepError as e: sys.exit(f"error: {e}")
    except KeyboardInterrupt: sys.exit(f"\nerror: interrupted; the finished runs are in {results_path}, and a rerun does the rest")
  key_of = lambda m, o: run_key(m, run_env(m, o, args.quick))
  trainer_lines = sweep_trainers.section(trainers, trainer_results, trainer_seeds)
  try: write_report(configs, results, out, key_of, BASES, SCRIPTS, comparisons, seeds, HIGHLIGHT, analyse=not args.quick, trainers=trainer_lines)
  except ReportError as e: sys.exit(f"error: {e}")
  print(f"wrote {out}")
  if not args.quick:
    update_readme()
    print("updated the model table in README.md")
  if results_failed: sys.exit(1)

if __name__ == "__main__":
  main()
