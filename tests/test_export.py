"""The exporter's output: data, not code (metadata, plan, WGSL, WebAssembly, weights, the site's manifest), bound weights,
the metadata contract, no f16, atomic writes, refusing a broken adapter."""
import hashlib, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from safetensors.numpy import load_file
from conftest import ROOT
import export_utils
from evaluation import round_weights
from exporter import ExportError, files as export_files
from exporter.dawn import check_webgpu
from exporter.wasm import compile_wasm
from mnist_data import MEAN, STD

def read_plan(folder:Path) -> dict: return json.loads((folder / f"{folder.name}.plan.json").read_text())

def build_model(folder:Path):
  """The tinygrad model described by an export's metadata, with the export's weights."""
  import mnist_mlp, mnist_convnet
  from training import load_weights
  meta = json.loads((folder / f"{folder.name}.json").read_text())
  cls = {"mnist_mlp": mnist_mlp.MLP, "mnist_convnet": mnist_convnet.ConvNet}[folder.name]
  return load_weights(cls(**meta["config"]["model"]), str(folder / f"{folder.name}.safetensors")), meta

def _float_state(model):
  from tinygrad import dtypes
  from tinygrad.nn.state import get_state_dict
  return {k for k, v in get_state_dict(model).items() if dtypes.is_float(v.dtype)}

