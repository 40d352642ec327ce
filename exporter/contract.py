"""What an export promises the runtime (webapp/js/runtime/), stated once here and written into every export, so that
the runtime reads it instead of knowing it: the plan's format, the most threads a threaded module serves, and the
layout of its control block. The C the exporter renders and the plan it writes both take these from here; the runtime
takes them from the plan (tests/test_contract.py holds both sides to it).
"""
PLAN_FORMAT = 3

MAX_THREADS = 16   # the most parts a kernel is split into, and the most Workers a threaded module serves at once

# The threaded module's control block: int32 words in its shared memory, at the address its control() export gives.
# The leader posts a job (program, thread count, then job + 1 and a wake-up); each thread runs its share, counts itself
# in `done`, and the last one wakes the leader. `arrived` and `generation` are the barrier between kernels; from
# `parts` on, one word per split kernel counts the parts taken so far.
CONTROL = {"job": 0, "program": 1, "threads": 2, "done": 3, "arrived": 4, "generation": 5, "parts": 8}

def threads_contract() -> dict:
  """What the plan says about threads: {max, control}."""
  return {"max": MAX_THREADS, "control": dict(CONTROL)}
