"""Training learns: a few in-process steps lower the loss on real digits (fast), and short runs of both real scripts
(the quick_exports fixture) reach more than 80% on all 10 000 test images."""
import numpy as np
import pytest

def test_a_few_steps_on_real_digits_lower_the_loss(mnist_test_set):
  from tinygrad import Tensor
  from training import train, training_knobs
  import mnist_mlp
  x, y = mnist_test_set
  Tensor.manual_seed(0)
  cfg = {**training_knobs({}), "steps": 40, "batch_size": 64, "lr": 3e-3, "schedule": "constant", "affine": 0, "thicken_p": 0.0,
         "thin_p": 0.0, "aux_lr": 1e-3, "log_every": 5}
  history = train(mnist_mlp.MLP(32, 1), cfg, Tensor(x[:2000]), Tensor(y[:2000].astype(np.int32)))
  losses = [l for _, l in history["loss"]]
  assert len(losses) == 8 and losses[0] > 1.5 and losses[-1] < 0.7 * losses[0], losses

@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_convnet"])
def test_short_training_beats_80_percent(quick_exports, name):
  folder, metrics = quick_exports[name]
  assert metrics["test_accuracy"] > 80, metrics["test_accuracy"]
  assert sum(map(sum, metrics["confusion"])) == 10000                     # evaluated on the whole test set
  assert metrics["loss"][0][1] > metrics["final_loss"]                      # it learned something