@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_convnet"])
def test_export_files_and_metadata(quick_exports, name):
  folder, metrics = quick_exports[name]
  meta = json.loads((folder / f"{name}.json").read_text())
  assert sorted(p.name for p in folder.iterdir()) == sorted([f"{name}.json", *(f["name"] for f in meta["files"].values()),
                                                              *([meta["wasm_schedules"]] if meta.get("wasm_schedules") else [])])
  # each WebAssembly module also built with relaxed SIMD (FMA), and every program in one threaded module, both ways
  assert set(meta["files"]) == {"plan", "weights", "wasm", "extras_wasm", "wasm_fma", "extras_wasm_fma", "threads_wasm", "threads_wasm_fma",
                                "wgsl", "extras_wgsl", "report"}
  assert not list(folder.glob("*.js")) and not list(folder.glob("*.mjs"))            # data, not code
  assert meta["test_accuracy"] == metrics["test_accuracy"] and meta["mean"] == MEAN and meta["std"] == STD
  assert meta["input_shape"] == [1, 1, 28, 28] and meta["tinygrad_version"] == "0.14.0"
  trainable = {k: a for k, a in load_file(folder / f"{name}.safetensors").items() if ".running_" not in k}   # not BN statistics
  assert meta["params"] == metrics["params"] == sum(a.size for a in trainable.values())
  assert meta["config"]["model"] == metrics["config"]["model"] and meta["architecture"].startswith(("MLP", "CNN"))
  wgsl = {**json.loads((folder / f"{name}.wgsl.json").read_text()), **json.loads((folder / f"{name}.extras.wgsl.json").read_text())}
  assert all("@compute" in k for k in wgsl.values()) and not any("enable f16" in k or "shader-f16" in k for k in wgsl.values())
  assert (folder / f"{name}.wasm").read_bytes()[:4] == b"\0asm"
  # the page asks for each file by its SHA-256, and checks it against it (so does the service worker)
  for key, f in meta["files"].items():
    data = (folder / f["name"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"], key
  assert meta["backends"] == ["webgpu", "wasm"]
  # the site's manifest lists it, with its label and role, and this very metadata
  entry = next(m for m in json.loads((folder.parent / "models.json").read_text())["models"] if m["name"] == name)
  assert entry == {"name": name, "label": {"mnist_mlp": "MLP", "mnist_convnet": "CNN"}[name], "role": "predict", "meta": meta}

@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_convnet"])
def test_every_state_dict_entry_is_a_bound_weight_buffer(quick_exports, name):
  folder, _ = quick_exports[name]
  model, _ = build_model(folder)
  plan, meta = read_plan(folder), json.loads((folder / f"{name}.json").read_text())
  buffers = plan["buffers"]                                                # every backend's buffers, stated once
  weight_buffers = [b for b in buffers if b["kind"] == "weight"]
  state = _float_state(model)
  assert len(weight_buffers) == len(state) and {b["name"] for b in weight_buffers} == state
  tensors = load_file(folder / f"{name}.safetensors")
  assert set(tensors) == state
  # stored as float16 (half the download), computed in float32: each buffer holds twice the stored bytes
  for b in weight_buffers: assert tensors[b["name"]].dtype == np.float16 and b["bytes"] == 2 * tensors[b["name"]].nbytes
  # the image that forward and taps share, and the training step's batch and learning rate
  assert sorted(b["name"] for b in buffers if b["kind"] == "input") == ["images", "input", "labels", "lr"]
  assert plan["inputs"]["forward"] == {"input": next(i for i, b in enumerate(buffers) if b["name"] == "input")}
  # Adam's state for the trained tensors (the last layer): moments from 0, its running beta products from 1
  trains, states = set(plan["train"]["trains"]), {b["name"]: b["init"] for b in buffers if b["kind"] == "state"}
  assert trains and trains <= state and all(k.startswith(sorted(trains)[0].rsplit(".", 1)[0]) for k in trains)
  assert set(states) == {"adam.lr", "adam.b1_t", "adam.b2_t"} | {f"adam.{m}.{k}" for m in "mv" for k in trains}
  assert states["adam.b1_t"] == states["adam.b2_t"] == 1 and all(states[f"adam.{m}.{k}"] == 0 for m in "mv" for k in trains)
  assert [b["name"] for b in buffers if b["kind"] == "output" and b["program"] == "forward"] == ["output"]
  webgpu = plan["webgpu"]
  assert list(webgpu["dispatches"]) == plan["programs"] == ["forward", "taps", "train"]
  in_modules = {i for layout in plan["wasm"].values() for i, o in enumerate(layout["offsets"]) if o is not None}
  assert {i for ds in webgpu["dispatches"].values() for d in ds for i in d["buffers"]} | in_modules == set(range(len(buffers)))
  # the WebAssembly modules read the same weights file: every tensor at its own place in the arena, none overlapping
  modules = {m["file"]: m for m in meta["wasm_modules"]}
  assert set(modules) == set(plan["wasm"]) == {"wasm", "wasm_fma", "extras_wasm", "extras_wasm_fma", "threads_wasm", "threads_wasm_fma"}
  for file, layout in plan["wasm"].items():
    spans = sorted((o, o + b["bytes"]) for b, o in zip(buffers, layout["offsets"]) if o is not None)
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:])) and all(o % 16 == 0 for o, _ in spans), file
    assert all(layout["offsets"][i] is not None for i, b in enumerate(buffers) if b["kind"] == "weight"), file
  base, extras = modules["wasm"], modules["extras_wasm"]
  assert base["programs"] == modules["wasm_fma"]["programs"] and plan["wasm"]["wasm"]["offsets"] == plan["wasm"]["wasm_fma"]["offsets"]
  # the training step comes on demand: its kernels are in the extras files, not in what a first visit loads
  assert "forward" in base["programs"] and "train" not in base["programs"] and extras["programs"] == plan["programs"]
  # one module with every program, for Workers: as many as the contract's maximum, on a memory of the plan's size
  for file in ("threads_wasm", "threads_wasm_fma"):
    assert modules[file]["threads"] == plan["threads"]["max"] > 1 and modules[file]["programs"] == plan["programs"]
    assert plan["wasm"][file]["memory"] % 65536 == 0 and set(plan["wasm"][file]["split"]) <= set(plan["programs"])
  in_forward = {d["kernel"] for d in webgpu["dispatches"]["forward"]}
  assert all(k["file"] == ("wgsl" if i in in_forward else "extras_wgsl") for i, k in enumerate(webgpu["kernels"]))
  wgsl = json.loads((folder / f"{name}.wgsl.json").read_text())
  assert set(wgsl) == {str(i) for i in in_forward}

@pytest.mark.slow
def test_the_c_kernels_compile_to_webassembly_that_computes_the_model(quick_exports, mnist_test_set):
  """Outside a browser: the exported model, loaded by the page's one runtime in Node on WebAssembly (it widens the float16
  weights into the arena), gives logits that match tinygrad's."""
  folder, _ = quick_exports["mnist_convnet"]
  probe = f"""
    import {{ readFileSync }} from "node:fs";
    import {{ fileURLToPath }} from "node:url";
    globalThis.fetch = async (url) => new Response(readFileSync(fileURLToPath(url)));
    const {{ loadModel }} = await import({(ROOT / "webapp" / "js" / "runtime" / "index.js").as_uri()!r});
    const run = await loadModel(new URL({(folder / "mnist_convnet.json").as_uri()!r}), "wasm");
    const x = readFileSync(0);
    process.stdout.write(JSON.stringify(Array.from(await run(new Float32Array(x.buffer, x.byteOffset, 784)))));"""
  model, meta = build_model(folder)
  from tinygrad import Tensor
  for i in range(3):
    x = ((mnist_test_set[0][i].astype(np.float32) / 255 - meta["mean"]) / meta["std"]).reshape(1, 1, 28, 28)
    got = json.loads(subprocess.run(["node", "--input-type=module", "-e", probe], input=x.tobytes(), capture_output=True, check=True).stdout)
    assert np.abs(np.array(got) - model(Tensor(x)).numpy()[0]).max() < 1e-4

