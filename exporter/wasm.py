"""The WebAssembly backend: tinygrad's C kernels (from its CPU device) in one module whose static arena holds every
buffer at a fixed offset, one exported function per program calling its kernels in order, compiled by clang for wasm32
with SIMD. No libc, no allocation: the page copies weights into the arena and calls a program.

Two more builds of the same kernels: with relaxed SIMD (`fma`: every vectorised multiply-add as relaxed SIMD's fused
f32x4.relaxed_madd, for browsers that validate it), and threaded (render_threaded_c: the kernels tinygrad split into
parts, one module on a shared memory that several Workers run at once, each taking the next part of a split kernel,
with a barrier between kernels).

How the relaxed-SIMD build is made: tinygrad's kernels are scalar C that clang vectorises, and no clang (up to 19) turns
the vector multiply-adds it makes (llvm.fmuladd) into relaxed_madd; newer clangs also vectorise these kernels worse than
clang 14 (measured: the CNN trainer's step 28 ms with 14, 44-46 ms with 16 and 19). So clang (14) optimises the C to
LLVM IR, each llvm.fmuladd.v4f32 becomes llvm.wasm.relaxed.madd.v4f32 (the same a*b+c, fused), and LLVM 19's llc and
wasm-ld make the module (the CNN trainer's step: 20-26 ms)."""
import shutil, subprocess, tempfile
from pathlib import Path
from exporter import ExportError
from exporter.contract import CONTROL, MAX_THREADS

ALIGN = 16   # float4 loads
HELP = "the WebAssembly modules are compiled with clang and wasm-ld, their relaxed-SIMD builds with LLVM 19's llc (Debian: " \
       "apt-get install clang lld llvm-19 lld-19)"
COMPILE = ["--target=wasm32", "-O3", "-msimd128", "-mbulk-memory", "-nostdlib", "-ffreestanding"]
LINK = ["--no-entry", "--strip-all"]
THREADS_COMPILE, THREADS_LINK = ["-matomics", "-mmutable-globals"], ["--shared-memory", "--import-memory", "--export=__stack_pointer"]
REASSOCIATE = "#pragma clang fp reassociate(on)"
THREAD_STACK = 64 << 10   # each Worker's own C stack (the kernels' spilled registers), in the module's memory
SPIN = 1 << 15            # a thread checks this many times for its next job or a barrier before it sleeps (about 30 µs)

def layout(sizes:list[int|None]) -> tuple[list[int|None], int]:
  """Byte offset of each buffer in a module's one static arena (None for a size of None: not in this module), and the
  arena's size."""
  offsets, end = [], 0
  for size in sizes:
    if size is None: offsets.append(None); continue
    offsets.append(end)
    end += -(-size // ALIGN) * ALIGN
  return offsets, max(end, ALIGN)

def named(source:str, function:str, name:str) -> str:
  """A kernel's C source with its function renamed and made static (several kernels of one name may share a module)."""
  if "void " + function + "(" not in source: raise ExportError(f"cannot find kernel {function} in its C source")
  return source.replace("void " + function + "(", "static void " + name + "(", 1)

def reassociating(source:str, function:str) -> str:
  """`source` with the kernel `function` allowed to reassociate its float arithmetic (clang's pragma, for that function
  alone): its sums may then be kept in vector registers and added up at the end, as -ffast-math would allow everywhere."""
  at = source.index("{", source.index(function + "(")) + 1
  return source[:at] + "\n" + REASSOCIATE + "\n" + source[at:]

def _kernels(kernels:list[dict], programs:dict[str, list[dict]]) -> list[str]:
  """The C of every kernel the programs use, each under its unique name (and reassociating where it was chosen to)."""
  lines = []
  for k in (kernels[i] for i in sorted({d["kernel"] for ds in programs.values() for d in ds})):
    source = named(k["source"], k["function"], k["name"])
    lines.append(reassociating(source, k["name"]) if k.get("reassociate") else source)
  return lines

def _arena(buffers:list[dict], programs:dict[str, list[dict]]) -> tuple[list[int|None], int]:
  used = {b for ds in programs.values() for d in ds for b in d["buffers"]}
  return layout([b["bytes"] if i in used else None for i, b in enumerate(buffers)])

def _call(kernel:dict, d:dict, offsets:list, part:str|None=None) -> str:
  return f"{kernel['name']}({', '.join([*(f'(void*)(arena + {offsets[b]})' for b in d['buffers']), *([part] if part else [])])});"

def _run_c(order:list[str], present) -> list[str]:
  """run(program, tid, n): every module's one entry, the program by its number in the plan's list of programs (`order`);
  `present` are the programs this module holds, each a function of (tid, n)."""
  return ['__attribute__((export_name("run"))) void run(int program, int tid, int n) {', "  switch (program) {",
          *(f"    case {k}: run_{p}(tid, n); break;" for k, p in enumerate(order) if p in present), "  }", "}"]

def render_c(kernels:list[dict], buffers:list[dict], programs:dict[str, list[dict]], order:list[str]) -> tuple[str, list[int|None]]:
  """The C of a module running `programs` on one thread: their kernels, an arena holding every buffer they use, and
  run(program) calling a program's kernels in order. Returns the source and each buffer's offset (None where unused)."""
  offsets, arena = _arena(buffers, programs)
  lines = ["// generated by the exporter from tinygrad's C kernels; compiled with clang --target=wasm32 -msimd128",
           *_kernels(kernels, programs)]
  lines += [f"static unsigned char arena[{arena}] __attribute__((aligned({ALIGN})));",
            '__attribute__((export_name("arena"))) unsigned char* arena_address(void) { return arena; }']
  for program, dispatches in programs.items():
    lines.append(f"static void run_{program}(int tid, int n) {{")
    lines += ["  " + _call(kernels[d["kernel"]], d, offsets) for d in dispatches]
    lines.append("}")
  return "\n".join(lines + _run_c(order, programs) + [""]), offsets

def _tool(*names:str) -> str:
  found = next((n for n in names if shutil.which(n)), None)
  if not found: raise ExportError(f"{names[0]} is not installed; {HELP}")
  return found

def _run(cmd:list[str], stdin:str|None=None):
  try: proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=600)
  except FileNotFoundError: raise ExportError(f"{cmd[0]} is not installed; {HELP}") from None
  if proc.returncode != 0:
    why = next((l for l in proc.stderr.splitlines() if "error" in l), proc.stderr.strip()[:200])
    raise ExportError(f"compiling the WebAssembly module failed ({why.strip()}); {HELP}")

