"""sweep.py runs end to end on Ray (a local cluster, and a simulated cluster of two nodes), survives a killed worker,
resumes after Ctrl-C; HYPERPARAMETERS.md is what the committed results generate and its analysis follows them; the
committed models' accuracy is what tinygrad computes from their weights."""
import json, os, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path
import pytest
from conftest import ROOT, mnist_dir, sigint_ignored
import sweep, sweep_report, sweep_trainers

def _sweep(*args, **env):
  return subprocess.run([sys.executable, str(ROOT / "sweep.py"), *args], capture_output=True, text=True, timeout=900, cwd=ROOT,
                        env={**os.environ, "MNIST_DIR": mnist_dir(), **env})

def _start(*args, **env) -> subprocess.Popen:
  """The sweep as a background job of a shell (or CI) starts it: with SIGINT ignored, which Ctrl-C must still stop."""
  return subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env={**os.environ, "MNIST_DIR": mnist_dir(), **env}, preexec_fn=sigint_ignored)

def _until(condition, timeout:float, what:str):
  end = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > end: raise TimeoutError(what)
    time.sleep(0.1)

def _lines(text:str) -> list[str]: return text.replace("\r", "\n").splitlines()

def _worker_of(script:str) -> int|None:
  """The Ray worker process whose task runs the training script `script` (the script's parent), if any."""
  for proc in Path("/proc").iterdir():
    try:
      if proc.name.isdigit() and script in (proc / "cmdline").read_bytes().decode(errors="replace"):
        parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        if b"ray::" in Path(f"/proc/{parent}/cmdline").read_bytes(): return parent
    except (OSError, ValueError, IndexError): continue
  return None

@pytest.mark.slow
@pytest.mark.first
def test_the_quick_sweep_on_ray_survives_a_bad_run_ctrl_c_and_a_killed_worker_and_writes_a_report(tmp_path):
  """The quick sweep, end to end on Ray. On a local cluster, with SEED=oops (which breaks the runs that take the seed from
  the environment; the seeded reruns set their own), each bad run fails once, with the script's one-line error, and the
  others go on; Ctrl-C once one has finished stops the sweep, keeping it. Resumed on a simulated cluster of two one-core
  nodes, only what is missing runs; the runs spread over both nodes (the results say which ran what); a Ray worker
  killed in the middle of a run (its training process dies with it) is retried by Ray, and the sweep completes with every
  result and writes the report."""
  results, report = tmp_path / "sweep.json", tmp_path / "HYPERPARAMETERS.md"
  # one run at a time, so that a run is still going when the first result lands (two at once could both finish before
  # the Ctrl-C, as they did in one CI run)
  first = _start("--quick", "--only", "mnist_mlp", "--jobs", "1", "--results", str(results), "--out", str(report), SEED="oops")
  _until(lambda: results.exists() or first.poll() is not None, 600, "no run finished")
  first.send_signal(signal.SIGINT)                                                     # Ctrl-C once one run is in
  _, stderr = first.communicate(timeout=120)
  failed = [l for l in _lines(stderr) if "run failed:" in l]
  assert len(failed) == 2 and all(l.endswith("exit 2: error: SEED='oops' is not a valid int") for l in failed), stderr[-3000:]
  ours = [l for l in _lines(stderr) if l.strip() and not l.startswith(("/", "[", " ", "***"))]   # not Ray's own C++ traces
  assert first.returncode == 1 and "interrupted; the finished runs are in" in ours[-1], stderr[-2000:]
  kept = json.loads(results.read_text())
  assert 1 <= len(kept) <= 2 and all(r["env"]["SEED"] == "1" and r["where"]["cpu_threads"] == 1 for r in kept.values())

  os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
  from ray.cluster_utils import Cluster
  cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
  cluster.add_node(num_cpus=1)
  try:
    second = _start("--quick", "--address", cluster.address, "--results", str(results), "--out", str(report))
    _until(lambda: _worker_of("mnist_convnet.py") or second.poll() is not None, 300, "no CNN run started")
    os.kill(_worker_of("mnist_convnet.py"), signal.SIGKILL)
    stdout, stderr = second.communicate(timeout=900)
  finally: cluster.shutdown()
  assert second.returncode == 0, stderr[-3000:]
  assert f"{8 - len(kept)} runs to do, {len(kept)} already" in stdout
  data = json.loads(results.read_text())
  assert len(data) == 8 and all(0 <= r["test_accuracy"] <= 100 and r["loss"] and r["params"] > 0 for r in data.values())
  # the bytes each run's weights cost on the wire, as shipped (the report's accuracy per byte reads them)
  assert all(r["shipped"]["weights_dtype"] == "float16" and 0 < r["shipped"]["wire_bytes"] <= r["shipped"]["weights_bytes"] for r in data.values())
  resumed = {k: r for k, r in data.items() if k not in kept}
  assert len({r["where"]["node"] for r in resumed.values()}) == 2, [r["where"] for r in resumed.values()]
  started = [l.split("started ", 1)[1].split(" on ")[0] for l in _lines(stderr) if "started " in l]
  assert len(started) == len(resumed) + 1 and len(set(started)) == len(resumed), started   # one run started twice: the killed one
  assert _worker_of("mnist_convnet.py") is None                                        # no training process left behind
  text = report.read_text()
  assert "## mnist_mlp" in text and "## mnist_convnet" in text and text.count("★") == 2
  assert "### mnist_mlp: seed noise" in text and "| baseline → one-cycle |" in text and "## Analysis" not in text
  for png in ("mnist_mlp_curves.png", "mnist_convnet_curves.png", "mnist_mlp_confusion.png", "mnist_convnet_confusion.png"):
    assert (tmp_path / "results" / png).stat().st_size > 1000
  assert "0 runs to do" in _sweep("--quick", "--results", str(results), "--out", str(report)).stdout

