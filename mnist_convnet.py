"""A convolutional network for MNIST, trained with tinygrad and exported for WebGPU.

  STEPS=100 JIT=1 python mnist_convnet.py         # quick run; exports webapp/mnist_convnet/
  CHANNELS=48 STEPS=4000 python mnist_convnet.py

Model knobs: CHANNELS (first block; the second has twice as many) or WIDTHS (each convolution's, e.g. 8,16,16,32), GAP
(global average pooling before the classifier), ACT (relu|gelu|silu), DROPOUT (before the classifier), BN (batch norm
after each block). Training knobs are listed in training.py.
"""
from training import knob, run_script   # first: it checks the environment tinygrad reads as it is imported
from mnist_data import UserError
from tinygrad import Tensor, nn

ACTIVATIONS = {"relu": Tensor.relu, "gelu": Tensor.gelu, "silu": Tensor.silu}

class ConvNet:
  """Two blocks of two convolutions and a max-pool, then a linear classifier (after tinygrad's beautiful_mnist). Compact
  variants: a width per convolution (`widths`), and global average pooling before the classifier (`gap`: 10 x its
  channels weights instead of 10 x 9 x its channels)."""
  def __init__(self, channels:int=32, act:str="relu", dropout:float=0.0, bn:int=1, widths:list|None=None, gap:int=0):
    w1, w2, w3, w4 = widths or (channels, channels, 2 * channels, 2 * channels)
    a, norm = ACTIVATIONS[act], lambda c: [nn.BatchNorm(c)] if bn else []
    head = (lambda x: x.mean((2, 3))) if gap else (lambda x: x.flatten(1))
    self.layers: list = []
    self.taps: dict[int, str] = {}   # layer index -> name: the outputs the page shows inside the model
    for name, layers in [("conv1", [nn.Conv2d(1, w1, 5), a]), ("conv2", [nn.Conv2d(w1, w2, 5), a, *norm(w2)]), ("pool1", [Tensor.max_pool2d]),
                         ("conv3", [nn.Conv2d(w2, w3, 3), a]), ("conv4", [nn.Conv2d(w3, w4, 3), a, *norm(w4)]), ("pool2", [Tensor.max_pool2d]),
                         ("logits", [lambda x: head(x).dropout(dropout), nn.Linear(w4 * (1 if gap else 3 * 3), 10)])]:
      self.layers += layers                                     # 28 -> 24 -> 20 -> 10 -> 8 -> 6 -> 3 pixels
      self.taps[len(self.layers) - 1] = name

  def __call__(self, x:Tensor) -> Tensor: return x.sequential(self.layers)

def widths_knob() -> list|None:
  """WIDTHS=w1,w2,w3,w4: each convolution's channels (empty: from CHANNELS)."""
  text = knob("WIDTHS", "")
  if not text: return None
  try: widths = [int(w) for w in str(text).split(",")]
  except ValueError: widths = []
  if len(widths) != 4 or not all(1 <= w <= 512 for w in widths): raise UserError(f"WIDTHS={text!r} must be four whole numbers from 1 to 512, e.g. 8,16,16,32")
  return widths

def model_knobs() -> dict:
  return {
    "channels": knob("CHANNELS", 32, lo=1, hi=256),                    # of the first block; the second has twice as many
    "widths":   widths_knob(),                                         # or each convolution's, e.g. 8,16,16,32
    "gap":      knob("GAP", 0, choices=(0, 1)),                        # global average pooling before the classifier
    "act":      knob("ACT", "relu", choices=tuple(ACTIVATIONS)),       # after each convolution
    "dropout":  knob("DROPOUT", 0.0, lo=0.0, hi=0.95),                 # before the classifier, in training
    "bn":       knob("BN", 1, choices=(0, 1)),                         # batch norm after each block
  }

def describe(m:dict) -> str:
  c = m["channels"]
  w1, w2, w3, w4 = m.get("widths") or (c, c, 2 * c, 2 * c)
  return f"CNN conv5x{w1}-conv5x{w2}-pool-conv3x{w3}-conv3x{w4}-pool-{'gap-' if m.get('gap') else ''}linear {m['act']}" + \
         (" +BN" if m["bn"] else "") + (f" dropout {m['dropout']}" if m["dropout"] else "")

if __name__ == "__main__":
  run_script("mnist_convnet", "CNN", ConvNet, model_knobs, {"STEPS": 500, "LR": 2e-3, "OPT": "adam", "BS": 128}, describe)
