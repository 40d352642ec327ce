"""WebAssembly kernels chosen by timing them as WebAssembly: tinygrad's BEAM search with every candidate compiled with the
module's own flags and timed in V8 (Node), not natively; and each kernel's float sums reassociated where that is clearly
faster. The only module that knows tinygrad's search internals (`tinygrad.codegen.opt.search`), which it patches while
the CPU capture runs.

Every choice is recorded (<name>.schedules.json: {"kernels": by AST, "reassociate": by source}); a re-export given the
record takes the same choices without searching, so it rebuilds the same modules byte for byte.
"""
import base64, contextlib, hashlib, json, subprocess, sys
from exporter import ExportError
from exporter.wasm import ALIGN, compile_wasm, named, reassociating, layout

# kernels quicker than this with tinygrad's own choice are not searched: a search costs minutes, and they cost no time
FLOOR_US = 20
# kernels quicker than this on one thread stay whole in the threaded module: splitting one costs a barrier between the
# Workers, about 10 µs in V8 (bench: the threaded runtime's empty program), which they would not win back
THREAD_FLOOR_US = 40
# a kernel is reassociated only where it pays this much: a sum in another order differs in its last bits (the tests hold
# both backends to tinygrad within their tolerances)
REASSOCIATE_GAIN = 0.85

# Each candidate kernel, compiled into a module of its own, run by V8 (the engine of Chromium) in a Node process: TurboFan
# code only (--no-liftoff), on buffers filled with varied values, the best of five timings; the module holds the kernel
# twice, as rendered and allowed to reassociate its sums, each timed.
TIMER_JS = r"""
import { createInterface } from "node:readline";
function best(bench) {
  for (let i = 0; i < 3; i++) bench(1);
  let n = 1, t = 0;
  for (;;) { const t0 = performance.now(); bench(n); t = performance.now() - t0; if (t > 2 || n >= 1 << 16) break; n *= 2; }
  let fastest = t / n;
  for (let r = 0; r < 4; r++) { const t0 = performance.now(); bench(n); fastest = Math.min(fastest, (performance.now() - t0) / n); }
  return fastest * 1000;
}
for await (const line of createInterface({ input: process.stdin })) {
  let reply;
  try {
    const { instance } = await WebAssembly.instantiate(Buffer.from(JSON.parse(line).wasm, "base64"));
    instance.exports.fill();
    reply = { us: best(instance.exports.bench), reassociated_us: best(instance.exports.bench_reassociated) };
  } catch (e) { reply = { error: String(e?.message ?? e) }; }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
"""