def test_a_gpu_request_where_there_is_none_is_one_line(tmp_path):
  """...on a machine where a cluster that is gone left its address behind (as a killed test or sweep does): the sweep
  starts its own and is not misled into joining the dead one."""
  ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))          # short: Ray's socket paths live under it
  (ray_tmp / "ray").mkdir()
  (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
  start = time.monotonic()
  try: proc = _sweep("--quick", "--only", "mnist_mlp", "--results", str(tmp_path / "s.json"), "--out", str(tmp_path / "H.md"),
                     DEV="CUDA", RAY_TMPDIR=str(ray_tmp))
  finally: shutil.rmtree(ray_tmp, ignore_errors=True)
  assert proc.returncode == 1 and time.monotonic() - start < 120
  assert proc.stderr.strip().splitlines()[-1].startswith("error: the runs train on a GPU (DEV=CUDA) and ask for 0.25 GPU each, but the Ray cluster has 0 GPUs")
  assert not (tmp_path / "s.json").exists()

def _key(model, overrides): return sweep.run_key(model, sweep.run_env(model, overrides, False))

def _report(results:dict, out) -> str:
  trainers = json.loads((ROOT / "results" / "trainers.json").read_text())
  sweep_report.write_report(sweep.CONFIGS, results, out, _key, sweep.BASES, sweep.SCRIPTS, sweep.COMPARISONS, sweep.SEEDS, sweep.HIGHLIGHT,
                            trainers=sweep_trainers.section(sweep_trainers.CANDIDATES, trainers, sweep_trainers.SEEDS))
  return out.read_text()

def test_hyperparameters_md_is_generated_from_the_committed_results(tmp_path):
  results = json.loads((ROOT / "results" / "sweep.json").read_text())
  assert _report(results, tmp_path / "HYPERPARAMETERS.md") == (ROOT / "HYPERPARAMETERS.md").read_text()
  for model, rows in sweep.CONFIGS.items():
    assert sum(_key(model, o) in results for _, o, _ in rows) >= 12

def _runs_of(model:str, name:str) -> list[str]:
  """The result keys of a configuration: its own run and its seeded reruns."""
  overrides = dict((n, o) for n, o, _ in sweep.CONFIGS[model])[name]
  return [_key(model, o) for o in [overrides, *({**overrides, "SEED": s} for s in sweep.SEEDS)]]

def test_the_analysis_follows_the_results(tmp_path):
  """Every comparative word is decided from the results: flip one result in a copy of the results file and the sentence
  that compares it says the opposite."""
  results = json.loads((ROOT / "results" / "sweep.json").read_text())
  text = _report(results, tmp_path / "before.md")
  assert "A one-cycle schedule (warm-up, then cosine decay to zero) raises the MLP" in text and "for the MLP it is the largest gain" in text
  assert "a third hidden layer (99.36%) adds little" in text
  for key in _runs_of("mnist_mlp", "one-cycle"):          # one-cycle, on every seed, now worse than the constant rate
    if key in results: results[key]["test_accuracy"] = results[key]["test_accuracy"] - 1.0
  for key in _runs_of("mnist_mlp", "deep wide long"):     # and the third layer clearly worse
    if key in results: results[key]["test_accuracy"] = results[key]["test_accuracy"] - 0.5
  text = _report(results, tmp_path / "after.md")
  assert "A one-cycle schedule (warm-up, then cosine decay to zero) lowers the MLP" in text and "largest gain" not in text
  assert "a third hidden layer (98.86%) costs accuracy" in text

def test_a_configuration_the_analysis_needs_stops_the_report_with_one_line(tmp_path):
  results = {k: v for k, v in json.loads((ROOT / "results" / "sweep.json").read_text()).items() if k not in _runs_of("mnist_convnet", "silu")}
  with pytest.raises(sweep_report.ReportError, match="needs mnist_convnet 'silu'"): _report(results, tmp_path / "HYPERPARAMETERS.md")
  (tmp_path / "sweep.json").write_text(json.dumps(results))
  proc = _sweep("--report", "--results", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "H.md"))
  assert proc.returncode == 1 and proc.stderr.strip().startswith("error: the analysis needs mnist_convnet 'silu'") and len(proc.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "H.md").exists()

