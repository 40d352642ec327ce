"""On a phone, one screen: after a digit is drawn with a finger, the canvas, the best guess, its confidence and all ten
bars are inside the viewport without scrolling, in portrait and in landscape; with the inside view open, its compact
strip of the first layer too. In Chromium (real touch input through DevTools) at three phone sizes, and in Firefox
and WebKit at 390x844."""
import numpy as np
import pytest
from conftest import ROOT
from browser import serve, digit_strokes, DISPATCH_STROKES, ON_SCREEN, wait_settled

WEBAPP = ROOT / "webapp"
SHOTS = ROOT / "runs" / "screenshots"
INSIDE_OPEN = ("[...document.querySelectorAll('[data-testid=activations] > [data-layer]')].length > 0 && "
               "[...document.querySelectorAll('[data-testid=activations] > [data-layer]')].every((f) => f.dataset.mean !== '')")

def touch_digit(page, digit, rng):
  """A digit drawn with a finger: DevTools touch events (touchStart, touchMove..., touchEnd), which the browser turns
  into pointer events of type touch, exactly as a touchscreen's."""
  box = page.get_by_test_id("canvas").bounding_box()
  drawing = digit_strokes(digit, 0.7, rng, box["width"] / box["height"])
  page.get_by_test_id("brush").evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(drawing["brush"]))
  cdp = page.context.new_cdp_session(page)
  at = lambda x, y: [{"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]}]
  for points in drawing["strokes"]:
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": at(points[0], points[1])})
    for i in range(2, len(points), 2): cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": at(points[i], points[i + 1])})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
  cdp.detach()

def assert_one_screen(where, portrait:bool, expect:str|None=None, size=None):
  assert where["scroll"] == [0, 0], where                                   # drawing never scrolled the page
  if size: assert where["viewport"] == list(size) and where["width"] <= size[0], where   # nothing wider than the phone (it would zoom out)
  assert where["canvas"] and where["guess"] and where["confidence"] and all(where["bars"]), where
  if portrait: assert where["canvasShare"] >= 0.7, where
  if expect is not None: assert where["prediction"] == expect, where

@pytest.mark.parametrize("size", [(360, 640), pytest.param((390, 844), marks=pytest.mark.slow), pytest.param((844, 390), marks=pytest.mark.slow)])
def test_draw_and_read_the_answer_on_one_phone_screen(chromium_browser, app_url, mnist_test_set, size):
  x, y = mnist_test_set
  context = chromium_browser.new_context(viewport={"width": size[0], "height": size[1]}, device_scale_factor=2, is_mobile=True, has_touch=True)
  page = context.new_page()
  page.goto(app_url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  rng = np.random.default_rng(size[0])
  for i in (0, 1, 2):
    page.get_by_test_id("clear").click()
    page.evaluate("window.scrollTo(0, 0)")
    touch_digit(page, x[i], rng)
    wait_settled(page)
    assert_one_screen(page.evaluate(ON_SCREEN), size[0] < size[1], str(y[i]), size)
  SHOTS.mkdir(parents=True, exist_ok=True)
  page.screenshot(path=str(SHOTS / f"phone-{size[0]}x{size[1]}.png"))
  if size == (390, 844):
    page.get_by_test_id("inside").click()
    page.wait_for_function(INSIDE_OPEN, timeout=60_000)
    page.get_by_test_id("clear").click()
    touch_digit(page, x[3], rng)
    wait_settled(page)
    where = page.evaluate(ON_SCREEN)
    assert_one_screen(where, True, str(y[3]), size)
    assert where["strip"], where                                            # the first layer's maps, live, beside the canvas
    page.screenshot(path=str(SHOTS / "phone-inside-390x844.png"))
  context.close()

@pytest.mark.slow
def test_one_phone_screen_in_firefox_and_webkit(engine_browser, mnist_test_set):
  x, y = mnist_test_set
  rng = np.random.default_rng(5)
  with serve(WEBAPP) as url:
    page = engine_browser.open(390, 844)
    page.goto(url)
    page.wait_for("document.body.dataset.ready === 'true'", timeout=120)
    assert page.evaluate("() => [innerWidth, innerHeight]") == [390, 844]
    for i in (0, 1):
      page.evaluate("() => document.querySelector('[data-testid=clear]').click()")
      page.evaluate(DISPATCH_STROKES, {**digit_strokes(x[i], 0.7, rng), "pointerType": "touch"})
      page.wait_for("document.body.dataset.busy === 'false'", timeout=30)
      assert_one_screen(page.evaluate(ON_SCREEN), True, str(y[i]), (390, 844))
    page.evaluate("() => document.querySelector('[data-testid=inside]').click()")
    page.wait_for(INSIDE_OPEN, timeout=60)
    page.evaluate("() => window.scrollTo(0, 0)")
    where = page.evaluate(ON_SCREEN)
    assert_one_screen(where, True, size=(390, 844))
    assert where["strip"], where
    assert not page.errors, page.errors
    page.close()

# While the trainer trains: its controls, progress and both live curves on one screen (the panel scrolls itself into view)
TRAINER_ON_SCREEN = """() => {
  const inside = (el) => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5; };
  const $ = (id) => document.querySelector(`[data-testid=${id}]`);
  return { viewport: [innerWidth, innerHeight], width: document.documentElement.scrollWidth,
           ...Object.fromEntries(["train-pause", "train-status", "train-loss-chart", "train-accuracy-chart"].map((id) => [id, inside($(id))])),
           progress: inside(document.querySelector("#trainer-panel progress")) };
}"""

@pytest.mark.parametrize("size", [(390, 844), pytest.param((844, 390), marks=pytest.mark.slow)])
def test_the_trainers_live_curves_fit_one_phone_screen(chromium_no_webgpu, app_url, size):
  context = chromium_no_webgpu.new_context(viewport={"width": size[0], "height": size[1]}, device_scale_factor=2, is_mobile=True, has_touch=True)
  page = context.new_page()
  page.goto(app_url)
  page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
  page.get_by_test_id("trainer").tap()
  page.wait_for_function("document.querySelector('[data-testid=train-status]')?.dataset.state === 'idle'", timeout=120_000)
  page.get_by_test_id("train-model").select_option("mnist_mlp_trainer")
  page.get_by_test_id("train-samples").fill("60000")
  page.get_by_test_id("train-start").tap()
  page.wait_for_function("document.querySelector('#trainer-panel progress').value >= 20", timeout=120_000)
  page.wait_for_timeout(600)                                                  # the smooth scroll to the panel ends
  where = page.evaluate(TRAINER_ON_SCREEN)
  assert where.pop("viewport") == list(size) and where.pop("width") <= size[0], where   # nothing wider than the phone (it would zoom out)
  assert all(where.values()), where
  SHOTS.mkdir(parents=True, exist_ok=True)
  page.screenshot(path=str(SHOTS / f"phone-trainer-{size[0]}x{size[1]}.png"))
  page.get_by_test_id("train-stop").tap()
  context.close()
