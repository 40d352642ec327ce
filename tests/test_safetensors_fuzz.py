"""The page's safetensors reader (readSafetensors in webapp/js/runtime/safetensors.js) accepts exactly the files the reference
reader (Python's safetensors, the Rust crate tinygrad and PyTorch load with) accepts: a corpus of mutants of real and
made-up files, made by a generator with a fixed seed, each decided by both."""
import base64, json, struct, subprocess
import numpy as np
import pytest
from safetensors import deserialize
from conftest import ROOT

SEED, MUTANTS_PER_BASE = 20261202, 200

def _file(header, data:bytes=b"", pad:int=0) -> bytes:
  text = (header if isinstance(header, (str, bytes)) else json.dumps(header, separators=(",", ":")))
  text = (text.encode() if isinstance(text, str) else text) + b" " * pad
  return struct.pack("<Q", len(text)) + text + data

def _bases() -> list[bytes]:
  """A shipped model's weights (float16, as the exporter writes them), a float32 file padded as the page writes them,
  and one tensor of each other kind the format knows."""
  shipped = (ROOT / "webapp" / "mnist_convnet_trainer" / "mnist_convnet_trainer.safetensors").read_bytes()
  f32 = {"w": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]},
         "__metadata__": {"config": "{}", "training": "{}"}}
  kinds, at = {}, 0
  for name, dtype, shape, size in [("t", "BOOL", [3], 3), ("u", "U8", [2, 2], 4), ("h", "BF16", [3], 6), ("i", "I64", [1], 8), ("e", "F32", [0], 0),
                                   ("s", "F16", [], 2), ("q", "F4", [4], 2), ("c", "C64", [1], 8)]:
    kinds[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + size]}
    at += size
  return [shipped, _file(f32, bytes(range(32)), pad=5), _file(kinds, bytes(at))]

def _split(data:bytes) -> tuple[dict, bytes]:
  n = struct.unpack("<Q", data[:8])[0]
  return json.loads(data[8:8 + n]), data[8 + n:]

# ---- mutations: each takes a valid file and the generator, and returns a file (most of them no longer valid)

