"""Every contract between the exporter and the runtime is stated once (exporter/contract.py and the plan it writes) and
read by the other side: these fail when one side changes alone. The plan's format, the thread maximum and the control
block's layout in the committed plans are the exporter's; the threaded C uses exactly the control block's words; the
runtime reads them from the plan, never as literals; and which WebAssembly module to run is the metadata's, by one rule."""
import json, re, subprocess
import pytest
from conftest import ROOT
from exporter import contract
from exporter.wasm import render_threaded_c

RUNTIME = ROOT / "webapp" / "js" / "runtime"
COMMITTED = [m["name"] for m in json.loads((ROOT / "webapp" / "models.json").read_text())["models"]]

@pytest.mark.parametrize("name", COMMITTED)
def test_every_committed_plan_states_the_exporters_contract(name):
  plan = json.loads((ROOT / "webapp" / name / f"{name}.plan.json").read_text())
  meta = json.loads((ROOT / "webapp" / name / f"{name}.json").read_text())
  assert plan["format"] == contract.PLAN_FORMAT and plan["threads"] == contract.threads_contract()
  assert {m["threads"] for m in meta["wasm_modules"]} == {1, contract.MAX_THREADS}
  assert {m["file"] for m in meta["wasm_modules"]} == set(plan["wasm"]) and set(plan["wasm"]) <= set(meta["files"])
  # each buffer list once: the backends refer to it by index
  for key in ("buffers", "inputs"): assert key not in plan["webgpu"] and all(key not in layout for layout in plan["wasm"].values())
  assert all(len(layout["offsets"]) == len(plan["buffers"]) for layout in plan["wasm"].values())

def test_the_runtime_reads_the_plans_format_from_the_same_number():
  assert re.search(r"export const PLAN_FORMAT = (\d+);", (RUNTIME / "plan.js").read_text()).group(1) == str(contract.PLAN_FORMAT)

def _tiny_threaded_c() -> str:
  kernels = [{"name": "E_4", "function": "E_4", "parts": 1, "source": "void E_4(float* a) { a[0] = 1; }"},
             {"name": "r_2", "function": "r_2", "parts": 2, "source": "void r_2(float* a, int core_id) { a[core_id] += 1; }"}]
  buffers = [{"name": "x", "kind": "input", "bytes": 16}]
  return render_threaded_c(kernels, buffers, {"forward": [{"kernel": 0, "buffers": [0]}, {"kernel": 1, "buffers": [0]}]}, ["forward"])[0]

def test_the_threaded_module_uses_exactly_the_contracts_control_words(monkeypatch):
  words = lambda c: {int(w) for w in re.findall(r"&control\[(\d+)\]", c)}                   # the words read and written
  assert words(_tiny_threaded_c()) == {*(v for k, v in contract.CONTROL.items() if k != "parts"), contract.CONTROL["parts"]}
  moved = {k: v + 10 for k, v in contract.CONTROL.items()}                 # the layout moved: the C follows it
  monkeypatch.setattr("exporter.wasm.CONTROL", moved)
  assert words(_tiny_threaded_c()) == set(moved.values())

def test_the_runtime_names_no_control_word_or_file_key_of_its_own():
  for js in RUNTIME.glob("*.js"):
    source = js.read_text()
    assert not re.search(r"Atomics\.\w+\(\s*control\s*,\s*\d", source), js.name          # words come from plan.threads.control
    assert not re.search(r"\b(threads_wasm|extras_wasm|wasm_fma)\b", source), js.name      # file keys come from the metadata


CHOICE = """import { wasmModule } from "./webapp/js/runtime/plan.js";
const meta = JSON.parse(process.argv[1]), out = {};
for (const [threads, fma] of [[1, false], [1, true], [4, false], [4, true]]) out[`${threads}${fma ? "-fma" : ""}`] = wasmModule(meta, { threads, fma }).file;
console.log(JSON.stringify(out));"""

def test_the_runtime_picks_the_module_the_metadata_describes():
  """Node shares memory, so 4 threads take the threaded build; renamed files are found by what the metadata says they are."""
  meta = json.loads((ROOT / "webapp" / "mnist_convnet" / "mnist_convnet.json").read_text())
  renamed = {"name": "m", "wasm_modules": [{**m, "file": "k" + str(i)} for i, m in enumerate(reversed(meta["wasm_modules"]))]}
  for m, want in ((meta, {"1": "wasm", "1-fma": "wasm_fma", "4": "threads_wasm", "4-fma": "threads_wasm_fma"}), (renamed, None)):
    got = json.loads(subprocess.run(["node", "--input-type=module", "-e", CHOICE, json.dumps(m)], cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    if want: assert got == want
    else:
      by_file = {x["file"]: x for x in m["wasm_modules"]}
      assert {k: (by_file[f]["threads"] > 1, by_file[f]["fma"]) for k, f in got.items()} == \
             {"1": (False, False), "1-fma": (False, True), "4": (True, False), "4-fma": (True, True)}
      assert all("forward" in by_file[f]["programs"] for f in got.values())
