"""HYPERPARAMETERS.md from the sweep's results: the tables, the curves and confusion matrices, the seed noise, and an
analysis whose reasoning is written by hand but whose every comparison (higher or lower, larger than the seed noise or
within it, faster or slower, noisier or steadier) is decided from the results as the report is written. A rerun that
reverses a result reverses the sentence; a configuration the analysis needs that the results lack stops the report with
one line (ReportError), never a quietly missing section.
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent

class ReportError(Exception):
  """Why the report cannot be written, in one line."""

# ---------------------------------------------------------------- measures of one run

def _smooth(values:list[float], k:int=5) -> list[float]:
  return [sum(values[max(0, i - k + 1):i + 1]) / len(values[max(0, i - k + 1):i + 1]) for i in range(len(values))]

def steps_to(curve:list, target:float) -> int|None:
  """The first step at which the test accuracy curve reaches `target`."""
  return next((step for step, acc in curve if acc >= target), None)

def late_noise(loss:list) -> float:
  """Loss stability: the standard deviation of the logged training loss over the last fifth of training."""
  tail = [v for _, v in loss[-max(len(loss) // 5, 2):]]
  mean = sum(tail) / len(tail)
  return (sum((v - mean) ** 2 for v in tail) / len(tail)) ** 0.5

def settles_at(run:dict, within:float=0.1) -> float:
  """When a run's test accuracy stops rising: the first step within `within` points of its final accuracy, as a share of
  its steps (1.0: it rose to the end)."""
  curve, steps = run["accuracy_curve"], int(run["env"]["STEPS"])
  return next((step for step, acc in curve if acc >= run["test_accuracy"] - within), steps) / steps

def _rank(row) -> tuple:
  """Best run: highest test accuracy; on a tie (one image is 0.01%), the longer-trained run, then the lower final loss."""
  r = row[1]
  return (r["test_accuracy"], int(r["env"]["STEPS"]), -r["final_loss"])

def _spread(values:list[float]) -> tuple[float, float]:
  mean = sum(values) / len(values)
  return mean, (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5   # sample standard deviation

# ---------------------------------------------------------------- the plots

def _plots(model:str, rows:list, folder:Path, highlight:list[str]) -> list[str]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  folder.mkdir(parents=True, exist_ok=True)
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(13, 4.8))
  colours = dict(zip(highlight, plt.get_cmap("tab10").colors))
  # the runs the analysis talks about in colour, on top; every other run as a thin grey line for context
  for name, r in sorted(rows, key=lambda row: row[0] in colours):
    style = {"color": colours[name], "lw": 1.8, "label": name, "zorder": 3} if name in colours else {"color": "0.75", "lw": 0.7, "zorder": 1}
    if r["loss"]: ax_loss.plot([s for s, _ in r["loss"]], _smooth([max(v, 1e-5) for _, v in r["loss"]]), **style)
    if r["accuracy_curve"]: ax_acc.plot(*zip(*r["accuracy_curve"]), **style)
  ax_loss.set(yscale="log", xlabel="step", ylabel="training loss (smoothed, log)", title=f"{model}: training loss")
  ax_acc.set(xlabel="step", ylabel="test accuracy %", title=f"{model}: test accuracy during training", ylim=(97 if "mlp" in model else 98.5, 100))
  for ax in (ax_loss, ax_acc): ax.grid(alpha=0.3)
  ax_acc.plot([], [], color="0.75", lw=0.7, label="the other runs")
  ax_acc.legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  fig.savefig(folder / f"{model}_curves.png", dpi=110)
  best_name, best = max(rows, key=_rank)
  fig, ax = plt.subplots(figsize=(5.2, 4.6))
  cm = best["confusion"]
  ax.imshow([[min(v, 40) for v in row] for row in cm], cmap="Blues")
  for i in range(10):
    for j in range(10):
      if cm[i][j]: ax.text(j, i, cm[i][j], ha="center", va="center", fontsize=7, color="white" if i == j else "black")
  ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title=f"{model} '{best_name}': confusion (10k test)")
  fig.tight_layout()
  fig.savefig(folder / f"{model}_confusion.png", dpi=110)
  plt.close("all")
  return [f"{model}_curves.png", f"{model}_confusion.png"]

# ---------------------------------------------------------------- seed noise

def seed_stats(model:str, configs:dict, results:dict, key_of, comparisons:dict, seeds:list[str]) -> dict:
  """{name: (mean, std, n, min, max)} of each configuration in a comparison, over the seeds it ran with."""
  options = {name: o for name, o, _ in configs[model]}
  stats = {}
  for name in dict.fromkeys(n for a, b, _ in comparisons.get(model, []) for n in (a, b)):
    runs = [results[k]["test_accuracy"] for o in [options[name], *({**options[name], "SEED": s} for s in seeds)] if (k := key_of(model, o)) in results]
    if len(runs) >= 2: stats[name] = (*_spread(runs), len(runs), min(runs), max(runs))
  return stats

def difference(stats:dict, a:str, b:str) -> tuple[float, float]|None:
  """b's mean minus a's, and the noise it must exceed (twice the standard error of the difference); None unseeded."""
  if a not in stats or b not in stats: return None
  (ma, sa, na, *_), (mb, sb, nb, *_) = stats[a], stats[b]
  return mb - ma, 2 * (sa ** 2 / na + sb ** 2 / nb) ** 0.5

def seed_noise_section(model:str, stats:dict, comparisons:dict, seeds:list[str]) -> list[str]:
  if not stats: return []
  lines = [f"### {model}: seed noise", "",
           f"Each configuration below ran with seeds 42, {', '.join(seeds)} (everything else equal). A difference counts as larger "
           "than the noise when the two means differ by more than twice its standard error, √(σ₁²/n₁ + σ₂²/n₂).", "",
           "| configuration | seeds | test acc. % mean ± σ | min – max |", "|---|---|---|---|"]
  lines += [f"| {name} | {n} | {m:.2f} ± {sd:.3f} | {lo:.2f} – {hi:.2f} |" for name, (m, sd, n, lo, hi) in stats.items()]
  lines += ["", "| comparison | what changes | Δ mean (points) | 2 × standard error | verdict |", "|---|---|---|---|---|"]
  for a, b, what in comparisons.get(model, []):
    if (d := difference(stats, a, b)) is None: continue
    lines.append(f"| {a} → {b} | {what} | {d[0]:+.2f} | {d[1]:.2f} | {'**larger than the noise**' if abs(d[0]) > d[1] else 'within the noise'} |")
  return lines + [""]

# ---------------------------------------------------------------- accuracy per byte

# What a shipped model must reach (all 10 000 test digits, its weights as stored): the goals the page is built to
TARGETS = {"mnist_mlp": 99.3, "mnist_convnet": 99.6}

def measured(done:list) -> list:
  """The runs whose weights file was measured as shipped: [(name, run)]."""
  return [(name, r) for name, r, *_ in done if r.get("shipped")]

def frontier(runs:list) -> list[str]:
  """The runs no smaller run beats: walking up in bytes on the wire, each that is more accurate than every smaller one."""
  best, on = -1.0, []
  for name, r in sorted(runs, key=lambda x: (x[1]["shipped"]["wire_bytes"], -x[1]["test_accuracy"])):
    if r["test_accuracy"] > best: best, on = r["test_accuracy"], on + [name]
  return on

def chosen(model:str, runs:list) -> str|None:
  """The rule the shipped models follow: the fewest bytes on the wire among the runs (on the frontier) that reach the
  model's target; where none does, the most accurate run."""
  if not runs: return None
  on = dict(runs)
  reaching = [n for n in frontier(runs) if on[n]["test_accuracy"] >= TARGETS[model]]
  return reaching[0] if reaching else max(runs, key=lambda x: x[1]["test_accuracy"])[0]

