"""A WebGPU adapter in Python that computes: tinygrad's WEBGPU device on Dawn (the dawn-python wheel), proved with a small
matmul, since without a Vulkan driver Dawn hands out an adapter that silently returns garbage."""
import os, tempfile
from pathlib import Path
import numpy as np
from exporter import ExportError

NO_ADAPTER_HELP = "install a Vulkan driver (Debian: apt-get install libvulkan1 mesa-vulkan-drivers) and dawn-python==0.3.0"

def _point_tinygrad_at_dawn():
  """tinygrad finds Dawn through WEBGPU_PATH; default it to the library that the dawn-python wheel ships."""
  if os.environ.get("WEBGPU_PATH"): return
  try: import pydawn
  except ImportError: raise ExportError("exporting needs dawn-python (pip install dawn-python==0.3.0)") from None
  os.environ["WEBGPU_PATH"] = str(Path(pydawn.__file__).parent / "lib" / "libwebgpu_dawn_x86_64.so")
  os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())   # Mesa's Vulkan loader complains without one

def check_webgpu():
  """Refuse an adapter that does not compute."""
  _point_tinygrad_at_dawn()
  from tinygrad import Tensor
  a, b = np.arange(24, dtype=np.float32).reshape(4, 6) / 8, np.linspace(-1, 1, 18, dtype=np.float32).reshape(6, 3)
  try: got = (Tensor(a, device="WEBGPU") @ Tensor(b, device="WEBGPU")).relu().numpy()
  except Exception as e:
    why = str(e).splitlines()[0] if str(e) else ""
    raise ExportError(f"WebGPU is not available ({type(e).__name__}: {why}); {NO_ADAPTER_HELP}") from None
  if not np.allclose(got, np.maximum(a @ b, 0), atol=1e-5):
    raise ExportError(f"the WebGPU adapter computes wrong results (a 4x6 @ 6x3 matmul came back wrong); {NO_ADAPTER_HELP}")
