"""An independent NumPy implementation of the page's preprocessing (webapp/js/preprocess.js), for cross-checking.

  python tests/preprocess_reference.py CASES.json   # reads {"cases": [{"width", "height", "gray": [...]}]}, prints outputs

Written with resampling matrices instead of the JS loops, so that agreement means something.
"""
import json, sys
import numpy as np

SIZE, BOX, CENTRE, THRESHOLD = 28, 20, 14, 0.1

def _box_matrix(start:int, length:int, cells:int, total:int) -> np.ndarray:
  """(cells, total): row i averages the source interval [start + i*step, start + (i+1)*step)."""
  step = length / cells
  edges = start + step * np.arange(cells + 1)
  lo, hi = edges[:-1, None], edges[1:, None]
  src = np.arange(total)[None, :]
  overlap = np.clip(np.minimum(hi, src + 1) - np.maximum(lo, src), 0, None)
  return overlap / step

def round_half_up(v:float) -> int: return int(np.floor(np.round(v * 1e6) / 1e6 + 0.5))

def preprocess(gray:np.ndarray, mean:float, std:float):
  ys, xs = np.nonzero(gray > THRESHOLD)
  if len(ys) == 0: return None
  y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
  bh, bw = y1 - y0, x1 - x0
  scale = BOX / max(bh, bw)
  dh, dw = max(1, round_half_up(bh * scale)), max(1, round_half_up(bw * scale))
  digit = _box_matrix(y0, bh, dh, gray.shape[0]) @ gray.astype(np.float64) @ _box_matrix(x0, bw, dw, gray.shape[1]).T
  mass = digit.sum()
  cy = (digit.sum(1) * np.arange(dh)).sum() / mass
  cx = (digit.sum(0) * np.arange(dw)).sum() / mass
  oy, ox = round_half_up(CENTRE - cy), round_half_up(CENTRE - cx)
  image = np.zeros((SIZE + 2 * dh + 2 * SIZE, SIZE + 2 * dw + 2 * SIZE))       # a margin, then crop: clipping for free
  pad_y, pad_x = dh + SIZE, dw + SIZE
  image[pad_y + oy:pad_y + oy + dh, pad_x + ox:pad_x + ox + dw] = np.minimum(digit, 1)
  image = image[pad_y:pad_y + SIZE, pad_x:pad_x + SIZE].astype(np.float32)
  return image, ((image - mean) / std).astype(np.float32)

if __name__ == "__main__":
  spec = json.load(open(sys.argv[1]))
  out = []
  for case in spec["cases"]:
    gray = np.array(case["gray"], dtype=np.float64).reshape(case["height"], case["width"])
    r = preprocess(gray, spec["mean"], spec["std"])
    out.append(None if r is None else {"image": r[0].ravel().tolist(), "input": r[1].ravel().tolist()})
  json.dump(out, sys.stdout)
