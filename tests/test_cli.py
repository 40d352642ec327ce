"""Bad input to the training scripts: exit != 0, one clear line on stderr, and the previous export untouched."""
import hashlib, shutil
import pytest
from conftest import ROOT, run_script

def _fingerprint(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

@pytest.fixture
def previous_export(tmp_path):
  """An export a bad run must leave alone: a copy of the shipped MLP."""
  out = tmp_path / "webapp"
  shutil.copytree(ROOT / "webapp" / "mnist_mlp", out / "mnist_mlp")
  return out, _fingerprint(out / "mnist_mlp")

@pytest.mark.parametrize("env, expect", [
  ({"STEPS": "abc"}, "STEPS='abc' is not a valid int"),
  ({"BS": "0"}, "BS=0 must be >= 1"),
  ({"LR": "fast"}, "LR='fast' is not a valid float"),
  ({"LR": "nan"}, "LR=nan must be a finite number"),
  ({"OPT": "adamax"}, "OPT='adamax' must be one of"),
  ({"WASM_BEAM": "-1"}, "WASM_BEAM=-1 must be >= 0"),
  ({"MNIST_DIR": "/nonexistent/mnist"}, "MNIST_DIR=/nonexistent/mnist is not a folder"),
])
@pytest.mark.parametrize("script", ["mnist_mlp.py", "mnist_convnet.py"])
def test_bad_input_is_one_line_and_keeps_the_export(previous_export, script, env, expect):
  out, before = previous_export
  proc = run_script(script, OUT=out, **{"STEPS": 1, **env})
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], proc.stderr
  assert _fingerprint(out / "mnist_mlp") == before

def test_unwritable_output_folder_fails_before_training(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  proc = run_script("mnist_mlp.py", OUT=blocker / "webapp", STEPS=1, WIDTH=8)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [f"error: OUT={blocker / 'webapp'}: output folder is not writable"]
  assert "test accuracy" not in proc.stdout   # it stopped before spending time on training
