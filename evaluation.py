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

WEIGHT_DTYPES = ("float16", "float32")

def round_weights(model, dtype:str="float16") -> int:
  """Round the model's float weights in place to what the weights file stores, so that the accuracy measured next is
  the shipped model's. float16 halves the download; the kernels still compute in float32. A tensor whose values do not
  fit in float16 is left in float32. Returns how many values changed."""
  if dtype == "float32": return 0
  from tinygrad import Tensor, dtypes
  from tinygrad.nn.state import get_state_dict
  changed = 0
  for t in get_state_dict(model).values():
    if not dtypes.is_float(t.dtype): continue
    value = t.numpy()
    rounded = value.astype(np.float16)
    if not np.isfinite(rounded).all(): continue
    changed += int((rounded.astype(np.float32) != value).sum())
    t.assign(Tensor(rounded.astype(np.float32), device=t.device, dtype=t.dtype)).realize()
  return changed

def stored(value:np.ndarray, dtype:str) -> np.ndarray|None:
  """The array the weights file holds for `value`: float16 where round_weights made it float16-exact, float32 where
  float16 cannot hold it; None when it should be float16 but was not rounded (the accuracy measured would not be the
  shipped model's)."""
  if dtype == "float32": return value
  half = value.astype(np.float16)
  if not np.isfinite(half).all(): return value
  return half if np.array_equal(half.astype(np.float32), value) else None
