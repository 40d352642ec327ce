"""The sweep's page-trainer family: the networks the page trains from scratch ("Train from scratch"), chosen for accuracy
per second of training in the page's own loop on a CPU, since that is what a visitor without a GPU waits for.

Each candidate network is exported once by the real script (TRAINER=1, kept in runs/trainers/), then trained from a
random start by the page's own loop (webapp/js/fit.js through bench/bench_gpu_train.mjs in Node, WebAssembly on THREADS
threads with FMA, as Chromium runs it) at each epochs and learning rate, once per seed, to its accuracy on all 10 000
test digits. The runs are timed, so they run one at a time on this machine (not on Ray: two runs sharing its cores would
each time the other); results/trainers.json keeps every run, keyed by what it ran, and a rerun does only what is missing.
"""
import json, math, os, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
script = lambda model: f"{model}.py"                   # each model's training script is named after it (sweep.SCRIPTS)

THREADS = 2                                            # the page's Workers on the reference machine (2 cores, no GPU)
SEEDS = ["1", "2", "3"]                                # the page's seed: its initialisation and the order of the digits
TARGETS = {"mnist_mlp": 98.0, "mnist_convnet": 99.0}   # what the panel must reach, on every seed
TRAIN_DIGITS = 60000                                   # the page trains on all of them: an epoch is this many digits
# a trainer export: the network and its batch; the weights it trains for (STEPS) are not exported, and LR is the run's
EXPORT_BASE = {"TRAINER": "1", "WASM_BEAM": "2", "DROPOUT": "0", "AFFINE": "0", "THICKEN": "0", "THIN": "0", "EVAL_EVERY": "0", "STEPS": "10"}
NOT_THE_NETWORK = ("STEPS", "LR", "EVAL_EVERY")       # env vars that change no byte of what the page runs
# name, the network (env vars on top of EXPORT_BASE), the (epochs, learning rate) the page's loop trains it at, why
CANDIDATES = {
  "mnist_mlp": [
    ("256 batch 64", {"WIDTH": "256", "DEPTH": "1", "BS": "64"}, [(3, 0.004)], "the previous trainer's network and batch"),
    ("256 batch 128", {"WIDTH": "256", "DEPTH": "1", "BS": "128"}, [(2.5, 0.005), (2.5, 0.006), (2.5, 0.008), (2.75, 0.005), (3, 0.005), (3, 0.006)],
     "half the steps for the same epochs; splits better over two threads"),
    ("192 batch 128", {"WIDTH": "192", "DEPTH": "1", "BS": "128"}, [(3, 0.006), (3, 0.008)], "three quarters of the width"),
    ("128 batch 128", {"WIDTH": "128", "DEPTH": "1", "BS": "128"}, [(3, 0.006)], "half the width"),
  ],
  "mnist_convnet": [
    ("4-8-16-16", {"WIDTHS": "4,8,16,16", "BN": "1", "BS": "64"}, [(1.5, 0.01), (2, 0.01)],
     "four channels into the second 5x5 convolution halve its cost"),
    ("4-8-16-32", {"WIDTHS": "4,8,16,32", "BN": "1", "BS": "64"}, [(1.5, 0.01), (2, 0.01)], "the same, 32 channels in the last convolution"),
  ],
}
QUICK = {"mnist_mlp": [("32 batch 64", {"WIDTH": "32", "DEPTH": "1", "BS": "64", "WASM_BEAM": "0"}, [(0.05, 0.01)], "CI's toy")]}

class TrainerSweepError(Exception):
  """A trainer run that could not be made or read: one line for the user."""

def run_key(model:str, network:dict, epochs:float, lr:float, seed:str) -> str:
  return f"{model} {' '.join(f'{k}={v}' for k, v in sorted(network.items()))} epochs={epochs:g} lr={lr:g} seed={seed} threads={THREADS}"

def shipped_steps(epochs:float, batch:int) -> int:
  """STEPS for the export that ships a choice: the page's epochs are STEPS x BS / 60 000, rounded to hundredths."""
  return math.ceil(epochs * TRAIN_DIGITS / batch)

