"""A convolutional network for MNIST, trained with tinygrad and exported for WebGPU.

  STEPS=100 JIT=1 python mnist_convnet.py         # quick run; exports webapp/mnist_convnet/
  CHANNELS=48 STEPS=4000 python mnist_convnet.py

Model knobs: CHANNELS (first block; the second has twice as many), ACT (relu|gelu|silu), DROPOUT (before the
classifier), BN (batch norm after each block). Training knobs are listed in training.py.
"""
from training import knob, run_script   # first: it checks the environment tinygrad reads as it is imported
from tinygrad import Tensor, nn

ACTIVATIONS = {"relu": Tensor.relu, "gelu": Tensor.gelu, "silu": Tensor.silu}

class ConvNet:
  """Two blocks of two convolutions and a max-pool, then a linear classifier (after tinygrad's beautiful_mnist)."""
  def __init__(self, channels:int=32, act:str="relu", dropout:float=0.0, bn:int=1):
    c1, c2, a = channels, 2 * channels, ACTIVATIONS[act]
    norm = lambda c: [nn.BatchNorm(c)] if bn else []
    self.layers: list = []
    self.taps: dict[int, str] = {}   # layer index -> name: the outputs the page shows inside the model
    for name, layers in [("conv1", [nn.Conv2d(1, c1, 5), a]), ("conv2", [nn.Conv2d(c1, c1, 5), a, *norm(c1)]), ("pool1", [Tensor.max_pool2d]),
                         ("conv3", [nn.Conv2d(c1, c2, 3), a]), ("conv4", [nn.Conv2d(c2, c2, 3), a, *norm(c2)]), ("pool2", [Tensor.max_pool2d]),
                         ("logits", [lambda x: x.flatten(1).dropout(dropout), nn.Linear(c2 * 3 * 3, 10)])]:
      self.layers += layers                                     # 28 -> 24 -> 20 -> 10 -> 8 -> 6 -> 3 pixels
      self.taps[len(self.layers) - 1] = name

  def __call__(self, x:Tensor) -> Tensor: return x.sequential(self.layers)

def model_knobs() -> dict:
  return {
    "channels": knob("CHANNELS", 32, lo=1, hi=256),                    # of the first block; the second has twice as many
    "act":      knob("ACT", "relu", choices=tuple(ACTIVATIONS)),       # after each convolution
    "dropout":  knob("DROPOUT", 0.0, lo=0.0, hi=0.95),                 # before the classifier, in training
    "bn":       knob("BN", 1, choices=(0, 1)),                         # batch norm after each block
  }

def describe(m:dict) -> str:
  c = m["channels"]
  return f"CNN conv5x{c}-conv5x{c}-pool-conv3x{2*c}-conv3x{2*c}-pool-linear {m['act']}" + (" +BN" if m["bn"] else "") + \
         (f" dropout {m['dropout']}" if m["dropout"] else "")

if __name__ == "__main__":
  run_script("mnist_convnet", "CNN", ConvNet, model_knobs, {"STEPS": 500, "LR": 2e-3, "OPT": "adam", "BS": 128}, describe)
