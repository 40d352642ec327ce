"""On-device augmentation: shifts move the centre of mass as asked, the identity is exact, batches keep their order."""
import math
import numpy as np
import pytest
from tinygrad import Tensor
from training import affine, augment

def _blob(cy=12.0, cx=15.0):
  yy, xx = np.mgrid[0:28, 0:28]
  return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6).astype(np.float32)

def _centre_of_mass(img):
  yy, xx = np.mgrid[0:28, 0:28]
  return (img * yy).sum() / img.sum(), (img * xx).sum() / img.sum()

def _affine(img, angle=0.0, scale=1.0, sx=0.0, sy=0.0):
  t = lambda v: Tensor([v], dtype="float32")
  return affine(Tensor(img[None, None]), t(angle), t(scale), t(sx), t(sy)).numpy()[0, 0]

def test_identity_is_exact():
  img = np.random.default_rng(0).random((28, 28), dtype=np.float32)
  assert np.abs(_affine(img) - img).max() < 1e-5

@pytest.mark.parametrize("sx, sy", [(3.0, 0.0), (0.0, -2.5), (1.5, 2.0)])
def test_shift_moves_the_centre_of_mass(sx, sy):
  img = _blob()
  (y0, x0), (y1, x1) = _centre_of_mass(img), _centre_of_mass(_affine(img, sx=sx, sy=sy))
  assert x1 - x0 == pytest.approx(sx, abs=0.02) and y1 - y0 == pytest.approx(sy, abs=0.02)

def test_rotation_turns_about_the_centre():
  img = _blob(cy=13.5, cx=20.5)                      # 7 px right of the centre
  y, x = _centre_of_mass(_affine(img, angle=math.pi / 2))
  assert (y, x) == (pytest.approx(20.5, abs=0.05), pytest.approx(13.5, abs=0.05))   # image y grows downwards: a quarter turn

def test_scale_grows_about_the_centre():
  img = _blob(cy=13.5, cx=17.5)
  y, x = _centre_of_mass(_affine(img, scale=1.5))
  assert (y, x) == (pytest.approx(13.5, abs=0.05), pytest.approx(19.5, abs=0.05))

def test_augment_keeps_each_image_in_its_place_and_in_range():
  """Labels are indexed with the same batch order, so image i must still be (a distortion of) image i."""
  spots = [6.5, 11.5, 16.5, 21.5]                  # 5 px apart; the distortions below move a blob by at most ~2 px
  batch = np.stack([_blob(y, x) for y in spots for x in spots])[:, None]
  cfg = {"affine": 1, "rotate_deg": 5.0, "shift_px": 1.0, "scale": 0.05, "thicken_p": 0.3, "thin_p": 0.2}
  Tensor.manual_seed(3)
  out = augment(Tensor(batch), cfg).numpy()
  assert out.shape == batch.shape and out.min() >= 0 and out.max() <= 1
  similarity = np.einsum("ichw,jchw->ij", out, batch) / np.linalg.norm(out.reshape(16, -1), axis=1)[:, None]
  assert (similarity.argmax(axis=1) == np.arange(16)).all()

def test_thicken_and_thin_change_the_ink():
  img = np.zeros((1, 1, 28, 28), np.float32)
  img[0, 0, 8:20, 13:15] = 1                       # a vertical stroke, 2 px wide
  ink = lambda **p: augment(Tensor(img), {"affine": 0, "rotate_deg": 0, "shift_px": 0, "scale": 0, **p}).numpy().sum()
  assert ink(thicken_p=1.0, thin_p=0.0) > img.sum() * 1.5
  assert ink(thicken_p=0.0, thin_p=1.0) == 0       # a 2 px stroke vanishes under a 3x3 erosion
  assert ink(thicken_p=0.0, thin_p=0.0) == img.sum()