class Timer:
  """Times C kernels as WebAssembly (TIMER_JS in a Node process of its own)."""
  def __init__(self):
    try: self.proc = subprocess.Popen(["node", "--no-liftoff", "--input-type=module", "-e", TIMER_JS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError: raise ExportError("timing the WebAssembly kernels needs Node.js (node) on PATH") from None

  def microseconds(self, source:str, function:str, buffers:list[tuple[int, str]], split:bool=False) -> tuple[float, float]:
    """One kernel's time in µs as rendered and as reassociating: `source` its C, `buffers` (bytes, dtype name) of its
    arguments in order; `split`: a kernel split into parts, timed on its first part."""
    self.proc.stdin.write(json.dumps({"wasm": base64.b64encode(compile_wasm(harness(source, function, buffers, split))).decode()}) + "\n")
    self.proc.stdin.flush()
    reply = json.loads(self.proc.stdout.readline() or '{"error": "the Node timer exited"}')
    if "error" in reply: raise RuntimeError(f"{function} did not run as WebAssembly: {reply['error']}")
    return reply["us"], reply["reassociated_us"]

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(30)

def harness(source:str, function:str, buffers:list[tuple[int, str]], split:bool=False) -> str:
  """A module that runs one kernel: its buffers in a static arena, fill() giving them varied values (small integers for
  integer buffers, which may index), bench(n) calling the kernel n times, bench_reassociated(n) its reassociating copy
  (a kernel split into parts: its part 0)."""
  offsets, end = layout([nbytes for nbytes, _ in buffers])
  fills = []
  for (nbytes, dtype), at in zip(buffers, offsets):
    kind, size = ("float", 4) if dtype == "float" else ("int", 4) if dtype in ("int", "uint") else ("unsigned char", 1)
    value = "(float)((s >> 9) & 0xffff) / 32768.0f - 1.0f" if kind == "float" else "(s >> 9) % 10"
    fills.append(f"  for (int i = 0; i < {nbytes // size}; i++) {{ s = s * 1103515245u + 12345u; (({kind}*)(arena + {at}))[i] = {value}; }}")
  args = ", ".join([*(f"(void*)(arena + {o})" for o in offsets), *(["0"] if split else [])])
  plain = named(source, function, "kernel_under_test")
  return "\n".join([plain, reassociating(plain.replace("kernel_under_test(", "kernel_reassociated(", 1), "kernel_reassociated"),
                    f"static unsigned char arena[{end}] __attribute__((aligned({ALIGN})));",
                    '__attribute__((export_name("fill"))) void fill(void) {', "  unsigned s = 1;", *fills, "}",
                    '__attribute__((export_name("bench"))) void bench(int n) {', f"  for (int k = 0; k < n; k++) kernel_under_test({args});", "}",
                    '__attribute__((export_name("bench_reassociated"))) void bench_reassociated(int n) {',
                    f"  for (int k = 0; k < n; k++) kernel_reassociated({args});", "}", ""])

def _opts_json(opts) -> list: return [[o.op.name, o.axis, list(o.arg) if isinstance(o.arg, tuple) else o.arg] for o in opts]

def _source_of(prg) -> str:
  from tinygrad.uop.ops import Ops
  return next(u.arg for u in prg.src if u.op is Ops.SOURCE)

def _split(k, parts:int):
  """The kernel `k` split over up to `parts` threads on its first axis that divides (tinygrad's own rule, as its heuristic
  applies it): at least 128K operations a part."""
  from tinygrad.codegen.opt import Opt, OptOps, KernelOptError
  from tinygrad.uop.ops import AxisType, resolve
  from tinygrad.helpers import prod
  for threads in [n for n in (32, 16, 12, 8, 6, 5, 4, 3, 2) if n <= parts]:
    if resolve(prod(k.full_shape) // (128 << 10) < threads): continue
    for axis in k.axes_of(AxisType.WEAK):
      if k.full_shape[axis] % threads == 0:
        try: k.apply_opt(Opt(OptOps.THREAD, axis, threads))
        except KernelOptError: pass
        break
    if k.applied_opts and k.applied_opts[-1].op is OptOps.THREAD: break
  return k

@contextlib.contextmanager
def searching(beam:int, recorded:dict, chosen:dict, threads:int=1):
  """Entered around the CPU capture: every kernel's schedule is picked by tinygrad's BEAM search of width `beam` with
  its candidates timed as WebAssembly (Timer), the better of plain and reassociating counting, and kept only where it
  beats tinygrad's own choice (hand_coded_optimizations), also timed as WebAssembly. A kernel whose AST has a schedule
  in `recorded` ({ast key: {"opts"}}) takes it without a search; every kernel's choice is put in `chosen` (name, opts,
  µs, and tinygrad's own choice's µs). With `threads` > 1 (the threaded module's capture, after the plain one) each kernel
  takes the schedule chosen for one thread, split over the threads where that one took THREAD_FLOOR_US or more."""
  from dataclasses import replace
  from tinygrad import Context
  import tinygrad.codegen.opt.search as search
  from tinygrad.codegen.opt import Opt, OptOps
  from tinygrad.codegen.opt.heuristic import hand_coded_optimizations
  from tinygrad.uop.ops import Ops
  from tinygrad.codegen import to_program
  from tinygrad.helpers import ansistrip
  timer, original_search, original_time = Timer(), search.beam_search, search._time_program

  def timed(s) -> float:
    ast = s.copy().get_optimized_ast(name_override="test")
    prg = to_program(ast.substitute({u: u.replace(arg=replace(u.arg, device="CPU")) for u in ast.toposort() if u.op is Ops.PARAM}), s.ren)
    params = sorted([u for u in ast.toposort() if u.op is Ops.PARAM], key=lambda u: u.arg.slot)
    return min(timer.microseconds(_source_of(prg), prg.arg.function_name, [(u.max_numel() * u.dtype.itemsize, u.dtype.name) for u in params]))

  def time_program(prg, var_vals, rawbufs, *args, **kwargs) -> list[float]:
    try: return [min(timer.microseconds(_source_of(prg), prg.arg.function_name, [(b.nbytes, b.dtype.name) for b in rawbufs])) / 1e6]
    except (RuntimeError, ExportError): return [float("inf")]

  def beam_search(s, rawbufs, var_vals, amt, allow_test_size=True, disable_cache=False):
    key = s.ast.key.hex()
    if (known := recorded.get(key) or chosen.get(key)) is not None:
      out = s.copy()
      for op, axis, arg in known["opts"]: out.apply_opt(Opt(OptOps[op], axis, tuple(arg) if isinstance(arg, list) else arg))
      chosen[key] = known
      return _split(out, threads) if threads > 1 and known["us"] >= THREAD_FLOOR_US else out
    if threads > 1: return hand_coded_optimizations(s.copy())   # a kernel the one-thread capture did not have: tinygrad's own
    own = hand_coded_optimizations(s.copy())
    best, best_us = own, (own_us := timed(own))
    if own_us >= FLOOR_US:
      found = original_search(s, rawbufs, var_vals, amt, allow_test_size=False, disable_cache=True)
      if (found_us := timed(found)) < own_us: best, best_us = found, found_us
    chosen[key] = {"name": ansistrip(best.copy().get_optimized_ast().arg.name), "opts": _opts_json(best.applied_opts), "us": round(best_us, 2),
                   "tinygrad_us": round(own_us, 2)}
    if own_us >= FLOOR_US: print(f"wasm search: {chosen[key]['name']}: {own_us:.0f} -> {best_us:.0f} us", file=sys.stderr, flush=True)
    return best

  search.beam_search, search._time_program = beam_search, time_program
  try:
    with Context(BEAM=beam): yield
  finally:
    search.beam_search, search._time_program = original_search, original_time
    timer.close()

def choose_reassociation(kernels:list[dict], buffers:list[dict], programs:dict[str, list[dict]], recorded:dict, chosen:dict):
  """Mark ("reassociate": True) each WebAssembly kernel that runs faster when clang may reassociate its float sums, by
  timing it both ways as WebAssembly; kernels quicker than FLOOR_US are left as they are. A kernel (by the hash of its
  source) whose choice is in `recorded` takes it again; every choice is put in `chosen`: {hash: {"name", "reassociate",
  "us", "reassociated_us"}}."""
  first_use = {}
  for ds in programs.values():
    for d in ds: first_use.setdefault(d["kernel"], d)
  timer = None
  try:
    for i, d in first_use.items():
      k = kernels[i]
      key = hashlib.sha256(k["source"].encode()).hexdigest()[:16]
      if key not in recorded:
        timer = timer or Timer()
        parts = k.get("parts", 1)
        plain, summed = timer.microseconds(k["source"], k["function"], [(buffers[b]["bytes"], buffers[b]["dtype"]) for b in d["buffers"]], parts > 1)
        recorded[key] = {"name": k["function"], "reassociate": plain * parts >= FLOOR_US and summed < REASSOCIATE_GAIN * plain,
                         "us": round(plain, 2), "reassociated_us": round(summed, 2)}
        if recorded[key]["reassociate"]: print(f"wasm reassociate: {k['function']}: {plain:.0f} -> {summed:.0f} us", file=sys.stderr, flush=True)
      chosen[key] = recorded[key]
      k["reassociate"] = recorded[key]["reassociate"]
  finally:
    if timer: timer.close()
