"""The exporter's ideas, one per module; export_utils.export_model runs them in order.

  dawn.py         a WebGPU adapter in Python that computes (Dawn on a Vulkan driver), or a clear refusal
  capture.py      TinyJit capture of a step on one tinygrad device -> kernels, dispatches, named buffers (the one
                  place that reads tinygrad's captured JIT), and the merge of several programs into one set
  programs.py     the programs a model exports (forward, taps, fine-tuning, from-scratch training, evaluation), their
                  knobs, and tinygrad's initialisation as data
  wasm.py         the WebAssembly backend: the static arena's layout, tinygrad's C kernels rendered into one module (or
                  split over threads, with their barrier), clang, and the relaxed-SIMD (FMA) build through LLVM
  wasm_search.py  WebAssembly kernels chosen by timing them as WebAssembly (the only file that knows tinygrad's search)
  plan.py         the plan as data: every buffer once, the programs in one order, WebGPU's dispatches, each module's
                  layout; the code's files (WGSL, plain, FMA and threaded WebAssembly) and the modules' list
  contract.py     what the runtime may rely on, stated once: the plan's format, the thread maximum, the control block
  files.py        writing a model folder atomically (with the schedules chosen), and the site's manifest of models
"""

class ExportError(Exception):
  """Why an export cannot be made, in one line."""
