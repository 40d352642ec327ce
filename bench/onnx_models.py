"""The shipped models as ONNX graphs, with their exact weights (the exporter's file, widened as the page widens it:
float16 to float32, int8 times its channel's scale), for ONNX Runtime Web in the comparison (bench_vs_tfjs.py). The graph follows the scripts' layer order, read from
the weights' names as compare.js reads it for TF.js: each conv and hidden linear followed by a ReLU, batch norm (at
inference) after the ReLU it follows, a 2x2 max-pool closing each block of two convolutions, NCHW as tinygrad.

  python bench/onnx_models.py OUT_DIR      # writes OUT_DIR/mnist_mlp.onnx and OUT_DIR/mnist_convnet.onnx
"""
import sys
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

def onnx_model(name:str):
  import onnx
  from onnx import helper, numpy_helper, TensorProto
  from safetensors.numpy import load_file
  from evaluation import widened
  weights = {k: v.astype(np.float32) for k, v in widened(load_file(ROOT / "webapp" / name / f"{name}.safetensors")).items()}
  index = sorted({int(k.split(".")[1]) for k in weights})
  nodes, inits, x, convs, n = [], [], "input", 0, 0
  def node(op, inputs, **attrs):
    nonlocal x, n
    n += 1
    out = f"t{n}"
    nodes.append(helper.make_node(op, inputs, [out], **attrs))
    x = out
  def init(key):
    inits.append(numpy_helper.from_array(weights[key], key))
    return key
  has_bn = any("running_mean" in k for k in weights)
  for j, i in enumerate(index):
    w = weights[f"layers.{i}.weight"]
    if f"layers.{i}.running_mean" in weights:
      node("BatchNormalization", [x, *(init(f"layers.{i}.{p}") for p in ("weight", "bias", "running_mean", "running_var"))], epsilon=1e-5)
    elif w.ndim == 4:
      node("Conv", [x, init(f"layers.{i}.weight"), init(f"layers.{i}.bias")], kernel_shape=list(w.shape[2:]))
      node("Relu", [x])
      convs += 1
    else:
      if j == 0 or convs: node("Flatten", [x], axis=1)
      if convs: convs = 0
      node("Gemm", [x, init(f"layers.{i}.weight"), init(f"layers.{i}.bias")], transB=1)
      if j < len(index) - 1: node("Relu", [x])
    block_end = convs and convs % 2 == 0 and (has_bn == (f"layers.{i}.running_mean" in weights))
    if block_end: node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
  nodes[-1].output[0] = "logits"
  graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])],
                            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
  # IR version 8 with opset 17: what ONNX Runtime Web 1.30 reads (the onnx package writes a newer IR by default)
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8, producer_name="bench/onnx_models.py")
  onnx.checker.check_model(model)
  return model

def write(out_dir:Path, names=("mnist_mlp", "mnist_convnet")) -> dict[str, Path]:
  import onnx
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = {}
  for name in names:
    paths[name] = out_dir / f"{name}.onnx"
    onnx.save(onnx_model(name), paths[name])
  return paths

if __name__ == "__main__":
  for name, path in write(Path(sys.argv[1])).items(): print(f"{name}: {path}")
