"""Writing an export: the model's folder, staged beside its place and swapped in at once (a reader, the page or a web
server, sees the old model or the new one, never a mix), then its entry in the site's manifest (models.json: every
model the site serves, with its label, its role and its metadata, so that the page needs no other file to start).
"""
import contextlib, ctypes, fcntl, hashlib, json, os, shutil, signal, tempfile
from pathlib import Path
from exporter import ExportError

MANIFEST = "models.json"
# a model's files by their key in the metadata's "files" -> the suffix of their name
SUFFIXES = {"plan": "plan.json", "weights": "safetensors", "wasm": "wasm", "extras_wasm": "extras.wasm", "wasm_fma": "fma.wasm",
            "extras_wasm_fma": "extras.fma.wasm", "threads_wasm": "threads.wasm", "threads_wasm_fma": "threads.fma.wasm",
            "wgsl": "wgsl.json", "extras_wgsl": "extras.wgsl.json", "report": "report.json"}

def write_export(out_dir:Path, name:str, files:dict[str, bytes], meta:dict, label:str, role:str, schedules:dict|None=None) -> Path:
  """`files` (by key) and the metadata, which gets each file's name, SHA-256 and size (the page asks for a file by its
  hash and checks it against it), written into `out_dir/name/` in one step, then listed in `out_dir/models.json`.
  `schedules`, the exporter's record of the WebAssembly kernels it chose, is written beside them (the page never
  reads it). On any failure the previous export is left as it was."""
  final = out_dir / name
  staged = _staging(out_dir, name)
  try:
    meta["files"] = {key: {"name": f"{name}.{SUFFIXES[key]}", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                     for key, data in files.items()}
    for key, data in files.items(): fsync_write(staged / meta["files"][key]["name"], data)
    fsync_write(staged / f"{name}.json", (json.dumps(meta, indent=2) + "\n").encode())
    if schedules: fsync_write(staged / f"{name}.schedules.json", (json.dumps(schedules, indent=1) + "\n").encode())
    for f in staged.iterdir(): f.chmod(0o644)
    staged.chmod(0o755)   # mkdtemp makes it private; a web server must read it
    with _uninterrupted():
      _install(staged, final)
      add_to_manifest(out_dir, meta, label, role)
  except OSError as e: raise ExportError(f"could not write {final} ({e.strerror or e})") from None
  finally: shutil.rmtree(staged, ignore_errors=True)
  return final

def _staging(out_dir:Path, name:str) -> Path:
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f".{name}.*.tmp"): shutil.rmtree(stale, ignore_errors=True)   # left by a killed export
    return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
  except OSError as e: raise ExportError(f"output folder {out_dir} is not writable ({e.strerror})") from None

@contextlib.contextmanager
def _uninterrupted():
  """Ctrl-C and SIGTERM wait until the folder and its manifest entry agree (SIGKILL cannot be held off)."""
  held = {signal.SIGINT, signal.SIGTERM}
  previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
  try: yield
  finally: signal.pthread_sigmask(signal.SIG_SETMASK, previous)

def fsync_write(path:Path, data:bytes):
  with open(path, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())

def _rename_exchange(a:Path, b:Path) -> bool:
  """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0
  except (AttributeError, OSError): return False

def _install(staged:Path, final:Path):
  """Put the staged folder where the page loads it."""
  if final.exists() and _rename_exchange(staged, final): shutil.rmtree(staged); return
  if final.exists():
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(old)
  else: os.rename(staged, final)

# ---------------------------------------------------------------- the manifest

def read_manifest(site:Path) -> dict:
  """The site's manifest ({"models": [{name, label, role, meta}]}), or an empty one."""
  try: manifest = json.loads((site / MANIFEST).read_text())
  except FileNotFoundError: return {"models": []}
  except ValueError as e: raise ExportError(f"{site / MANIFEST} is not JSON ({e}); remove it and export the models again") from None
  if not isinstance(manifest.get("models"), list): raise ExportError(f"{site / MANIFEST} lists no models; remove it and export the models again")
  return manifest

def add_to_manifest(site:Path, meta:dict, label:str, role:str):
  """List a model in the site's manifest, replacing its earlier entry in place (the page keeps the order: the model
  menu's). Two exports into one site at once (the tests train both scripts side by side) take turns."""
  entry = {"name": meta["name"], "label": label, "role": role, "meta": meta}
  fd = os.open(site, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    manifest = read_manifest(site)
    names = [m["name"] for m in manifest["models"]]
    if entry["name"] in names: manifest["models"][names.index(entry["name"])] = entry
    else: manifest["models"].append(entry)
    tmp = site / f".{MANIFEST}.tmp"
    fsync_write(tmp, (json.dumps(manifest, separators=(",", ":")) + "\n").encode())
    tmp.chmod(0o644)
    os.replace(tmp, site / MANIFEST)
  finally: os.close(fd)   # releases the lock