def bytes_section(model:str, done:list, stats:dict, folder:Path, out:Path) -> list[str]:
  runs = measured(done)
  if not runs: return []
  on, pick = set(frontier(runs)), chosen(model, runs)
  r = dict(runs)[pick]
  kb = lambda x: f"{x['shipped']['wire_bytes'] / 1024:,.0f} KB"
  lines = [f"### {model}: accuracy per byte", "",
           "Every visitor downloads the weights of the model they use, and GitHub Pages sends them as they are (no gzip for a "
           ".safetensors file), so these runs store them as shipped (int8 with a scale per output channel: the accuracy is measured "
           "on exactly those weights) and record the file's bytes on the wire. The frontier (◆) is each run more accurate than "
           "every smaller one.", "",
           "| | configuration | parameters | weights on the wire | accuracy as shipped % | before rounding % |", "|---|---|---|---|---|---|"]
  for name, x in sorted(runs, key=lambda x: x[1]["shipped"]["wire_bytes"]):
    lines.append(f"| {'◆' if name in on else ''} | {'**' + name + '**' if name == pick else name} | {x['params']:,} | {kb(x)} | "
                 f"{x['test_accuracy']:.2f} | {x['shipped']['test_accuracy_float32']:.2f} |")
  noise = f" Its seeds: {stats[pick][0]:.2f} ± {stats[pick][1]:.3f} % over {stats[pick][2]} runs." if pick in stats else " It ran with one seed."
  reached = r["test_accuracy"] >= TARGETS[model]
  lines += ["", f"![accuracy per byte]({folder.relative_to(out.parent)}/{_bytes_plot(model, runs, on, pick, folder)})", "",
            f"**The rule:** ship the run with the fewest bytes on the wire that reaches {TARGETS[model]:g} % as shipped; where none "
            f"does, the most accurate. By it: **{pick}**, {r['params']:,} parameters, {kb(r)}, {r['test_accuracy']:.2f} %"
            + ("." if reached else f", short of {TARGETS[model]:g} %: no run reached it.") + noise, ""]
  return lines

