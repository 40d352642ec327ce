"""MNIST and the models' input contract: what every model reads, how training feeds it and how the page must prepare
a drawing. Training, the exporter (which writes the contract into each model's metadata) and the tests import it; the
page reads the contract only from that metadata.
"""
import gzip, os, zlib
from pathlib import Path
import numpy as np

class UserError(Exception):
  """A problem with the user's input (env vars, data, paths): reported as one line, no traceback."""

# ---------------------------------------------------------------- the input contract

IMAGE_SIZE, N_CLASSES = 28, 10
INPUT_SHAPE = (1, 1, IMAGE_SIZE, IMAGE_SIZE)     # one image, NCHW float32
MEAN, STD = 0.1307, 0.3081                       # MNIST training-set pixel statistics

def input_contract() -> dict:
  """The contract as the exporter writes it into a model's metadata, for the page and for anyone reusing the model."""
  return {"input_shape": list(INPUT_SHAPE), "mean": MEAN, "std": STD,
          "input": {"layout": "NCHW float32", "foreground": "white", "background": "black", "digit_box_px": 20,
                    "centred_by": "centre of mass", "normalisation": "(pixel / 255 - mean) / std"},
          "output": {"length": N_CLASSES, "meaning": "raw logits for digits 0-9"}}

def normalize(x):
  """uint8 pixels (or floats in [0, 1]), as a tinygrad Tensor or a NumPy array -> (pixel/255 - MEAN) / STD."""
  if isinstance(x, np.ndarray): is_uint8, x = x.dtype == np.uint8, x.astype(np.float32)
  else:
    from tinygrad import dtypes
    is_uint8, x = x.dtype == dtypes.uint8, x.float()
  return ((x / 255 if is_uint8 else x) - MEAN) / STD

# ---------------------------------------------------------------- the data

MNIST_FILES = {"train_images": ("train-images-idx3-ubyte.gz", 2051, 60000), "train_labels": ("train-labels-idx1-ubyte.gz", 2049, 60000),
               "test_images": ("t10k-images-idx3-ubyte.gz", 2051, 10000), "test_labels": ("t10k-labels-idx1-ubyte.gz", 2049, 10000)}
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"   # where tinygrad's own loader downloads from

def _read_idx(path:Path, magic:int, count:int) -> np.ndarray:
  try: raw = gzip.decompress(path.read_bytes())
  except FileNotFoundError: raise UserError(f"MNIST_DIR={path.parent}: missing {path.name}") from None
  except (OSError, EOFError, zlib.error) as e: raise UserError(f"MNIST_DIR={path.parent}: {path.name} is not a readable gzip file ({e})") from None
  header = 16 if magic == 2051 else 8
  fields = np.frombuffer(raw[:header], dtype=">u4") if len(raw) >= header else np.zeros(0)
  want = [magic, count] + ([IMAGE_SIZE, IMAGE_SIZE] if magic == 2051 else [])
  if fields.tolist() != want or len(raw) != header + count * (IMAGE_SIZE**2 if magic == 2051 else 1):
    raise UserError(f"MNIST_DIR={path.parent}: {path.name} is corrupt (header {fields.tolist()}, {len(raw)} bytes; expected {want})")
  data = np.frombuffer(raw, dtype=np.uint8, offset=header).copy()  # a writable copy: CUDA copies fail on read-only memory
  return data.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE) if magic == 2051 else data

def download_mnist(folder:str):
  """Fetch the four MNIST files into `folder` (for a MNIST_DIR on a machine with internet)."""
  import urllib.request
  Path(folder).mkdir(parents=True, exist_ok=True)
  for name, _, _ in MNIST_FILES.values():
    print(f"downloading {name}")
    urllib.request.urlretrieve(MNIST_URL + name, Path(folder) / f".{name}.part")
    os.replace(Path(folder) / f".{name}.part", Path(folder) / name)

def load_mnist_numpy() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(X_train, Y_train, X_test, Y_test) as uint8 arrays, X of shape (N, 1, 28, 28): from MNIST_DIR, else tinygrad's download."""
  if mnist_dir := os.environ.get("MNIST_DIR"):
    folder = Path(mnist_dir)
    if not folder.is_dir(): raise UserError(f"MNIST_DIR={mnist_dir} is not a folder (it should hold the four *-ubyte.gz MNIST files)")
    x_tr, y_tr, x_te, y_te = (_read_idx(folder / name, magic, count) for name, magic, count in MNIST_FILES.values())
  else:
    from tinygrad.nn.datasets import mnist
    try: x_tr, y_tr, x_te, y_te = (t.numpy().copy() for t in mnist(device="CPU"))
    except Exception as e: raise UserError(f"could not download MNIST ({type(e).__name__}); set MNIST_DIR to a folder with the four *-ubyte.gz files") from None
  if len(x_tr) != 60000 or len(x_te) != 10000 or y_tr.max() > 9 or y_te.max() > 9: raise UserError("MNIST data has the wrong shape or labels")
  return x_tr, y_tr, x_te, y_te