def compile_wasm(c_source:str, fma:bool=False, memory:int|None=None) -> bytes:
  """The module of `c_source`; `fma`: with relaxed SIMD's fused multiply-add; `memory` (bytes): threaded, on a shared
  memory of that size."""
  import os, hashlib
  if os.environ.get("WASM_C_DIR"):   # to read or rebuild by hand what a module was compiled from
    Path(os.environ["WASM_C_DIR"], f"{'threads-' if memory else ''}{hashlib.sha256(c_source.encode()).hexdigest()[:12]}.c").write_text(c_source)
  compile_flags = [*COMPILE, *(THREADS_COMPILE if memory else [])]
  link = [*LINK, *([*THREADS_LINK, f"--initial-memory={memory}", f"--max-memory={memory}"] if memory else [])]
  with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "model.wasm"
    if not fma:
      _run(["clang", *compile_flags, *(f"-Wl,{f}" for f in link), "-x", "c", "-", "-o", str(out)], c_source)
      return out.read_bytes()
    ir, obj = Path(tmp) / "model.ll", Path(tmp) / "model.o"
    _run(["clang", *compile_flags, "-S", "-emit-llvm", "-x", "c", "-", "-o", str(ir)], c_source)
    ir.write_text(ir.read_text().replace("@llvm.fmuladd.v4f32", "@llvm.wasm.relaxed.madd.v4f32"))
    attrs = "+simd128,+relaxed-simd,+bulk-memory" + (",+atomics,+mutable-globals" if memory else "")
    _run([_tool("llc-19", "llc"), "-O3", "-mtriple=wasm32", f"-mattr={attrs}", "-filetype=obj", str(ir), "-o", str(obj)])
    _run([_tool("wasm-ld-19", "wasm-ld"), *link, str(obj), "-o", str(out)])
    return out.read_bytes()

