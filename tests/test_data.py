import gzip, shutil
import numpy as np
import pytest
from conftest import mnist_dir
from mnist_data import load_mnist_numpy, UserError

def test_loader_reads_the_standard_files(monkeypatch):
  monkeypatch.setenv("MNIST_DIR", mnist_dir())
  x_tr, y_tr, x_te, y_te = load_mnist_numpy()
  assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
  assert x_tr.dtype == np.uint8 and y_tr.shape == (60000,) and y_te.shape == (10000,)
  assert np.bincount(y_tr).tolist()[:2] == [5923, 6742] and np.bincount(y_te).tolist()[:2] == [980, 1135]
  assert abs(x_tr.mean() / 255 - 0.1307) < 1e-3 and abs((x_tr / 255).std() - 0.3081) < 1e-3
  assert x_tr.flags.writeable   # CUDA copies fail on read-only arrays

def _copy_dataset(tmp_path):
  for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    shutil.copy(f"{mnist_dir()}/{f}", tmp_path / f)
  return tmp_path

@pytest.mark.parametrize("damage, message", [
  ("missing", "missing t10k-labels-idx1-ubyte.gz"),
  ("not gzip", "not a readable gzip file"),
  ("bad magic", "is corrupt"),
  ("truncated", "is corrupt"),
])
def test_bad_dataset_is_one_clear_error_naming_mnist_dir(tmp_path, monkeypatch, damage, message):
  folder = _copy_dataset(tmp_path)
  target = folder / "t10k-labels-idx1-ubyte.gz"
  raw = gzip.decompress(target.read_bytes())
  if damage == "missing": target.unlink()
  elif damage == "not gzip": target.write_bytes(b"hello")
  elif damage == "bad magic": target.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + raw[4:]))
  elif damage == "truncated": target.write_bytes(gzip.compress(raw[:-10]))
  monkeypatch.setenv("MNIST_DIR", str(folder))
  with pytest.raises(UserError) as e: load_mnist_numpy()
  assert "MNIST_DIR=" in str(e.value) and message in str(e.value) and "\n" not in str(e.value)

def test_mnist_dir_that_is_not_a_folder(monkeypatch, tmp_path):
  monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nope"))
  with pytest.raises(UserError, match="MNIST_DIR=.*is not a folder"): load_mnist_numpy()