def test_readme_model_table_matches_the_metadata():
  assert sweep_report.readme_model_table() in (ROOT / "README.md").read_text()

@pytest.mark.parametrize("model", ["mnist_mlp", "mnist_convnet"])
def test_the_shipped_models_are_the_ones_the_reports_rule_chooses(model):
  results = json.loads((ROOT / "results" / "sweep.json").read_text())
  runs = [(name, results[_key(model, o)]) for name, o, _ in sweep.CONFIGS[model] if results.get(_key(model, o), {}).get("shipped")]
  pick = dict(runs)[sweep_report.chosen(model, runs)]
  meta = json.loads((ROOT / "webapp" / model / f"{model}.json").read_text())
  assert (meta["params"], meta["test_accuracy"], meta["config"]["steps"]) == (pick["params"], pick["test_accuracy"], int(pick["env"]["STEPS"]))
  assert pick["shipped"]["weights_dtype"] in meta["weights_dtype"]
  assert meta["test_accuracy"] >= sweep_report.TARGETS[model]

@pytest.mark.parametrize("name", ["mnist_mlp", pytest.param("mnist_convnet", marks=pytest.mark.slow)])
def test_committed_models_accuracy_recomputed_with_tinygrad(mnist_test_set, shipped_logits, name):
  target = sweep_report.TARGETS[name]
  meta = json.loads((ROOT / "webapp" / name / f"{name}.json").read_text())
  y = mnist_test_set[1]
  preds = shipped_logits(name).argmax(1)
  accuracy = round(float((preds == y).mean() * 100), 2)
  assert accuracy == round(meta["test_accuracy"], 2) and accuracy >= target

# ---------------------------------------------------------------- the page trainers' family

def test_the_quick_trainer_sweep_exports_trains_in_the_pages_loop_and_reports(tmp_path):
  """`sweep.py --quick --trainers`: a toy trainer exported by the real script, trained by the page's loop in Node, kept in
  trainers.json with what it ran, shown in the report with the rule's choice; a rerun runs and saves nothing."""
  args = ["--quick", "--trainers", "--results", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "H.md")]
  proc = _sweep(*args)
  assert proc.returncode == 0, proc.stderr[-2000:]
  (key, run), = json.loads((tmp_path / "trainers.json").read_text()).items()
  (name, network, ((epochs, lr),), _), = sweep_trainers.QUICK["mnist_mlp"]
  assert key == sweep_trainers.run_key("mnist_mlp", network, epochs, lr, "1")
  assert run["steps"] == sweep_trainers.shipped_steps(epochs, 64) and run["threads"] == sweep_trainers.THREADS and run["seconds"] > 0
  assert run["accuracy"] > 60 and run["architecture"] == "MLP 784 -> 1x32 relu -> 10"   # 47 steps of the page's loop learned digits
  assert json.loads((tmp_path / "trainer_exports" / "mnist_mlp-32-batch-64" / "export.json").read_text())["WIDTH"] == "32"
  report = (tmp_path / "H.md").read_text()
  assert f"By it: **{name}**" in report and "WIDTH=32 DEPTH=1 BS=64 LR=0.01 python3 mnist_mlp.py" in report
  results = json.loads((tmp_path / "trainers.json").read_text())   # a rerun: nothing to do, nothing saved, no Node asked for
  again = sweep_trainers.sweep(sweep_trainers.QUICK, ["1"], results, lambda r: pytest.fail("a rerun saved results"), tmp_path / "trainer_exports")
  assert again == results