def _bytes_plot(model:str, runs:list, on:set, pick:str, folder:Path) -> str:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  folder.mkdir(parents=True, exist_ok=True)
  fig, ax = plt.subplots(figsize=(6.5, 4.2))
  x = lambda r: r["shipped"]["wire_bytes"] / 1024
  ax.scatter([x(r) for _, r in runs], [r["test_accuracy"] for _, r in runs], color="0.6", s=18, label="runs")
  front = sorted((r for n, r in runs if n in on), key=x)
  ax.plot([x(r) for r in front], [r["test_accuracy"] for r in front], "o-", color="tab:blue", label="frontier")
  r = dict(runs)[pick]
  ax.scatter([x(r)], [r["test_accuracy"]], s=120, facecolors="none", edgecolors="tab:red", label=f"shipped: {pick}")
  ax.axhline(TARGETS[model], color="tab:red", lw=0.8, ls="--")
  ax.set(xscale="log", xlabel="weights on the wire, KB (log)", ylabel="test accuracy as shipped %", title=f"{model}: accuracy per byte")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  fig.savefig(folder / f"{model}_bytes.png", dpi=110)
  plt.close(fig)
  return f"{model}_bytes.png"

# ---------------------------------------------------------------- the report

def write_report(configs:dict, results:dict, out:Path, key_of, bases:dict, scripts:dict, comparisons:dict, seeds:list[str],
                 highlight:dict, analyse:bool=True, trainers:list[str]=()):
  """HYPERPARAMETERS.md (and its plots in results/ beside it) for `configs` ({model: [(name, env overrides, why)]}),
  from `results` (by key_of(model, overrides)). `analyse`: write the analysis, which needs the full sweep. `trainers`: the
  page trainers' section (sweep_trainers.section), before the analysis."""
  plots_dir = out.parent / "results"
  lines = ["# Hyperparameter exploration", "",
           "Generated by `python sweep.py` from `results/sweep.json`; do not edit by hand. Every row is a run of the real training "
           "script with the environment shown, so `ENV=... python mnist_mlp.py` reproduces it. Test accuracy is on all 10 000 MNIST "
           "test images, one forward pass per image, in eval mode. Training times are wall-clock seconds of the training loop; "
           "runs that shared a GPU (see each model's devices) compare configurations only roughly.", ""]
  summary, sections, found, noise = [], [], {}, {}
  for model, rows in configs.items():
    done = [(name, results[key_of(model, o)], o, why) for name, o, why in rows if key_of(model, o) in results]
    found[model] = {name: r for name, r, _, _ in done}
    if not done: continue
    noise[model] = seed_stats(model, configs, results, key_of, comparisons, seeds)
    table, best = _model_table(model, done, bases[model])
    files = _plots(model, [(n, r) for n, r, _, _ in done], plots_dir, highlight.get(model, []))
    sections += [*table, "", *(f"![{f}]({plots_dir.relative_to(out.parent)}/{f})" for f in files), "",
                 *seed_noise_section(model, noise[model], comparisons, seeds), *bytes_section(model, done, noise[model], plots_dir, out)]
    best_name, r, o = best
    env = " ".join(f"{k}={v}" for k, v in {**bases[model], **o}.items())
    summary.append(f"| {model} | {best_name} | {r['test_accuracy']:.2f} | {r['train_seconds']:.0f} s on {r['device']} | `{env} python {scripts[model]}` |")
  lines += ["## Best configurations", "", "| model | configuration | test acc. % | training time | command |", "|---|---|---|---|---|", *summary, ""]
  lines += [*sections, *trainers]
  if analyse: lines += analysis(found, noise, comparisons)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text("\n".join(lines) + "\n")

