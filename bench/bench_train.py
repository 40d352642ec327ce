"""Training step time per model on this machine (tinygrad's default device, or DEV=...). Prints a table.

  python bench/bench_train.py            # defaults of both scripts, and the shipped architectures
"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tinygrad import Device
from mnist_data import load_mnist
from training import train, training_knobs
import mnist_mlp, mnist_convnet

CASES = [  # name, model, model config, batch size
  ("MLP 784-512-512-10", mnist_mlp.MLP, dict(width=512, depth=2, dropout=0.0), 128),
  ("MLP default (2x1024, dropout)", mnist_mlp.MLP, dict(width=1024, depth=2, dropout=0.2), 128),
  ("MLP shipped (3x1024, dropout)", mnist_mlp.MLP, dict(width=1024, depth=3, dropout=0.2), 128),
  ("CNN default (32 channels)", mnist_convnet.ConvNet, dict(channels=32), 128),
  ("CNN shipped (48 channels)", mnist_convnet.ConvNet, dict(channels=48), 128),
]

def bench(model, bs:int, augment:bool, steps:int) -> float:
  """ms per step in steady state: from the end of step 5 (JIT captured, kernels compiled) to the end of step 5 + steps."""
  cfg = {**training_knobs({}), "batch_size": bs, "aux_lr": 1e-3, "steps": 5 + steps, "log_every": 5}
  if not augment: cfg.update(affine=0, thicken_p=0.0, thin_p=0.0)
  X, Y, _, _ = load_mnist()
  times = train(model, cfg, X, Y)["log_seconds"]
  return (times[-1] - times[0]) / steps * 1000

if __name__ == "__main__":
  steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
  print(f"device {Device.DEFAULT}, {steps} timed steps\n")
  print("| model | BS | ms/step, no augmentation | ms/step, with augmentation |\n|---|---|---|---|")
  for name, cls, cfg, bs in CASES:
    plain, aug = bench(cls(**cfg), bs, False, steps), bench(cls(**cfg), bs, True, steps)
    print(f"| {name} | {bs} | {plain:.1f} | {aug:.1f} |", flush=True)