# The threads' side of a threaded module: a job (a program to run, on how many threads) is posted in `control` by the page
# (the leader, which never runs kernels); every Worker waits in serve() for the next job, runs its share of the program and
# counts itself done; the last one wakes the leader. Between two kernels that depend on each other, a barrier. The
# control block's words are the contract's (exporter/contract.py CONTROL), which the plan hands the runtime.
THREADED_C = """
static unsigned char stacks[%(max_threads)d][%(stack)d] __attribute__((aligned(16)));
static int control[%(control)d] __attribute__((aligned(16)));
__attribute__((export_name("arena"))) unsigned char* arena_address(void) { return arena; }
__attribute__((export_name("control"))) int* control_address(void) { return control; }
__attribute__((export_name("stack_top"))) unsigned char* stack_top(int tid) { return stacks[tid] + %(stack)d; }
static int seen(int* at) { return __atomic_load_n(at, __ATOMIC_ACQUIRE); }
static void wait_change(int* at, int from) {
  for (int spin = 0; spin < %(spin)d && seen(at) == from; spin++) ;
  while (seen(at) == from) __builtin_wasm_memory_atomic_wait32(at, from, -1);
}
static void barrier(int n) {
  int generation = seen(&control[%(generation)d]);
  if (__atomic_add_fetch(&control[%(arrived)d], 1, __ATOMIC_ACQ_REL) == n) {
    __atomic_store_n(&control[%(arrived)d], 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&control[%(generation)d], 1, __ATOMIC_RELEASE);
    __builtin_wasm_memory_atomic_notify(&control[%(generation)d], %(max_threads)d);
  } else wait_change(&control[%(generation)d], generation);
}
"""
SERVE_C = """__attribute__((export_name("serve"))) void serve(int tid, int job) {   // job: the last one before this thread was ready
  for (;;) {
    wait_change(&control[%(job)d], job);
    job = seen(&control[%(job)d]);
    int n = seen(&control[%(threads)d]);
    if (tid >= n) continue;
    run(seen(&control[%(program)d]), tid, n);
    if (__atomic_add_fetch(&control[%(done)d], 1, __ATOMIC_ACQ_REL) == n) __builtin_wasm_memory_atomic_notify(&control[%(done)d], 1);
  }
}
"""

def _threaded_program(program:str, dispatches:list[dict], kernels:list[dict], offsets:list, counters:dict) -> list[str]:
  """One program's body for thread `tid` of `n`: runs of whole kernels on thread 0, each split kernel's parts taken in
  turn by whichever thread is free, a barrier between each of these blocks."""
  lines, whole = [f"static void run_{program}(int tid, int n) {{"], []
  def flush():
    if whole: lines.extend(["  if (tid == 0) {", *whole, "  }", "  barrier(n);"]); whole.clear()
  for i, d in enumerate(dispatches):
    kernel = kernels[d["kernel"]]
    if kernel.get("parts", 1) == 1: whole.append("    " + _call(kernel, d, offsets)); continue
    flush()
    lines += [f"  for (int part; (part = __atomic_fetch_add(&control[{counters[(program, i)]}], 1, __ATOMIC_RELAXED)) < {kernel['parts']};)",
              "    " + _call(kernel, d, offsets, "part"), "  barrier(n);"]
  flush()
  if lines[-1] == "  barrier(n);": lines.pop()   # the threads' done count ends a program
  return lines + ["}"]

def render_threaded_c(kernels:list[dict], buffers:list[dict], programs:dict[str, list[dict]], order:list[str]) -> tuple[str, list[int|None], int, int]:
  """The C of a threaded module running `programs` (run(program, tid, n) through serve(tid)), its buffers' offsets,
  the bytes of shared memory it needs (arena, the threads' stacks, the control block, the main stack) and the number of
  split kernels (each with its part counter in the control block, from CONTROL["parts"] on)."""
  offsets, arena = _arena(buffers, programs)
  split = [(p, i) for p, ds in programs.items() for i, d in enumerate(ds) if kernels[d["kernel"]].get("parts", 1) > 1]
  counters = {key: CONTROL["parts"] + n for n, key in enumerate(split)}
  lines = ["// generated by the exporter from tinygrad's C kernels split into parts; run by several Workers on one shared memory",
           *_kernels(kernels, programs), f"static unsigned char arena[{arena}] __attribute__((aligned({ALIGN})));",
           THREADED_C % {**CONTROL, "max_threads": MAX_THREADS, "stack": THREAD_STACK, "control": CONTROL["parts"] + len(counters), "spin": SPIN}]
  for program, dispatches in programs.items(): lines += _threaded_program(program, dispatches, kernels, offsets, counters)
  # run() is called by the leader too: a program none of whose kernels is split runs there alone, with no Worker woken
  lines += _run_c(order, programs) + [SERVE_C % CONTROL]
  memory = -(-(arena + MAX_THREADS * THREAD_STACK + (256 << 10)) // (64 << 10)) * (64 << 10)
  return "\n".join(lines + [""]), offsets, memory, len(counters)
