"""sweep.py runs end to end and resumes; HYPERPARAMETERS.md is what the committed results generate; the committed
models' accuracy is what tinygrad computes from their weights."""
import json, subprocess, sys
import pytest
from conftest import ROOT, mnist_dir
import sweep

def _sweep(*args):
  return subprocess.run([sys.executable, str(ROOT / "sweep.py"), *args], capture_output=True, text=True, timeout=900, cwd=ROOT,
                        env={**__import__("os").environ, "MNIST_DIR": mnist_dir()})

def test_quick_sweep_runs_resumes_and_writes_a_report(tmp_path):
  results, report = tmp_path / "sweep.json", tmp_path / "HYPERPARAMETERS.md"
  first = _sweep("--quick", "--only", "mnist_mlp", "--results", str(results), "--out", str(report))
  assert first.returncode == 0, first.stderr[-2000:]
  assert "4 runs to do, 0 already" in first.stdout                                      # 2 configurations, both again with seed 1
  second = _sweep("--quick", "--results", str(results), "--out", str(report))          # resumes: only the CNN runs are left
  assert second.returncode == 0, second.stderr[-2000:]
  assert "4 runs to do, 4 already" in second.stdout
  data = json.loads(results.read_text())
  assert len(data) == 8 and all(0 <= r["test_accuracy"] <= 100 and r["loss"] and r["params"] > 0 for r in data.values())
  text = report.read_text()
  assert "## mnist_mlp" in text and "## mnist_convnet" in text and text.count("★") == 2
  assert "### mnist_mlp: seed noise" in text and "| baseline → one-cycle |" in text
  for png in ("mnist_mlp_curves.png", "mnist_convnet_curves.png", "mnist_mlp_confusion.png", "mnist_convnet_confusion.png"):
    assert (tmp_path / "results" / png).stat().st_size > 1000
  assert "0 runs to do" in _sweep("--quick", "--results", str(results), "--out", str(report)).stdout

def test_hyperparameters_md_is_generated_from_the_committed_results(tmp_path):
  results = json.loads((ROOT / "results" / "sweep.json").read_text())
  out = tmp_path / "HYPERPARAMETERS.md"
  sweep.write_report(sweep.CONFIGS, results, out, lambda m, o: sweep.run_key(m, sweep.run_env(m, o, False)))
  assert out.read_text() == (ROOT / "HYPERPARAMETERS.md").read_text()
  for model, rows in sweep.CONFIGS.items():
    assert sum(sweep.run_key(model, sweep.run_env(model, o, False)) in results for _, o, _ in rows) >= 12

def test_readme_model_table_matches_the_metadata():
  assert sweep.readme_model_table() in (ROOT / "README.md").read_text()

@pytest.mark.parametrize("name, target", [("mnist_mlp", 99.0), ("mnist_convnet", 99.65)])
def test_committed_models_accuracy_recomputed_with_tinygrad(mnist_test_set, shipped_logits, name, target):
  meta = json.loads((ROOT / "webapp" / name / f"{name}.json").read_text())
  y = mnist_test_set[1]
  preds = shipped_logits(name).argmax(1)
  accuracy = round(float((preds == y).mean() * 100), 2)
  assert accuracy == round(meta["test_accuracy"], 2) and accuracy >= target
