"""The app as GitHub Pages serves it (tests/browser.py serve_like_pages: a subpath, gzip, max-age=600, no custom headers):
two copies of it on one origin (a project site and a fork under <user>.github.io) keep their own settings, examples and
offline cache, and each works offline under its own scope; what crosses the wire on a first visit is counted."""
import numpy as np
from conftest import ROOT
from browser import serve_like_pages, draw_digit, wait_settled, Server
from test_finetune import teach

WEBAPP = ROOT / "webapp"

NAMES = """async () => ({
  caches: await caches.keys(),
  databases: (await indexedDB.databases()).map((d) => d.name),
  settings: Object.keys(localStorage),
  dark: document.documentElement.classList.contains("dark"),
  examples: document.querySelector("[data-testid=examples-count]").textContent,
})"""

def _visit(page, url:str):
  page.goto(url)
  page.wait_for_function("() => document.body.dataset.ready === 'true'", timeout=120_000)

def test_two_copies_on_one_origin_keep_their_own_storage_and_each_works_offline(chromium_no_webgpu, mnist_test_set):
  x, y = mnist_test_set
  threes = x[y == 3][:3].reshape(-1, 784)
  with serve_like_pages(WEBAPP, mounts=("/repo/", "/fork/")) as repo:
    fork = repo.replace("/repo/", "/fork/")
    context = chromium_no_webgpu.new_context()
    page = context.new_page()
    for url, taught, dark in ((repo, 1, True), (fork, 2, False)):           # the fork is visited second, on the same origin
      _visit(page, url)
      assert page.evaluate(NAMES)["examples"] == "0 examples", url            # nothing of the other copy's
      teach(page, threes[:taught], 3)
      if dark: page.get_by_test_id("theme").click()
      page.wait_for_function("() => document.body.dataset.offline === 'ready'", timeout=180_000)
    names = page.evaluate(NAMES)
    for site in ("/repo/", "/fork/"):
      assert f"mnist-app-v2@{site}" in names["caches"] and f"mnist-app@{site}" in names["databases"], names
      assert f"theme@{site}" in names["settings"] or site == "/fork/", names
    assert not any("@" not in n for n in names["caches"] + names["databases"] + names["settings"]), names   # nothing shared
    context.set_offline(True)
    for url, taught, dark in ((repo, 1, True), (fork, 2, False)):
      page.goto(url)
      page.wait_for_function("() => document.body.dataset.settled === 'true'", timeout=120_000)
      got = page.evaluate(NAMES)
      assert got["examples"] == f"{taught} example{'s' if taught > 1 else ''}" and got["dark"] == dark, (url, got)
      page.get_by_test_id("clear").click()
      draw_digit(page, x[5], 0.7, np.random.default_rng(5))
      wait_settled(page)
      assert page.get_by_test_id("prediction").text_content() == str(y[5]), url
    context.close()

def test_an_updated_service_worker_deletes_the_caches_it_no_longer_uses_and_keeps_the_visitors_data(chromium_no_webgpu, mnist_test_set):
  x, y = mnist_test_set
  # an older version's leftovers (caches of other versions and of other sites) and a taught example; then this version's worker
  server = Server()
  server.bad["sw.js"] = "500"                                              # no worker yet: the old version's state
  with serve_like_pages(WEBAPP, mounts=("/repo/", "/fork/"), server=server) as repo:
    context = chromium_no_webgpu.new_context()
    page = context.new_page()
    _visit(page, repo)
    teach(page, x[y == 3][:1].reshape(-1, 784), 3)
    page.evaluate("""async () => { for (const name of ["mnist-app-v1", "mnist-app-v1@/repo/", "mnist-app-v2@/fork/", "someone-else"])
                                     await (await caches.open(name)).put("probe.txt", new Response("old")); }""")
    del server.bad["sw.js"]
    page.reload()
    page.wait_for_function("() => document.body.dataset.offline === 'ready'", timeout=180_000)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=60_000)   # claimed: after activate's clean-up
    names = page.evaluate(NAMES)
    assert "mnist-app-v2@/repo/" in names["caches"], names                  # its own cache, now
    assert "mnist-app-v1" not in names["caches"] and "mnist-app-v1@/repo/" not in names["caches"], names   # its site's old ones gone
    assert "mnist-app-v2@/fork/" in names["caches"] and "someone-else" in names["caches"], names           # no other site's touched
    assert names["examples"] == "1 example", names                          # the visitor's data kept
    context.close()