def _model_table(model:str, done:list, base:dict) -> tuple[list[str], tuple]:
  best_name, best, best_o, _ = max(done, key=_rank)
  target = 99.0 if model == "mnist_convnet" else 98.0
  where = sorted({r.get("where", {}).get("device") or r["device"] for _, r, _, _ in done})
  lines = [f"## {model}", "", f"Base configuration: `{' '.join(f'{k}={v}' for k, v in base.items())}`; each row changes what its second "
           f"column says. Devices: {', '.join(where)}.", "",
           f"| | configuration | changes | test acc. % | final train loss | late loss σ | steps to {target:g}% | train s | steps/s | params |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for name, r, o, why in sorted(done, key=lambda d: -d[1]["test_accuracy"]):
    mark = "★" if name == best_name else ""
    changes = " ".join(f"{k}={v}" for k, v in o.items()) or "(base)"
    reach = steps_to(r["accuracy_curve"], target)
    lines.append(f"| {mark} | {'**' + name + '**' if mark else name} | `{changes}` <br><sub>{why}</sub> | {r['test_accuracy']:.2f} | "
                 f"{r['final_loss']:.4f} | {late_noise(r['loss']):.4f} | {reach if reach else '—'} | {r['train_seconds']:.0f} | "
                 f"{r['steps_per_second']:.0f} | {r['params']:,} |")
  return lines, (best_name, best, best_o)

# ---------------------------------------------------------------- the analysis: words chosen by the numbers

# what each paragraph compares: a configuration missing from the results stops the report
NEEDED = {"mnist_mlp": ["baseline", "lr 1e-2", "lr 1e-4", "one-cycle", "sgd momentum", "adamw wd", "muon", "dropout 0.2", "augment",
                        "augment+dropout", "wide 1024 aug+drop", "wide long", "deep wide long", "batch norm", "gelu", "int8 2x512",
                        "int8 2x512 kd"],
          "mnist_convnet": ["baseline", "lr 1e-2", "batch norm", "bn one-cycle", "muon", "sgd momentum", "adamw wd", "augment", "aug long",
                            "channels 48 aug long", "channels 16", "silu", "augment+dropout", "int8 w24-24-48-48", "int8 w24-24-48-48 kd"]}

class _Facts:
  """The results of one model as the analysis reads them: accuracy, loss, speed, and every comparison decided."""
  def __init__(self, model:str, runs:dict, stats:dict):
    missing = [n for n in NEEDED[model] if n not in runs]
    if missing: raise ReportError(f"the analysis needs {model} {', '.join(repr(n) for n in missing)}, which the results lack "
                                  f"(renamed, or not run yet): run `python sweep.py --only {model}`, or update NEEDED in sweep_report.py")
    self.model, self.runs, self.stats = model, runs, stats

  def acc(self, name:str) -> str: return f"{self.runs[name]['test_accuracy']:.2f}%"
  def a(self, name:str) -> float: return self.runs[name]["test_accuracy"]
  def loss(self, name:str) -> float: return max(self.runs[name]["final_loss"], 0.0) + 0.0   # no "-0"
  def speed(self, name:str) -> float: return self.runs[name]["steps_per_second"]

  def single_noise(self, reference:str) -> float:
    """The noise one run must exceed against `reference`: twice the standard error of one run against the reference's mean
    of n seeds, 2·σ·√(1 + 1/n); NaN where the reference ran with one seed."""
    if reference not in self.stats: return float("nan")
    _, sd, n, *_ = self.stats[reference]
    return 2 * sd * (1 + 1 / n) ** 0.5

  def versus(self, a:str, b:str) -> tuple[float, float, bool|None]:
    """b against a: the difference, its noise, and whether it is larger than the noise (None: no seeds to tell)."""
    if (d := difference(self.stats, a, b)) is not None: return d[0], d[1], abs(d[0]) > d[1]
    delta, noise = self.a(b) - self.a(a), self.single_noise(a)
    return delta, noise, None if noise != noise else abs(delta) > noise

  def said(self, a:str, b:str) -> str:
    """'+0.39 points in the mean of 3 seeds, larger than the noise of ±0.11', decided from the results."""
    delta, noise, larger = self.versus(a, b)
    if larger is None: return f"{delta:+.2f} points, one seed each"
    seeded = difference(self.stats, a, b) is not None
    n = min(self.stats[a][2], self.stats[b][2]) if seeded else 1
    return f"{delta:+.2f} points{f' in the mean of {n} seeds' if seeded else ' against its seed spread'}, {'larger than' if larger else 'within'} the noise of ±{noise:.2f}"

  def moves(self, a:str, b:str, up:str="raises", down:str="lowers", same:str="leaves") -> str:
    """The verb for going from a to b: up or down where the change is larger than the noise, else `same`."""
    delta, _, larger = self.versus(a, b)
    return same if larger is False else up if delta > 0 else down

  def takes(self, a:str, b:str, what:str) -> str:
    """'lifts the MLP to 98.98%' / 'lowers ... to' / 'leaves ... at', decided by b against a."""
    verb = self.moves(a, b, "lifts", "lowers", "leaves")
    return f"{verb} {what} {'at' if verb == 'leaves' else 'to'} {self.acc(b)}"

  def pays(self, a:str, b:str) -> bool:
    """b is clearly better than a: higher by more than the noise (one seed each: by more than a's seed noise)."""
    delta, _, larger = self.versus(a, b)
    return delta > 0 and larger is not False

def _loss(x:float) -> str: return f"{x:.1e}" if x else "0"

def _choose(condition:bool, yes:str, no:str) -> str: return yes if condition else no

def analysis(found:dict, seed_stats:dict, comparisons:dict) -> list[str]:
  """The written analysis. The reasoning is mine; every comparison in it is decided from the results (`comparisons`: each
  model's seeded comparisons, among which the gains are ranked)."""
  mlp, cnn = (_Facts(m, found.get(m, {}), seed_stats.get(m, {})) for m in ("mnist_mlp", "mnist_convnet"))
  return ["## Analysis", "", _schedule(mlp, cnn, comparisons["mnist_mlp"]), "", _optimisers(mlp, cnn), "", _single_seed(mlp, cnn), "", _regularisation(mlp, cnn), "",
          _convergence(mlp), "", _bytes(mlp, cnn), ""]

def _schedule(mlp:_Facts, cnn:_Facts, compared:list) -> str:
  lrs = [mlp.a(n) for n in ("lr 1e-2", "baseline", "lr 1e-4")]
  sensitive = max(lrs) - min(lrs) > mlp.single_noise("baseline")
  wanders = late_noise(mlp.runs["lr 1e-2"]["loss"]) > 2 * late_noise(mlp.runs["baseline"]["loss"])
  cnn_same = (cnn.a("lr 1e-2") < cnn.a("baseline")) == (mlp.a("lr 1e-2") < mlp.a("baseline")) and cnn.moves("baseline", "lr 1e-2") != "leaves"
  up = [m.moves(a, "one-cycle" if m is mlp else "bn one-cycle") for m, a in ((mlp, "baseline"), (cnn, "batch norm"))]
  gains = {b: mlp.versus(a, b)[0] for a, b, _ in compared if difference(mlp.stats, a, b)}
  largest = bool(gains) and max(gains, key=gains.get) == "one-cycle"
  return ("**Learning rate and schedule.** With a constant rate the MLP " + _choose(sensitive, "is sensitive to it", "hardly depends on it") +
          f": Adam at 1e-2 reaches {mlp.acc('lr 1e-2')} against {mlp.acc('baseline')} at 1e-3 and {mlp.acc('lr 1e-4')} at 1e-4, and its late training loss "
          + _choose(wanders, "wanders", "is no less steady") +
          f" (σ {late_noise(mlp.runs['lr 1e-2']['loss']):.3f} against {late_noise(mlp.runs['baseline']['loss']):.4f}). The CNN " +
          _choose(cnn_same, "shows the same", "does not") + f" at 1e-2 ({cnn.acc('lr 1e-2')} against {cnn.acc('baseline')}). A one-cycle schedule "
          f"(warm-up, then cosine decay to zero) {up[0]} the MLP from {mlp.acc('baseline')} to {mlp.acc('one-cycle')} "
          f"({mlp.said('baseline', 'one-cycle')}) and {up[1]} the batch-normalised CNN from {cnn.acc('batch norm')} to {cnn.acc('bn one-cycle')} "
          f"({cnn.said('batch norm', 'bn one-cycle')})" +
          _choose(up == ["raises", "raises"], ", because the last steps are small enough to settle into a minimum instead of bouncing around it", "") +
          _choose(largest, "; for the MLP it is the largest gain of the seeded comparisons.", "."))

def _optimisers(mlp:_Facts, cnn:_Facts) -> str:
  names = {"one-cycle": "Adam", "adamw wd": "AdamW", "sgd momentum": "SGD", "muon": "Muon"}
  def together(m:_Facts, adam:str) -> str:
    runs = {names[n]: m.a(adam if n == "one-cycle" else n) for n in names}
    spread, noise = max(runs.values()) - min(runs.values()), m.single_noise(adam)
    listing = ", ".join(f"{k} {v:.2f}%" for k, v in runs.items())
    verdict = (f"within {spread:.2f} points of each other, inside the seed noise of ±{noise:.2f}" if spread <= noise else
               f"{max(runs, key=runs.get)} best and {min(runs, key=runs.get)} worst, {spread:.2f} points apart against a seed noise of ±{noise:.2f}")
    return f"{listing} ({verdict})", spread <= noise
  mlp_text, mlp_close = together(mlp, "one-cycle")
  cnn_text, cnn_close = together(cnn, "bn one-cycle")
  losses = {names[n]: mlp.loss("one-cycle" if n == "one-cycle" else n) for n in names}
  lowest = min(losses, key=losses.get)
  best_acc = max(names, key=lambda n: mlp.a(n))
  slower = mlp.speed("muon") < mlp.speed("one-cycle")
  return ("**Optimisers.** Under the same one-cycle schedule, Adam, AdamW, SGD with Nesterov momentum and Muon " +
          _choose(mlp_close and cnn_close, "end close together", "do not all end together") + f". For the MLP: {mlp_text}; for the CNN: {cnn_text}. "
          f"{lowest} drives the MLP's training loss lowest (final loss {_loss(losses[lowest])}, Adam {_loss(losses['Adam'])})" +
          _choose(names[best_acc] != lowest, " — on an un-regularised MLP that is memorisation, not generalisation: it does not read the test set best.",
                  ", and it also reads the test set best.") +
          f" Muon's step is {_choose(slower, 'slower', 'faster')} in tinygrad ({mlp.speed('muon'):.0f} against {mlp.speed('one-cycle'):.0f} steps/s for the MLP)" +
          _choose(slower, " because of its Newton–Schulz iterations.", "."))

def _single_seed(mlp:_Facts, cnn:_Facts) -> str:
  """Changes run with one seed, against their reference's seed spread."""
  parts = []
  for m, reference, changes in ((mlp, "one-cycle", [("batch norm", "batch norm in the MLP"), ("gelu", "GELU instead of ReLU")]),
                                (cnn, "bn one-cycle", [("silu", "SiLU in the CNN"), ("channels 16", "half the CNN's channels")])):
    mean = m.stats[reference][0] if reference in m.stats else m.a(reference)
    for name, what in changes:
      delta, noise, larger = m.a(name) - mean, m.single_noise(reference), None
      if noise == noise: larger = abs(delta) > noise
      verdict = "no verdict (one seed)" if larger is None else "larger than the noise" if larger else "within the noise"
      parts.append(f"{what} {m.acc(name)} ({delta:+.2f} against the {reference} mean, noise ±{noise:.2f}: {verdict})")
  sds = [s[1] for f in (mlp, cnn) for s in f.stats.values()]
  noise = (f"A different seed alone moves the test accuracy by σ ≈ {sum(sds) / len(sds):.2f} points on average over the {len(sds)} configurations "
           "run with three seeds (the seed-noise tables),") if sds else "Every configuration ran with one seed,"
  return ("**Single-seed changes, held against the noise.** Against the seed spread of their reference configuration: " + "; ".join(parts) + ". " +
          noise + " so a single run's lead of a few hundredths of a point is not evidence; the seeded comparisons above are.")

def _regularisation(mlp:_Facts, cnn:_Facts) -> str:
  plain = [n for n, r in mlp.runs.items() if r["env"].get("AFFINE") == "0" and r["env"].get("DROPOUT") == "0" and r["env"].get("SCHEDULE") == "onecycle"]
  memorised = max(mlp.loss(n) for n in plain) < 0.01
  wider_pays, longer_pays = mlp.pays("augment+dropout", "wide 1024 aug+drop"), mlp.pays("wide 1024 aug+drop", "wide long")
  past = mlp.a("wide long") >= 99 and max(mlp.a(n) for n in plain) < 99
  third = mlp.versus("wide long", "deep wide long")
  wider = cnn.versus("aug long", "channels 48 aug long")
  single_lead = cnn.a("channels 48 aug long") > cnn.a("aug long")
  return ("**Why the winners win: regularisation, then capacity, then time.** " +
          _choose(memorised, f"Every un-augmented run without dropout ends with a training loss near zero (MLP one-cycle {_loss(mlp.loss('one-cycle'))}): "
                  "the network has memorised the 60 000 images and the test error is what is left. ",
                  f"Not every un-augmented run memorises its training set (final losses up to {max(mlp.loss(n) for n in plain):.3f}). ") +
          f"Dropout alone {mlp.takes('one-cycle', 'dropout 0.2', 'the MLP')} ({mlp.said('one-cycle', 'dropout 0.2')}); on-device augmentation "
          f"(random rotation, scale and shift plus stroke thickening/thinning) {mlp.takes('one-cycle', 'augment', 'it')} ({mlp.said('one-cycle', 'augment')}), "
          f"and both together give {mlp.acc('augment+dropout')}. The training loss then " +
          _choose(mlp.loss("augment+dropout") > 0.05, "stays well above zero", "still nears zero") +
          f" ({mlp.loss('augment+dropout'):.3f}) because every batch is new. With that regularisation, twice the width " +
          _choose(wider_pays, "pays", "does not pay") + f" in the same steps ({mlp.acc('wide 1024 aug+drop')} against {mlp.acc('augment+dropout')}) and "
          f"3.75 times the steps {_choose(longer_pays, 'pay', 'do not pay')} ({mlp.acc('wide long')})" +
          _choose(past, " — past the 99% that no un-regularised MLP here reaches —", ",") +
          f" while a third hidden layer ({mlp.acc('deep wide long')}) " +
          ("adds little" if third[2] is False else "adds clearly" if third[0] > 0 else "costs accuracy") + f" ({mlp.said('wide long', 'deep wide long')}). "
          f"The CNN {_choose(cnn.versus('bn one-cycle', 'augment')[0] > 0, 'follows the same pattern', 'does not follow')}: augmentation takes it from "
          f"{cnn.acc('bn one-cycle')} to {cnn.acc('augment')} ({cnn.said('bn one-cycle', 'augment')}); longer training ({cnn.acc('aug long')}) and 1.5 "
          f"times the channels ({cnn.acc('channels 48 aug long')}) " +
          _choose(wider[2] is False, "are where the gains run out", "still change it") + f" ({cnn.said('aug long', 'channels 48 aug long')})" +
          (": its single-seed lead picked it, and three seeds do not confirm it." if single_lead and wider[2] is False else
           ": three seeds confirm it." if wider[2] else "."))

def _convergence(mlp:_Facts) -> str:
  aug, plain = mlp.runs["augment+dropout"], mlp.runs["one-cycle"]
  steps_aug, steps_plain = steps_to(aug["accuracy_curve"], 98.0), steps_to(plain["accuracy_curve"], 98.0)
  ratio = (steps_aug or float("inf")) / (steps_plain or float("inf"))
  pace = "more slowly" if ratio > 1.1 else "faster" if ratio < 0.9 else "at about the same pace"
  noisier = late_noise(aug["loss"]) > late_noise(plain["loss"])
  later = settles_at(aug) > settles_at(plain)
  return ("**Convergence speed and stability.** Augmented runs converge " + pace +
          f" in steps — the MLP with augmentation and dropout needs {steps_aug} steps to pass 98% where the plain one-cycle run needs {steps_plain} — "
          f"and their training loss is {_choose(noisier, 'noisier', 'steadier')} late in training (σ {late_noise(aug['loss']):.3f} against "
          f"{late_noise(plain['loss']):.4f})" + _choose(noisier, ", which is the point: the noise is the regularisation. ", ". ") +
          f"Their test accuracy settles {_choose(later, 'later', 'no later')} (within 0.1 points of its final value at {settles_at(aug):.0%} of the steps, "
          f"against {settles_at(plain):.0%} for the plain run: see the curves). Augmentation also matters beyond the test set: hand-drawn digits are "
          "thicker, thinner, tilted and off-centre in ways MNIST's test set is not, and the drawing tests in the browser read them at ≥ 95%.")

def _bytes(mlp:_Facts, cnn:_Facts) -> str:
  int8 = [r for m in (mlp, cnn) for r in m.runs.values() if r.get("shipped", {}).get("weights_dtype") == "int8"]
  cost = max(r["shipped"]["test_accuracy_float32"] - r["test_accuracy"] for r in int8)
  kd = [m.versus(a, b) for m, a, b in ((mlp, "int8 2x512", "int8 2x512 kd"), (cnn, "int8 w24-24-48-48", "int8 w24-24-48-48 kd"))]
  picks = {m.model: chosen(m.model, [(n, r) for n, r in m.runs.items() if r.get("shipped")]) for m in (mlp, cnn)}
  small, big = cnn.runs[picks["mnist_convnet"]], cnn.runs["channels 48 aug long"]
  kb = lambda r: r["shipped"]["wire_bytes"] / 1024
  before = big["params"] * 2 / 1024   # the float16 file it replaces, without its header
  return ("**Bytes: int8, then distillation, then width.** Rounding the weights to int8 with a scale per output channel costs at most "
          f"{max(cost, 0):.2f} points over the {len(int8)} int8 configurations (accuracy before rounding against as shipped, in their table), so "
          "every byte after that is the network's. Distillation from the 48-channel CNN's softened outputs "
          f"{_choose(all(d[2] for d in kd), 'pays in both models', 'does not pay in both models')}: the 2x512 MLP {mlp.said('int8 2x512', 'int8 2x512 kd')}, "
          f"the 24-48 CNN {cnn.said('int8 w24-24-48-48', 'int8 w24-24-48-48 kd')}. " +
          _choose(mlp.a("int8 2x512") < TARGETS["mnist_mlp"] <= mlp.a("int8 2x512 kd"), "It is what lets the small MLP reach its target: without it "
                  f"the 2x512 MLP reads {mlp.acc('int8 2x512')}, under {TARGETS['mnist_mlp']:g} %. ", "") +
          f"The CNN gives up {big['test_accuracy'] - small['test_accuracy']:.2f} points to the 48-channel one while its width falls: {picks['mnist_convnet']} reads {small['test_accuracy']:.2f}% from {kb(small):.0f} KB, where the 48-channel CNN read "
          f"{big['test_accuracy']:.2f}% from about {before:.0f} KB of float16 weights ({before / kb(small):.0f}x the bytes). "
          f"The MLP pays for having no convolutions: its cheapest run at {TARGETS['mnist_mlp']:g} %, {picks['mnist_mlp']}, still needs "
          f"{kb(mlp.runs[picks['mnist_mlp']]):.0f} KB. " + " ".join(_seeds_of_pick(m, picks[m.model]) for m in (mlp, cnn)))

def _seeds_of_pick(m:_Facts, pick:str) -> str:
  """What the shipped run's other seeds say: the rule picks one run, and a rerun of its configuration gets the mean."""
  if pick not in m.stats: return f"The shipped {m.model} ran with one seed."
  mean, sd, n, lo, hi = m.stats[pick]
  target, shipped = TARGETS[m.model], m.a(pick)
  verdict = (f"its mean reaches {target:g} % too" if mean >= target else
             f"its mean is under {target:g} %; the shipped weights are its {'best' if shipped >= hi else 'a lucky'} seed, and a rerun of the "
             "configuration would most likely read less")
  return f"The shipped {m.model} ({pick}, {shipped:.2f}%) over {n} seeds reads {mean:.2f} ± {sd:.3f} % ({lo:.2f}–{hi:.2f}): {verdict}."

# ---------------------------------------------------------------- the README's model table

def readme_model_table() -> str:
  """The README's model table: the models the site serves (its manifest, webapp/models.json), from their metadata."""
  rows = ["| model | architecture | parameters | test accuracy | weights | trained |", "|---|---|---|---|---|---|"]
  for entry in json.loads((ROOT / "webapp" / "models.json").read_text())["models"]:
    if entry["role"] != "predict": continue
    m, name, weights = entry["meta"], entry["name"], entry["meta"]["files"]["weights"]["bytes"]
    size = f"{weights / 2**20:.1f} MB" if weights >= 2**20 else f"{weights / 1024:.0f} KB"
    rows.append(f"| `{name}` | {m['architecture']} | {m['params']:,} | {m['test_accuracy']:.2f} % | {size} | "
                f"{m['config']['steps']} steps, {m['training']['seconds']:.0f} s on {m['training']['device']} |")
  return "\n".join(rows)

def update_readme(path:Path=ROOT / "README.md"):
  text = path.read_text()
  start, end = text.index("<!-- models:start"), text.index("<!-- models:end -->")
  head = text[start:text.index("\n", start) + 1]
  path.write_text(text[:start] + head + readme_model_table() + "\n" + text[end:])
