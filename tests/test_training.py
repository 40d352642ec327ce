"""Short runs of both real scripts (the quick_exports fixture) learn: more than 80% on all 10 000 test images."""
import pytest

@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_convnet"])
def test_short_training_beats_80_percent(quick_exports, name):
  folder, metrics = quick_exports[name]
  assert metrics["test_accuracy"] > 80, metrics["test_accuracy"]
  assert sum(map(sum, metrics["confusion"])) == 10000                     # evaluated on the whole test set
  assert metrics["loss"][0][1] > metrics["final_loss"]                      # it learned something
