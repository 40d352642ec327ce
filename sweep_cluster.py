"""The sweep's runs on a Ray cluster, one Ray task each: the task starts the real training script as a subprocess with its
env vars (so every row of the log stays a command a reader can rerun) and returns its metrics and where it ran.

  no address             ray.init(address="local") starts a cluster on this machine (on 127.0.0.1), sized to its CPUs and GPUs
  RAY_ADDRESS, --address an existing cluster: `ray start --head` on one machine, `ray start --address=<head>:6379` on the
                         others (each with this repository and its virtual environment at the same path)

A run that trains on a GPU asks Ray for a share of one (`gpus_per_run`: Ray pins it to its GPU through
CUDA_VISIBLE_DEVICES, so a machine with 8 GPUs runs 8 at once, or 8/share with a fraction); one that trains on the CPU
asks for `cpus_per_run` cores and gets as many tinygrad threads, so runs never oversubscribe a machine's cores. A run
whose worker process or node dies is run again by Ray (MAX_RETRIES); one that fails on its own (a bad configuration, a
diverged loss, an exit code other than 0) is reported once, with its last line of stderr, and the others go on. Only
the driver (the caller) keeps results.
"""
import json, os, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path

MAX_RETRIES = 3        # a run whose worker or node died is tried this many more times, by Ray
GPU_DEVICES = ("CUDA", "NV", "AMD", "HIP")   # tinygrad's DEV values that train on a GPU Ray can count

class SweepError(Exception):
  """Why the sweep cannot run, in one line."""

class RunFailed(Exception):
  """A run that failed on its own: its exit code and last line of stderr. Not retried."""

def trains_on_gpu(env:dict) -> bool:
  return env.get("DEV", "").split(":")[0].upper() in GPU_DEVICES

def _die_with_parent():
  """The training process dies with the Ray worker that started it (Linux), so a worker killed mid-run leaves no orphan
  holding a GPU."""
  import ctypes
  try: ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
  except (AttributeError, OSError): pass

# What a run takes from the sweep's own environment, whichever machine runs it: the device to train on (the sweep asked
# Ray for resources by it), and where MNIST is unless that machine says otherwise. Every other knob is the configuration's.
FROM_DRIVER = ("DEV",)
FROM_DRIVER_UNLESS_SET = ("MNIST_DIR",)

def driver_env() -> dict:
  return {k: os.environ[k] for k in (*FROM_DRIVER, *FROM_DRIVER_UNLESS_SET) if k in os.environ}

def run_script(script:Path, env:dict, checkpoint:Path|None=None, threads:int|None=None, inherited:dict|None=None) -> dict:
  """One run: `script` with `env` on top of this machine's environment (and what it `inherited` from the sweep's), its
  metrics read back. Raises RunFailed."""
  inherited = inherited or {}
  with tempfile.TemporaryDirectory() as tmp:
    metrics = Path(tmp) / "metrics.json"
    full_env = {**{k: v for k, v in inherited.items() if k in FROM_DRIVER_UNLESS_SET}, **os.environ,
                **{k: v for k, v in inherited.items() if k in FROM_DRIVER}, **env, "EXPORT": "0", "METRICS": str(metrics), **({"CHECKPOINT": str(checkpoint)} if checkpoint else {}),
                **({"NUM_CPU_THREADS": str(threads)} if threads else {})}
    start = time.perf_counter()
    # from the repository's root, as a reader reruns the row (TEACHER= and the like are relative to it)
    proc = subprocess.run([sys.executable, str(script)], env=full_env, capture_output=True, text=True, cwd=script.resolve().parent,
                          preexec_fn=_die_with_parent)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
      last = (proc.stderr.strip().splitlines() or [f"killed by signal {-proc.returncode}" if proc.returncode < 0 else "no output"])[-1]
      raise RunFailed(f"exit {proc.returncode}: {last}")
    result = json.loads(metrics.read_text())
  steps = int(env["STEPS"])
  return {"test_accuracy": result["test_accuracy"], "final_loss": result["final_loss"], "loss": result["loss"],
          "accuracy_curve": result["accuracy_curve"], "wall_seconds": round(wall, 1), "train_seconds": round(result["train_seconds"], 2),
          "steps_per_second": round(steps / max(result["train_seconds"], 1e-9), 1), "params": result["params"], "device": result["device"],
          "confusion": result["confusion"], "shipped": result["shipped"]}