def command(model:str, network:dict, epochs:float, lr:float) -> str:
  """The command that exports a choice as the page ships it (its epochs and rate as the panel's defaults)."""
  env = {**EXPORT_BASE, **network, "STEPS": str(shipped_steps(epochs, int(network["BS"]))), "LR": f"{lr:g}"}
  return " ".join(f"{k}={v}" for k, v in env.items() if k != "EVAL_EVERY") + f" python3 {script(model)}"

def export(model:str, name:str, network:dict, cache:Path) -> Path:
  """The candidate's trainer export (a folder holding <model>_trainer/), made once: its env is recorded beside it, and a
  folder whose record differs is made again."""
  env = {**EXPORT_BASE, **network}
  folder = cache / f"{model}-{name.replace(' ', '-')}"
  record = {k: v for k, v in sorted(env.items()) if k not in NOT_THE_NETWORK}
  try:
    if json.loads((folder / "export.json").read_text()) == record: return folder
  except (OSError, ValueError): pass
  shutil.rmtree(folder, ignore_errors=True)
  print(f"exporting {model} '{name}' (TRAINER=1; WASM_BEAM={env['WASM_BEAM']} searches kernels: minutes)", flush=True)
  proc = subprocess.run([sys.executable, script(model)], cwd=ROOT, env={**os.environ, **env, "OUT": str(folder)}, capture_output=True, text=True)
  if proc.returncode != 0:
    raise TrainerSweepError(f"exporting {model} '{name}' failed (exit {proc.returncode}): {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
  (folder / "export.json").write_text(json.dumps(record) + "\n")
  return folder

def train(model:str, folder:Path, epochs:float, lr:float, seed:str) -> dict:
  """One run of the page's loop on the candidate: its accuracy on all 10 000 test digits and the seconds it trained."""
  with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "run.json"
    proc = subprocess.run([_node(), "--experimental-wasm-relaxed-simd", "bench/bench_gpu_train.mjs", "--backend", "wasm", "--threads", str(THREADS),
                           "--models", str(folder), "--only", f"{model}_trainer", "--epochs", f"{epochs:g}", "--lr", f"{lr:g}", "--seed", seed,
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
      raise TrainerSweepError(f"the page's loop failed on {folder.name} (exit {proc.returncode}): {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    report = json.loads(out.read_text())
  r = report["trained"][f"{model}_trainer"]
  meta = json.loads((folder / f"{model}_trainer" / f"{model}_trainer.json").read_text())
  return {"accuracy": r["accuracy"], "seconds": r["seconds"], "steps": r["steps"], "batch": r["batch"], "ms_per_step": 1000 * r["seconds"] / r["steps"],
          "time_to_accuracy": r["time_to_accuracy"], "architecture": meta["architecture"], "params": meta["params"],
          "machine": report["machine"], "runtime": report["runtime"].split(",")[0]}

def _node() -> str:
  if node := shutil.which("node"): return node
  raise TrainerSweepError("node is not on PATH: the page's loop runs in Node 20 (apt-get install nodejs)")

def sweep(candidates:dict, seeds:list[str], results:dict, save, cache:Path, only:str|None=None) -> dict:
  """Every run of `candidates` x `seeds` not yet in `results` (of one model or candidate, if `only` names it), one at a
  time; save(results) as each finishes."""
  todo = [(m, name, net, e, lr, s) for m, rows in candidates.items() for name, net, runs, _ in rows for e, lr in runs for s in seeds
          if run_key(m, net, e, lr, s) not in results and only in (None, m, name)]
  print(f"{len(todo)} page-trainer runs to do, {len(results)} already done", flush=True)
  if todo: _node()   # before any export: they take minutes
  for i, (m, name, net, e, lr, s) in enumerate(todo):
    folder = export(m, name, net, cache)
    r = train(m, folder, e, lr, s)
    results[run_key(m, net, e, lr, s)] = {"model": m, "name": name, "network": net, "epochs": e, "lr": lr, "seed": s, "threads": THREADS, **r}
    save(results)
    print(f"[{i + 1}/{len(todo)}] {m} '{name}' {e:g} epochs at {lr:g}, seed {s}: {r['accuracy']:.2f} % in {r['seconds']:.1f} s", flush=True)
  return results

# ---------------------------------------------------------------- the choice and the report

def settings(model:str, candidates:dict, results:dict, seeds:list[str]) -> list[dict]:
  """Each (network, epochs, lr) of `model` with every seed run: its runs, median seconds, worst accuracy."""
  rows = []
  for name, net, runs, why in candidates.get(model, []):
    for e, lr in runs:
      done = [results[k] for k in (run_key(model, net, e, lr, s) for s in seeds) if k in results]
      if len(done) == len(seeds):
        rows.append({"name": name, "network": net, "epochs": e, "lr": lr, "why": why, "runs": done,
                     "seconds": sorted(r["seconds"] for r in done)[len(done) // 2], "worst": min(r["accuracy"] for r in done)})
  return rows

def choice(model:str, rows:list[dict]) -> dict|None:
  """The rule the shipped trainer follows: the least median time among the settings that reach the target on every seed;
  where none does, the one whose worst seed is most accurate."""
  reaching = [r for r in rows if r["worst"] >= TARGETS[model]]
  return min(reaching, key=lambda r: r["seconds"]) if reaching else max(rows, key=lambda r: r["worst"], default=None)

def section(candidates:dict, results:dict, seeds:list[str]) -> list[str]:
  """HYPERPARAMETERS.md's page-trainer section (nothing where no run is in)."""
  if not results: return []
  machines = sorted({r["machine"] for r in results.values()})
  lines = ["## The page's trainers: accuracy per second of training", "",
           "Generated by `python sweep.py --trainers` from `results/trainers.json`. Each network is exported by the real script "
           "(`TRAINER=1`) and trained from a random start by the page's own loop (`webapp/js/fit.js`, in Node: "
           f"`bench/bench_gpu_train.mjs --backend wasm --threads {THREADS}`), WebAssembly with FMA on {THREADS} threads, one run at a "
           f"time, on all 60 000 training digits, to its accuracy on all 10 000 test digits; seeds {', '.join(seeds)}. "
           f"Machine: {'; '.join(machines)}.", ""]
  for model in candidates:
    rows = settings(model, candidates, results, seeds)
    if not rows: continue
    pick = choice(model, rows)
    lines += [f"### {model}", "", f"| network | parameters | batch | epochs | learning rate | accuracy % (seeds {' / '.join(seeds)}) | "
              f"training s (median) | ms a step | ≥ {TARGETS[model]:g} % on every seed |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["seconds"]):
      first = r["runs"][0]
      name = f"**{r['name']}**" if r is pick else r["name"]
      lines.append(f"| {name} ({first['architecture']}) | {first['params']:,} | {first['batch']} | {r['epochs']:g} | {r['lr']:g} | "
                   f"{' / '.join(format(x['accuracy'], '.2f') for x in r['runs'])} | {r['seconds']:.1f} | "
                   f"{sorted(x['ms_per_step'] for x in r['runs'])[len(r['runs']) // 2]:.2f} | {'yes' if r['worst'] >= TARGETS[model] else 'no'} |")
    reached = pick["worst"] >= TARGETS[model]
    lines += ["", f"**The rule:** ship the setting with the least median training time among those that reach {TARGETS[model]:g} % on "
              f"every seed; where none does, the one whose worst seed is most accurate. By it: **{pick['name']}**, {pick['epochs']:g} "
              f"epochs at {pick['lr']:g}, {pick['seconds']:.1f} s" + ("." if reached else f", short of {TARGETS[model]:g} % on some seed: none reached it.")
              + _quicker(model, rows, pick) + f" Exported by `{command(model, pick['network'], pick['epochs'], pick['lr'])}`.", ""]
  return lines

def _quicker(model:str, rows:list[dict], pick:dict) -> str:
  """Why nothing quicker ships: each quicker setting's worst seed."""
  quicker = sorted((r for r in rows if r["seconds"] < pick["seconds"]), key=lambda r: r["seconds"])
  if not quicker: return " Nothing was quicker."
  return (f" Each quicker setting misses {TARGETS[model]:g} % on some seed: " +
          "; ".join(f"{r['name']}, {r['epochs']:g} epochs at {r['lr']:g} ({r['seconds']:.1f} s, worst {r['worst']:.2f} %)" for r in quicker) + ".")