def load_mnist(device:str|None=None):
  """The four MNIST arrays as tinygrad Tensors on `device`: images uint8 (N, 1, 28, 28), labels int32."""
  from tinygrad import Tensor
  x_tr, y_tr, x_te, y_te = load_mnist_numpy()
  return (Tensor(x_tr, device=device), Tensor(y_tr.astype(np.int32), device=device),
          Tensor(x_te, device=device), Tensor(y_te.astype(np.int32), device=device))

# ---------------------------------------------------------------- digits shipped with the page

FINETUNE_REPLAY, FINETUNE_HELD_OUT = 512, range(9000, 10000)

def finetune_samples(x_tr:np.ndarray, y_tr:np.ndarray, x_te:np.ndarray, y_te:np.ndarray) -> bytes:
  """webapp/samples/finetune.bin: what fine-tuning in the page mixes into every batch (FINETUNE_REPLAY training digits,
  so that the model does not forget MNIST) and the test digits it measures forgetting on (the last 1 000, which no
  sample elsewhere on the page uses). Layout: u32 n_replay, u32 n_held_out (little-endian), then for each set its labels
  (u8) and its 28x28 images (u8, row-major)."""
  replay = np.sort(np.random.default_rng(0).choice(len(x_tr), FINETUNE_REPLAY, replace=False))
  held = np.asarray(FINETUNE_HELD_OUT)
  parts = [np.array([len(replay), len(held)], dtype="<u4").tobytes()]
  for x, y in ((x_tr[replay], y_tr[replay]), (x_te[held], y_te[held])): parts += [y.astype(np.uint8).tobytes(), x.astype(np.uint8).tobytes()]
  return b"".join(parts)

# ---------------------------------------------------------------- the page's training data

TRAIN_CHUNK = 10_000   # digits per file: the page trains on the first file while the others arrive

def _gzip(data:bytes) -> bytes:
  """gzip with no time stamp or file name: the same digits always give the same bytes (and hash)."""
  import io
  out = io.BytesIO()
  with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as f: f.write(data)
  return out.getvalue()

def page_dataset(x_tr:np.ndarray, y_tr:np.ndarray, x_te:np.ndarray, y_te:np.ndarray) -> dict[str, bytes]:
  """webapp/samples/mnist/: all of MNIST for training in the page, as gzip files (GitHub Pages serves them as they are;
  the page inflates them with DecompressionStream). Each file holds `count` digits: their labels (u8), then their
  28x28 images (u8, row-major); `index.json` lists the files in the order the page fetches them (the first training
  file, the test set, then the rest of the training set) with their SHA-256 and sizes."""
  import hashlib, json
  def chunk(x, y): return _gzip(y.astype(np.uint8).tobytes() + x.astype(np.uint8).tobytes())
  files = {"train-0.bin.gz": (chunk(x_tr[:TRAIN_CHUNK], y_tr[:TRAIN_CHUNK]), "train", TRAIN_CHUNK),
           "test.bin.gz": (chunk(x_te, y_te), "test", len(x_te))}
  for k in range(1, len(x_tr) // TRAIN_CHUNK):
    part = slice(k * TRAIN_CHUNK, (k + 1) * TRAIN_CHUNK)
    files[f"train-{k}.bin.gz"] = (chunk(x_tr[part], y_tr[part]), "train", TRAIN_CHUNK)
  index = {"format": "u8 labels, then u8 28x28 images, gzip", "files": [
    {"file": f, "split": split, "count": n, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for f, (data, split, n) in files.items()]}
  return {**{f: data for f, (data, _, _) in files.items()}, "index.json": (json.dumps(index, indent=1) + "\n").encode()}

SAMPLE_FILES = ("mnist_test_samples.bin", "finetune.bin")

def samples_index(folder:Path) -> bytes:
  """webapp/samples/index.json: the SHA-256 and size of each digit file the page reads from samples/ (it fetches this index
  fresh and checks each file against it before it draws or trains on a digit)."""
  import hashlib, json
  files = {name: {"sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(), "bytes": (folder / name).stat().st_size} for name in SAMPLE_FILES}
  return (json.dumps({"files": files}, indent=1) + "\n").encode()

if __name__ == "__main__":   # python mnist_data.py: rewrite the page's MNIST files (fine-tuning digits, training data) from MNIST_DIR
  samples = Path(__file__).parent / "webapp" / "samples"
  data = load_mnist_numpy()
  (samples / "finetune.bin").write_bytes(finetune_samples(*data))
  (samples / "mnist").mkdir(exist_ok=True)
  for name, content in page_dataset(*data).items(): (samples / "mnist" / name).write_bytes(content)
  (samples / "index.json").write_bytes(samples_index(samples))
  print(f"wrote {samples / 'finetune.bin'}, {samples / 'mnist'}/ and {samples / 'index.json'}")