def _task(label:str, script:str, env:dict, checkpoint:str|None, threads:int|None, share:float|None, inherited:dict, started) -> dict:
  """In a Ray worker: say where the run starts, run it, return its metrics and where it ran."""
  import ray
  context = ray.get_runtime_context()
  where = {"node": context.get_node_id()[:12], "host": socket.gethostname(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), **({"gpu_share": share} if share else {}),
           **({"cpu_threads": threads} if threads else {})}
  started.put((label, where))
  result = run_script(Path(script), env, Path(checkpoint) if checkpoint else None, threads, inherited)
  return {**result, "where": {**where, "device": result["device"]}}

def connect(address:str|None):
  """Ray, connected to the cluster at `address` (or RAY_ADDRESS), or to a new one on this machine."""
  # a local cluster stays on loopback (measured: with this set, Ray takes 127.0.0.1 as the node's address), and Ray
  # reports nothing home
  os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
  os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
  try: import ray
  except ImportError: raise SweepError("the sweep runs on Ray: pip install -r requirements-sweep.txt (make deps installs it)") from None
  address = address or os.environ.get("RAY_ADDRESS")
  try:
    if address: ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    # "local": a cluster of our own, even where another one (a test's, an earlier sweep's) left its address in /tmp/ray
    else: ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
  except (ConnectionError, RuntimeError, ValueError) as e:
    raise SweepError(f"could not reach the Ray cluster at {address} ({str(e).splitlines()[0]})" if address else f"could not start Ray here ({e})") from None
  return ray

def run_all(todo:list, *, address:str|None=None, gpus_per_run:float=0.25, cpus_per_run:int=1, cap:int=0, on_start, on_result, on_failure):
  """Run `todo` ([(label, script, env, checkpoint)]) on Ray: `on_start(label, where)` as each starts, `on_result(label,
  result)` as each returns (in the caller, the one writer of results), `on_failure(label, why)` once for each that
  failed. `cap` > 0: at most that many in flight. Ctrl-C cancels what is running and re-raises."""
  ray, pending = connect(address), {}
  try:
    uses_gpu = any(trains_on_gpu({**os.environ, **env}) for _, _, env, _ in todo)
    _check_resources(ray, uses_gpu, gpus_per_run, cpus_per_run)
    from ray.util.queue import Queue
    started = Queue()
    remote = ray.remote(_task).options(num_gpus=gpus_per_run if uses_gpu else 0, num_cpus=cpus_per_run, max_retries=MAX_RETRIES,
                                       retry_exceptions=False)
    threads, share = (None, gpus_per_run) if uses_gpu else (cpus_per_run, None)
    waiting = list(todo)
    while waiting or pending:
      while waiting and (not cap or len(pending) < cap):
        label, script, env, checkpoint = waiting.pop(0)
        pending[remote.remote(label, str(script), env, str(checkpoint) if checkpoint else None, threads, share, driver_env(), started)] = label
      done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
      while not started.empty(): on_start(*started.get())
      for ref in done: _settle(ray, ref, pending.pop(ref), on_result, on_failure)
  except KeyboardInterrupt:
    for ref in pending: ray.cancel(ref, force=True)
    # Let the cancellations come back before shutting down: a task reply that arrives during shutdown makes Ray's core
    # worker print a C++ stack trace after our one line (seen under load in CI).
    if pending: ray.wait(list(pending), num_returns=len(pending), timeout=10)
    raise
  finally: ray.shutdown()

def _settle(ray, ref, label:str, on_result, on_failure):
  from ray.exceptions import RayTaskError, RayError
  try: on_result(label, ray.get(ref))
  except RayTaskError as e:
    cause = e.cause if isinstance(getattr(e, "cause", None), Exception) else e
    on_failure(label, str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__)
  except RayError as e: on_failure(label, f"{type(e).__name__} after {MAX_RETRIES} retries: {str(e).strip().splitlines()[0]}")

def _check_resources(ray, uses_gpu:bool, gpus_per_run:float, cpus_per_run:int):
  """A request the cluster can never meet would wait forever: refuse it with one line instead."""
  have = ray.cluster_resources()
  if uses_gpu and have.get("GPU", 0) < gpus_per_run:
    raise SweepError(f"the runs train on a GPU (DEV={os.environ.get('DEV')}) and ask for {gpus_per_run:g} GPU each, but the Ray cluster has "
                     f"{have.get('GPU', 0):g} GPUs: run without DEV=, or on a cluster with GPUs (--address)")
  nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
  if not any(n.get("CPU", 0) >= cpus_per_run for n in nodes):
    raise SweepError(f"each run asks for {cpus_per_run} CPUs (--cpus-per-run) and no node of the Ray cluster has that many")
