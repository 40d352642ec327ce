"""Measuring a model as it ships: its logits on a set of images, the test-set report the page shows, and the rounding of
its weights to the precision the weights file stores (so that the accuracy measured is the accuracy of what ships).
Training and the exporter both use it; it imports neither.
"""
import base64
import numpy as np
from mnist_data import N_CLASSES, normalize

def predict(model, X, batch_size:int=1000) -> np.ndarray:
  """The logits for uint8 images X (a tinygrad Tensor) in eval mode (no dropout, batch-norm running statistics)."""
  from tinygrad import Tensor
  # each batch a fresh tensor of the same shape, so tinygrad compiles the forward once: a slice of X would bake its
  # offset into the kernels and compile them anew for every batch (10x the time for the test set)
  images = X.numpy()
  return np.concatenate([model(normalize(Tensor(images[i:i + batch_size], device=X.device))).numpy() for i in range(0, X.shape[0], batch_size)])

def evaluate(model, X, Y) -> float:
  """Test accuracy in percent, as the report computes it."""
  return test_report(predict(model, X), Y.numpy())["accuracy"]

def _per_class(confusion:np.ndarray) -> list[dict]:
  rows = []
  for c in range(N_CLASSES):
    tp, predicted, actual = confusion[c, c], confusion[:, c].sum(), confusion[c].sum()
    precision, recall = tp / max(predicted, 1), tp / max(actual, 1)
    rows.append({"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                 "f1": round(float(2 * precision * recall / max(precision + recall, 1e-12)), 4), "support": int(actual)})
  return rows

def test_report(logits:np.ndarray, labels:np.ndarray, images:np.ndarray|None=None) -> dict:
  """The model's results on the test set, as the page's report shows them: accuracy, the confusion matrix (rows: true
  digit, columns: prediction), per-class precision/recall/F1, and each misread image (index, label, prediction,
  confidence; the 28x28 pixels as base64 of uint8, one image after another) if `images` is given."""
  preds = logits.argmax(1)
  confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
  np.add.at(confusion, (labels, preds), 1)
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  wrong = np.nonzero(preds != labels)[0]
  report = {"accuracy": round(float((preds == labels).mean() * 100), 2),   # exact: one image is 0.01 %
            "confusion": confusion.tolist(), "per_class": _per_class(confusion),
            "misread": {"index": wrong.tolist(), "label": labels[wrong].tolist(), "pred": preds[wrong].tolist(),
                        "confidence": [round(float(p), 4) for p in probs[wrong, preds[wrong]]]}}
  if images is not None: report["misread"]["pixels"] = base64.b64encode(images[wrong].astype(np.uint8).tobytes()).decode()
  return report

# ---------------------------------------------------------------- stored precision

WEIGHT_DTYPES = ("float16", "float32", "int8")
SCALE = ".scale"   # int8: the per-output-channel scales of tensor `name` are tensor `name + SCALE` (float32) in the same file

def quantized(name:str, value:np.ndarray, dtype:str) -> bool:
  """int8 stores the matrices and filters (two dimensions or more: nearly every parameter); biases and batch norm stay
  float16."""
  return dtype == "int8" and value.ndim >= 2

def int8_of(value:np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Symmetric int8 with one scale per output channel (the first axis): q in [-127, 127], value ~ q * scale."""
  flat = value.reshape(value.shape[0], -1).astype(np.float32)
  peak = np.abs(flat).max(axis=1)
  scale = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
  q = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int8)
  return q.reshape(value.shape), scale

def dequantize(q:np.ndarray, scale:np.ndarray) -> np.ndarray:
  """q * scale in float32, one rounding per value: what the page computes from the file, bit for bit."""
  return (q.reshape(q.shape[0], -1).astype(np.float32) * scale[:, None]).reshape(q.shape)

def _rounded(value:np.ndarray, dtype:str) -> np.ndarray|None:
  """`value` as the weights file will hold it (float32), or None where it cannot (not finite in float16: stays float32)."""
  if quantized("", value, dtype):
    for _ in range(8):   # to a fixed point: the scales of the rounded tensor are the scales it was rounded with
      again = dequantize(*int8_of(value))
      if np.array_equal(again, value): return value
      value = again
    return value
  half = value.astype(np.float16)
  return half.astype(np.float32) if np.isfinite(half).all() else None

def round_weights(model, dtype:str="float16") -> int:
  """Round the model's float weights in place to what the weights file stores, so that the accuracy measured next is
  the shipped model's. float16 halves the download, int8 (per-channel scales) halves it again for the matrices and
  filters; the kernels still compute in float32. A tensor whose values do not fit in float16 is left in float32.
  Returns how many values changed."""
  if dtype == "float32": return 0
  from tinygrad import Tensor, dtypes
  from tinygrad.nn.state import get_state_dict
  changed = 0
  for t in get_state_dict(model).values():
    if not dtypes.is_float(t.dtype): continue
    value = t.numpy()
    rounded = _rounded(value, dtype)
    if rounded is None: continue
    changed += int((rounded != value).sum())
    t.assign(Tensor(rounded.astype(np.float32), device=t.device, dtype=t.dtype)).realize()
  return changed

def stored(name:str, value:np.ndarray, dtype:str) -> dict[str, np.ndarray]|None:
  """The tensors the weights file holds for `value`: int8 and its scales, float16 where round_weights made it exact,
  float32 where float16 cannot hold it; None when it was not rounded first (the accuracy measured would not be the
  shipped model's)."""
  if dtype == "float32": return {name: value}
  if quantized(name, value, dtype):
    q, scale = int8_of(value)
    return {name: q, name + SCALE: scale} if np.array_equal(dequantize(q, scale), value) else None
  half = value.astype(np.float16)
  if not np.isfinite(half).all(): return {name: value}
  return {name: half} if np.array_equal(half.astype(np.float32), value) else None

def widened(arrays:dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """A weights file's tensors as float32, int8 ones times their scales (LOAD= of an export)."""
  out = {}
  for k, a in arrays.items():
    if k.endswith(SCALE) and k[:-len(SCALE)] in arrays: continue
    out[k] = dequantize(a, arrays[k + SCALE]) if a.dtype == np.int8 and k + SCALE in arrays else a.astype(np.float32) if a.dtype == np.float16 else a
  return out

# What GitHub Pages compresses (gzip, by file type): text and WebAssembly, not the weights (application/octet-stream)
PAGES_GZIP = (".html", ".js", ".mjs", ".json", ".css", ".svg", ".wasm", ".txt", ".md")

def wire_bytes(name:str, data:bytes) -> int:
  """The bytes a file of this name and content takes on the wire from GitHub Pages."""
  import gzip
  return len(gzip.compress(data, compresslevel=6, mtime=0)) if name.endswith(PAGES_GZIP) else len(data)