@pytest.mark.slow
def test_weights_are_shipped_as_float16_and_the_metadata_measures_exactly_those(quick_exports):
  for name, (folder, metrics) in quick_exports.items():
    meta = json.loads((folder / f"{name}.json").read_text())
    assert meta["weights_dtype"] == ["float16"] and meta["weights_as"] == "float16" and meta["test_accuracy"] == metrics["test_accuracy"]
    assert "test_accuracy_float32" in meta                                 # what rounding cost, for the record
    assert meta["files"]["weights"]["bytes"] < 0.55 * 4 * meta["params"]

@pytest.mark.slow
def test_an_unrounded_model_is_refused_for_float16_export(quick_exports, tmp_path):
  """Rounding inside the exporter would ship a model whose accuracy nobody measured: it must be done before."""
  from tinygrad import Tensor
  model, _ = build_model(quick_exports["mnist_mlp"][0])
  w = model.layers[1].weight
  w.assign(w + Tensor.full(w.shape, 1e-4)).realize()
  with pytest.raises(ExportError, match="not float16-exact: call round_weights"):
    export_utils.export_model(model, "mnist_mlp", tmp_path, metadata={"test_accuracy": 1.0})
  assert round_weights(model) > 0 and round_weights(model) == 0   # rounding is idempotent
  export_utils.export_model(model, "mnist_mlp", tmp_path, metadata={"test_accuracy": 1.0})

def test_a_missing_wasm_toolchain_is_a_clear_error(monkeypatch, tmp_path):
  monkeypatch.setenv("PATH", str(tmp_path))   # no clang on it
  with pytest.raises(ExportError, match="apt-get install clang lld"):
    compile_wasm("void f(void) {}")

def _fingerprint(folder:Path):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

@pytest.mark.slow
def test_failed_export_leaves_the_previous_one(quick_exports, tmp_path, monkeypatch):
  out = tmp_path / "webapp"
  shutil.copytree(quick_exports["mnist_mlp"][0], out / "mnist_mlp")
  before = _fingerprint(out / "mnist_mlp")
  model, meta = build_model(out / "mnist_mlp")
  def broken(*a, **k): raise OSError(28, "No space left on device")
  monkeypatch.setattr(export_files, "fsync_write", broken)
  with pytest.raises(ExportError, match="could not write .*No space left on device"):
    export_utils.export_model(model, "mnist_mlp", out, metadata={"test_accuracy": 1.0})
  assert _fingerprint(out / "mnist_mlp") == before
  assert sorted(p.name for p in out.iterdir()) == ["mnist_mlp"]       # no staging folder left behind, the manifest untouched

@pytest.mark.slow
def test_export_killed_midway_leaves_a_consistent_model(quick_exports, tmp_path):
  """SIGKILL at any moment: the folder holds the old model or the new one, whole, never a mix."""
  out = tmp_path / "webapp"
  shutil.copytree(quick_exports["mnist_mlp"][0], out / "mnist_mlp")
  before = _fingerprint(out / "mnist_mlp")
  script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
            "from test_export import build_model; import export_utils; from pathlib import Path\n"
            f"model, meta = build_model(Path({str(out / 'mnist_mlp')!r}))\n"
            f"print('ready', flush=True)\n"
            f"export_utils.export_model(model, 'mnist_mlp', {str(out)!r}, metadata={{'test_accuracy': 12.5}})\n")
  proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "ready"
  deadline = time.time() + 120
  while time.time() < deadline and not any(p.name.endswith(".tmp") for p in out.iterdir()) and proc.poll() is None: time.sleep(0.002)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  after = _fingerprint(out / "mnist_mlp")
  meta = json.loads((out / "mnist_mlp" / "mnist_mlp.json").read_text())
  assert sorted(after) == sorted(before)
  assert after == before or meta["test_accuracy"] == 12.5
  assert all(meta["files"][key]["sha256"] == after[f["name"]] for key, f in meta["files"].items())