def _bytes_level(data, rng):
  n = struct.unpack("<Q", data[:8])[0]
  kind = rng.integers(9)
  if kind == 0: return struct.pack("<Q", max(0, n + int(rng.choice([-8, -2, -1, 1, 2, 8])))) + data[8:]            # header length off
  if kind == 1: return struct.pack("<Q", int(rng.choice([0, 1, 2, 100_000_001, 2**63, len(data)]))) + data[8:]
  if kind == 2: return data[:int(rng.integers(0, len(data)))]                                                       # truncated
  if kind == 3: return data + (b" " * int(rng.integers(1, 9)) if rng.random() < 0.3 else bytes(rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8)))
  if kind == 4:                                                                                                     # a byte of the header changed
    i = 8 + int(rng.integers(0, n))
    return data[:i] + bytes([int(rng.integers(0, 256))]) + data[i + 1:]
  if kind == 5:                                                                                                     # a character inserted or deleted
    i = 8 + int(rng.integers(0, n))
    text = data[8:8 + n]
    text = text[:i - 8] + bytes([ord(rng.choice(list('{}[],:"01-.e \\u')))]) + text[i - 8:] if rng.random() < 0.5 else text[:i - 8] + text[i - 7:]
    return struct.pack("<Q", len(text)) + text + data[8 + n:]
  if kind == 6:                                                                                                     # invalid UTF-8 / a BOM
    text = data[8:8 + n]
    junk = [b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xe2\x82"][int(rng.integers(6))]
    i = 0 if rng.random() < 0.3 else text.index(b'"') + 1
    text = text[:i] + junk + text[i:]
    return struct.pack("<Q", len(text)) + text + data[8 + n:]
  if kind == 7:                                                                                                     # whitespace around the JSON
    text = data[8:8 + n]
    text = rng.choice([b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x00"]) + text if rng.random() < 0.5 else text + rng.choice([b" ", b"\t\n", b"\x00", b"x"])
    return struct.pack("<Q", len(text)) + text + data[8 + n:]
  return data[:8] + data[8:8 + n].replace(b'"', b"'", 1) + data[8 + n:]                                              # not JSON

def _structure_level(data, rng):
  header, body = _split(data)
  names = [k for k in header if k != "__metadata__"]
  name = names[int(rng.integers(len(names)))]
  t = header[name]
  kind = rng.integers(16)
  bad_numbers = [1.0, -1, -0.0, "4", None, 2**64, 2**64 - 1, 1e3, True]
  if kind == 0: t["data_offsets"][int(rng.integers(2))] += int(rng.choice([-4, -2, -1, 1, 2, 4]))                   # an offset moved
  elif kind == 1:                                                                                                   # two tensors' offsets swapped
    other = header[names[int(rng.integers(len(names)))]]
    t["data_offsets"], other["data_offsets"] = other["data_offsets"], t["data_offsets"]
  elif kind == 2:                                                                                                   # every offset shifted
    k = int(rng.integers(1, 5))
    for n in names: header[n]["data_offsets"] = [o + k for o in header[n]["data_offsets"]]
  elif kind == 3: t["data_offsets"][int(rng.integers(2))] = bad_numbers[int(rng.integers(len(bad_numbers)))]
  elif kind == 4: t["data_offsets"] = t["data_offsets"] + [t["data_offsets"][1]] if rng.random() < 0.5 else t["data_offsets"][:1]
  elif kind == 5:                                                                                                   # a shape that does not match
    if t["shape"]: t["shape"][int(rng.integers(len(t["shape"])))] += int(rng.choice([-1, 1, 2]))
    else: t["shape"] = [2]
  elif kind == 6 and t["shape"]: t["shape"][int(rng.integers(len(t["shape"])))] = bad_numbers[int(rng.integers(len(bad_numbers)))]
  elif kind == 7: t["dtype"] = str(rng.choice(["F64", "F16", "BF16", "U8", "I32", "f32", "F8", "", "FLOAT", "F6_E2M3", "BOOL"]))
  elif kind == 8: t[str(rng.choice(["dtype", "shape", "data_offsets"]))] = None if rng.random() < 0.5 else "x"
  elif kind == 9: del t[str(rng.choice(["dtype", "shape", "data_offsets"]))]
  elif kind == 10: t["extra"] = [[[1.5, {"k": None}]]] if rng.random() < 0.5 else -3                                 # a field it does not know
  elif kind == 11:                                                                                                  # the metadata
    header["__metadata__"] = [None, {"k": 1}, {"k": ["v"]}, [], "text", {"k": "v", "j": "w"}, {}][int(rng.integers(7))]
  elif kind == 12: del header[name]                                                                                 # a tensor left out
  elif kind == 13: header["__metadata__"] = t                                                                        # a tensor named __metadata__
  elif kind == 14:                                                                                                  # nested deeper than serde_json goes
    depth = int(rng.choice([120, 124, 125, 126, 127, 130]))
    text = json.dumps(header, separators=(",", ":"))
    text = text[:-1] + ',"deep":' * 0 + text[-1:]
    t_text = json.dumps(t, separators=(",", ":"))
    nested = t_text[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
    return _file(text.replace(t_text, nested, 1), body)
  else:                                                                                                             # escapes in a name
    esc = str(rng.choice(["\\ud800", "\\udc00", "\\ud83d\\ude00", "\\u0041", "\\x41", "\\/", "\\u00"]))
    text = json.dumps(header, separators=(",", ":")).replace(f'"{name}"', f'"{name}{esc}"', 1)
    return _file(text, body)
  return _file(header, body)

def _corpus() -> list[bytes]:
  rng = np.random.default_rng(SEED)
  corpus = []
  for base in _bases():
    corpus.append(base)
    for _ in range(MUTANTS_PER_BASE):
      corpus.append((_bytes_level if rng.random() < 0.45 else _structure_level)(base, rng))
  return corpus

def _reference(data:bytes) -> bool:
  try: deserialize(data)
  except Exception: return False
  return True

DECIDE = """import { readSafetensors } from "./webapp/js/runtime/index.js";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const verdicts = JSON.parse(input).map((b64) => { try { readSafetensors(Buffer.from(b64, "base64")); return true; } catch (e) {
  if (e.name !== "ModelFileError") return `threw ${e.name}: ${e.message}`; return false; } });
process.stdout.write(JSON.stringify(verdicts));"""

def test_the_page_decides_every_mutant_as_the_reference_reader_does():
  corpus = _corpus()
  assert len(corpus) >= 500
  proc = subprocess.run(["node", "--input-type=module", "-e", DECIDE], input=json.dumps([base64.b64encode(d).decode() for d in corpus]),
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  page, reference = json.loads(proc.stdout), [_reference(d) for d in corpus]
  differ = [(i, page[i], reference[i], corpus[i][:160]) for i in range(len(corpus)) if page[i] != reference[i]]
  print(f"{len(corpus)} files: the reference accepts {sum(reference)}, refuses {len(corpus) - sum(reference)}; the page differs on {len(differ)}")
  assert not differ, differ[:5]
  assert 0.05 < sum(reference) / len(corpus) < 0.6          # a corpus of mostly near misses, with valid files among them

@pytest.mark.parametrize("index", range(3))
def test_the_bases_are_valid_files(index):
  assert _reference(_bases()[index])