def test_the_trainer_sweep_without_node_is_one_line(tmp_path):
  bare = tmp_path / "bin"
  bare.mkdir()
  proc = _sweep("--quick", "--trainers", "--results", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "H.md"), PATH=str(bare))
  assert proc.returncode == 1 and proc.stderr.strip() == "error: node is not on PATH: the page's loop runs in Node 20 (apt-get install nodejs)", proc.stderr
  assert not (tmp_path / "trainer_exports").exists()

def _setting(seconds:float, accuracies:list[float], name:str) -> dict:
  return {"name": name, "seconds": seconds, "worst": min(accuracies), "runs": [{"accuracy": a} for a in accuracies]}

def test_the_trainer_rule_takes_the_quickest_that_reaches_the_target_on_every_seed():
  quick_but_one_seed_short = _setting(3.0, [98.3, 97.9, 98.2], "a")
  slower_every_seed = _setting(4.0, [98.0, 98.1, 98.2], "b")
  slowest = _setting(6.0, [98.5, 98.6, 98.4], "c")
  assert sweep_trainers.choice("mnist_mlp", [quick_but_one_seed_short, slowest, slower_every_seed])["name"] == "b"
  assert sweep_trainers.choice("mnist_convnet", [quick_but_one_seed_short, slowest, slower_every_seed])["name"] == "c"   # none reaches 99
  assert sweep_trainers.choice("mnist_mlp", []) is None

@pytest.mark.parametrize("model", ["mnist_mlp", "mnist_convnet"])
def test_the_shipped_trainers_are_the_ones_the_trainer_sweep_chose(model):
  """The manifest's trainer is the network, batch, epochs and learning rate that results/trainers.json's rule chooses,
  and that choice reached the target on every seed."""
  results = json.loads((ROOT / "results" / "trainers.json").read_text())
  pick = sweep_trainers.choice(model, sweep_trainers.settings(model, sweep_trainers.CANDIDATES, results, sweep_trainers.SEEDS))
  manifest = json.loads((ROOT / "webapp" / "models.json").read_text())["models"]
  meta, = [m["meta"] for m in manifest if m["role"] == "train" and m["name"] == f"{model}_trainer"]
  batch = int(pick["network"]["BS"])
  assert meta["architecture"] == pick["runs"][0]["architecture"] and meta["params"] == pick["runs"][0]["params"]
  assert (meta["fit"]["batch"], meta["fit"]["epochs"], meta["config"]["steps"]) == (batch, round(pick["epochs"], 2), sweep_trainers.shipped_steps(pick["epochs"], batch))
  assert abs(meta["fit"]["lr"] - pick["lr"]) < 1e-6 * pick["lr"]
  assert meta["wasm_beam"] == int(pick["network"].get("WASM_BEAM", sweep_trainers.EXPORT_BASE["WASM_BEAM"]))
  assert pick["worst"] >= sweep_trainers.TARGETS[model]

@pytest.mark.parametrize("text, why", [('{"x": ', "is not a readable results file"), ("[1]", "is not a results file")])
def test_a_corrupt_results_file_is_one_line_and_left_as_it_is(tmp_path, text, why):
  (tmp_path / "sweep.json").write_text(text)
  proc = _sweep("--report", "--results", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "H.md"))
  assert proc.returncode == 1 and proc.stderr.strip().startswith(f"error: {tmp_path / 'sweep.json'} {why}") and len(proc.stderr.strip().splitlines()) == 1
  assert (tmp_path / "sweep.json").read_text() == text and not (tmp_path / "H.md").exists()

def test_the_analysis_says_what_the_shipped_runs_seeds_read(tmp_path):
  """The rule picks one run; the analysis says whether its configuration's mean over the seeds also reaches the target,
  decided from the results: lift the CNN pick's other seeds and it says so."""
  results = json.loads((ROOT / "results" / "sweep.json").read_text())
  assert "The shipped mnist_convnet (int8 w12-12-24-24 kd, 99.61%) over 3 seeds reads 99.55" in _report(results, tmp_path / "before.md")
  assert "its mean is under 99.6 %; the shipped weights are its best seed" in (tmp_path / "before.md").read_text()
  for key in _runs_of("mnist_convnet", "int8 w12-12-24-24 kd")[1:]: results[key]["test_accuracy"] = 99.62
  assert "int8 w12-12-24-24 kd, 99.61%) over 3 seeds reads 99.62 ± 0.006 % (99.61–99.62): its mean reaches 99.6 % too" in _report(results, tmp_path / "after.md")