@pytest.mark.slow
def test_exporter_refuses_an_adapter_without_a_vulkan_driver(tmp_path):
  env = {**os.environ, "VK_ICD_FILENAMES": str(tmp_path / "no-driver.json"), "VK_DRIVER_FILES": str(tmp_path / "no-driver.json")}
  code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from exporter import ExportError; from exporter.dawn import check_webgpu\n" \
         "try: check_webgpu()\nexcept ExportError as e: print('REFUSED', e); sys.exit(3)"
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 3, proc.stdout + proc.stderr[-1000:]
  assert "mesa-vulkan-drivers" in proc.stdout

def test_exporter_accepts_the_working_adapter():
  check_webgpu()

def _manifest() -> list[dict]: return json.loads((ROOT / "webapp" / "models.json").read_text())["models"]

def test_the_site_serves_data_and_one_runtime():
  """No JavaScript under webapp/ but the page's own modules: every model is data that js/runtime/ runs. The
  manifest lists every model folder, each entry with the folder's own metadata."""
  webapp = ROOT / "webapp"
  assert {p.relative_to(webapp).parts[0] for p in webapp.rglob("*.js")} <= {"js", "sw.js"}
  folders = {p.parent.name for p in webapp.glob("*/*.plan.json")}
  assert [m["name"] for m in _manifest()] and {m["name"] for m in _manifest()} == folders
  for m in _manifest():
    assert m["meta"] == json.loads((webapp / m["name"] / f"{m['name']}.json").read_text()), m["name"]
    assert m["role"] == ("train" if m["meta"]["fit"] else "predict") and m["label"]

def test_the_manifest_is_updated_in_place_and_refuses_a_broken_one(tmp_path):
  meta = lambda name, acc: {"name": name, "test_accuracy": acc}
  export_files.add_to_manifest(tmp_path, meta("a", 1), "A", "predict")
  export_files.add_to_manifest(tmp_path, meta("b", 2), "B", "train")
  export_files.add_to_manifest(tmp_path, meta("a", 3), "A2", "predict")
  models = json.loads((tmp_path / "models.json").read_text())["models"]
  assert [(m["name"], m["label"], m["role"], m["meta"]["test_accuracy"]) for m in models] == [("a", "A2", "predict", 3), ("b", "B", "train", 2)]
  (tmp_path / "models.json").write_text("{not json")
  with pytest.raises(ExportError, match="models.json is not JSON"): export_files.add_to_manifest(tmp_path, meta("c", 1), "C", "predict")

def test_a_re_export_takes_the_recorded_schedules_and_rebuilds_the_same_webassembly(tmp_path):
  """The WebAssembly kernels were chosen by timing (WASM_BEAM): a re-export of the same weights with the recorded
  schedules must not search again and must give the shipped modules byte for byte."""
  shipped = ROOT / "webapp" / "mnist_mlp"
  model, meta = build_model(shipped)
  recorded = json.loads((shipped / meta["wasm_schedules"]).read_text())
  dtype = meta["weights_as"]
  folder = export_utils.export_model(model, "mnist_mlp", tmp_path, weights_dtype=dtype, wasm_beam=meta["wasm_beam"], wasm_schedules=recorded)
  for f in ("mnist_mlp.wasm", "mnist_mlp.extras.wasm", "mnist_mlp.safetensors"):
    assert (folder / f).read_bytes() == (shipped / f).read_bytes(), f
  assert json.loads((folder / "mnist_mlp.schedules.json").read_text()) == recorded
  assert any(v["reassociate"] for v in recorded["reassociate"].values())

def test_a_re_export_of_exported_weights_keeps_their_accuracy_before_rounding(tmp_path):
  """LOAD= an export's int8 weights: they were rounded already, so what they read before rounding comes from the export
  they came from (measuring it again would give the rounded accuracy), and a file with no export beside it has none."""
  import training
  (tmp_path / "m.safetensors").write_bytes(b"")
  (tmp_path / "m.json").write_text(json.dumps({"test_accuracy_float32": 99.6, "test_accuracy": 99.61}))
  assert training.exported_accuracy_before_rounding(str(tmp_path / "m.safetensors")) == 99.6
  assert training.exported_accuracy_before_rounding(str(tmp_path / "other.safetensors")) is None
  for entry in json.loads((ROOT / "webapp" / "models.json").read_text())["models"]:   # every shipped model says how it was stored
    assert entry["meta"]["weights_as"] in entry["meta"]["weights_dtype"], entry["name"]
