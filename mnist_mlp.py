"""A multilayer perceptron for MNIST, trained with tinygrad and exported for WebGPU.

  STEPS=100 JIT=1 python mnist_mlp.py             # quick run; exports webapp/mnist_mlp/
  WIDTH=1024 DEPTH=3 DROPOUT=0.2 python mnist_mlp.py

Model knobs: WIDTH, DEPTH (hidden layers), ACT (relu|gelu|silu), DROPOUT, BN (batch norm after each hidden layer).
Training knobs (STEPS, BS, LR, OPT, SCHEDULE, WD, augmentation, SEED, OUT, ...) are listed in training.py.
"""
from training import knob, run_script   # first: it checks the environment tinygrad reads as it is imported
from tinygrad import Tensor, nn

ACTIVATIONS = {"relu": Tensor.relu, "gelu": Tensor.gelu, "silu": Tensor.silu}

class MLP:
  def __init__(self, width:int=512, depth:int=2, act:str="relu", dropout:float=0.0, bn:int=0):
    self.layers: list = [lambda x: x.flatten(1)]
    self.taps: dict[int, str] = {}   # layer index -> name: the outputs the page shows inside the model
    size = 28 * 28
    for i in range(depth):
      self.layers += [nn.Linear(size, width), *([nn.BatchNorm(width)] if bn else []), ACTIVATIONS[act], lambda x: x.dropout(dropout)]
      self.taps[len(self.layers) - 1] = f"hidden{i + 1}"
      size = width
    self.layers.append(nn.Linear(size, 10))
    self.taps[len(self.layers) - 1] = "logits"

  def __call__(self, x:Tensor) -> Tensor: return x.sequential(self.layers)

def model_knobs() -> dict:
  return {
    "width":   knob("WIDTH", 1024, lo=1),                              # units per hidden layer
    "depth":   knob("DEPTH", 2, lo=0, hi=16),                          # hidden layers
    "act":     knob("ACT", "relu", choices=tuple(ACTIVATIONS)),        # their activation
    "dropout": knob("DROPOUT", 0.2, lo=0.0, hi=0.95),                  # after each hidden layer, in training
    "bn":      knob("BN", 0, choices=(0, 1)),                          # batch norm after each hidden layer
  }

def describe(m:dict) -> str:
  hidden = f"{m['depth']}x{m['width']} {m['act']}" + (" +BN" if m["bn"] else "") + (f" dropout {m['dropout']}" if m["dropout"] else "")
  return f"MLP 784 -> {hidden} -> 10"

if __name__ == "__main__":
  run_script("mnist_mlp", "MLP", MLP, model_knobs, {"STEPS": 3000, "LR": 1e-3, "OPT": "adam"}, describe)
