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

@pytest.mark.slow
def test_a_student_distilled_from_the_cnn_moves_toward_it(mnist_test_set):
  """TEACHER=: the same short run with the shipped CNN as the teacher (all of the loss on its softened outputs) ends with
  other weights than without one, and with outputs nearer the teacher's (a smaller KL divergence on held-out digits)."""
  from tinygrad import Tensor, Context
  from training import train, training_knobs, teacher_model
  from mnist_data import normalize
  from conftest import ROOT
  import mnist_mlp
  x, y = mnist_test_set
  teacher = str(ROOT / "webapp" / "mnist_convnet" / "mnist_convnet.safetensors")
  cfg = {**training_knobs({}), "steps": 60, "batch_size": 64, "lr": 3e-3, "schedule": "constant", "affine": 0, "thicken_p": 0.0,
         "thin_p": 0.0, "aux_lr": 1e-3, "kd_weight": 1.0, "kd_temperature": 4.0}
  held_out = normalize(Tensor(x[5000:5500]).float() / 255)
  with Context(TRAINING=0): soft = (teacher_model(teacher)(held_out) / 4).softmax(-1).numpy()
  def student(with_teacher:bool):
    Tensor.manual_seed(0)
    model = mnist_mlp.MLP(32, 1, dropout=0.0)
    train(model, {**cfg, "teacher": teacher if with_teacher else ""}, Tensor(x[:5000]), Tensor(y[:5000].astype(np.int32)))
    with Context(TRAINING=0): out = (model(held_out) / 4).log_softmax(-1).numpy()
    return model.layers[1].weight.numpy(), float((soft * (np.log(soft + 1e-12) - out)).sum(-1).mean())
  (w_plain, kl_plain), (w_taught, kl_taught) = student(False), student(True)
  assert not np.array_equal(w_plain, w_taught)
  assert kl_taught < 0.8 * kl_plain, (kl_taught, kl_plain)

def test_int8_weights_are_per_channel_symmetric_and_round_once_to_a_fixed_point():
  """The stored int8 and its scales give back exactly the values the model was measured with; rounding again changes
  nothing; a model not rounded first is refused (its measured accuracy would not be what ships); LOAD= widens them."""
  from evaluation import int8_of, dequantize, stored, widened, _rounded
  rng = np.random.default_rng(0)
  w = (rng.standard_normal((8, 3, 5, 5)) * rng.uniform(0.01, 2, (8, 1, 1, 1))).astype(np.float32)
  w[3] = 0                                                                   # a dead channel keeps a usable scale
  r = _rounded(w, "int8")
  q, scale = int8_of(r)
  assert q.dtype == np.int8 and np.abs(q).max() == 127 and (scale > 0).all() and scale.shape == (8,)
  assert np.array_equal(dequantize(q, scale), r) and np.array_equal(_rounded(r, "int8"), r)
  assert np.abs(r - w).max() <= 0.5 * scale.max() + 1e-7                     # within half a step of each channel's scale
  held = stored("layers.0.weight", r, "int8")
  assert set(held) == {"layers.0.weight", "layers.0.weight.scale"} and held["layers.0.weight.scale"].dtype == np.float32
  assert stored("layers.0.weight", w, "int8") is None                         # not rounded: refused
  assert stored("layers.0.bias", np.float32([0.5, 0.25]), "int8")["layers.0.bias"].dtype == np.float16   # vectors stay float16
  assert np.array_equal(widened(held)["layers.0.weight"], r) and set(widened(held)) == {"layers.0.weight"}
