# make serve      - serve the app with the committed models on http://127.0.0.1:8000
# make test       - install what the tests need (Debian packages; pip into .venv; npm), run every test, then each
#                   benchmark in short mode (what CI runs)
# make test-fast  - the inner loop: every module's quick tests, in a few minutes (pytest -m "not slow")
# make css        - rebuild webapp/css/app.css from webapp/css/input.css with the Tailwind CLI
# make bench      - every benchmark in full

# Every Python tool the tests and benchmarks use comes from this virtual environment, created by `make deps` from
# requirements-dev.txt; its bin/ goes first on PATH so that tests find its command-line tools (zizmor) too.
VENV ?= .venv
PYTHON := $(abspath $(VENV))/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# MNIST for tests and training: MNIST_DIR if set, else ../shared/mnist, else downloaded into .data/mnist
MNIST_DIR ?= $(or $(wildcard $(abspath ../shared/mnist)),$(abspath .data/mnist))
export MNIST_DIR
APT_PACKAGES := clang lld llvm-19 lld-19 libvulkan1 mesa-vulkan-drivers chromium firefox-esr webkit2gtk-driver xvfb
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# pytest-xdist: one test process per core; the tests of one browser engine (Firefox, WebKit) share a process and
# its browser (xdist_group), the rest are spread as they come
PYTEST := $(PYTHON) -m pytest -q -n auto --dist loadgroup --durations=15

.PHONY: serve test test-fast bench-quick deps mnist css bench

serve:
	python3 -m http.server 8000 --bind 127.0.0.1 --directory webapp

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
	[ -x $(PYTHON) ] || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	[ node_modules/.package-lock.json -nt package-lock.json ] || PUPPETEER_SKIP_DOWNLOAD=1 npm ci --silent --no-audit --no-fund

mnist:
	@[ -f "$(MNIST_DIR)/t10k-labels-idx1-ubyte.gz" ] || $(PYTHON) -c "import mnist_data; mnist_data.download_mnist('$(MNIST_DIR)')"

test: deps mnist
	node --test tests/js/
	$(PYTEST) tests
	$(MAKE) --no-print-directory bench-quick

test-fast: deps mnist
	node --test tests/js/
	$(PYTEST) -m "not slow" tests

bench-quick:
	$(PYTHON) bench/bench_browser.py --quick
	$(PYTHON) bench/bench_vs_tfjs.py --quick
	$(PYTHON) bench/bench_load.py --quick
	$(PYTHON) bench/bench_finetune.py --quick
	$(PYTHON) bench/bench_accuracy.py --quick
	$(PYTHON) bench/bench_train_page.py --quick
	node bench/bench_gpu.mjs --quick
	node bench/bench_gpu_train.mjs --quick
	node --experimental-wasm-relaxed-simd bench/bench_threads.mjs --quick

css:
	npm run css --silent

bench: deps mnist
	$(PYTHON) bench/bench_sweep.py $(if $(DEV),,--quick-only)
	$(PYTHON) bench/bench_train.py
	$(PYTHON) bench/bench_browser.py
	$(PYTHON) bench/bench_vs_tfjs.py
	$(PYTHON) bench/bench_load.py
	$(PYTHON) bench/bench_finetune.py
	$(PYTHON) bench/bench_accuracy.py
	$(PYTHON) bench/bench_train_page.py
	node bench/bench_gpu.mjs
	node bench/bench_gpu_train.mjs
	node --experimental-wasm-relaxed-simd bench/bench_threads.mjs
